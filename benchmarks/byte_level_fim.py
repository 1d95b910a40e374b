"""Prompts that end mid-token: HumanEval prompt + the canonical solution's first line cut inside an identifier.
Accuracy of the continuation (the rest of that identifier) for naive greedy prompting, token healing, and exact
byte-level greedy decoding (Phan et al., 2024, arXiv:2410.09303; workbench.tokenization.byte_probs).

    python benchmarks/byte_level_fim.py [--n 30] [--model smollm2-135m] [--compare-backend 3]

Cut rule (deterministic): in the first non-blank line of the canonical solution, the first identifier of at
least 4 bytes that the canonical encoding of prompt + solution does not keep as one token boundary-aligned
piece; the cut is the middle-most byte position inside it that is not a token boundary. The target is the rest
of the identifier; a method is right when its continuation starts with the target. Every method starts after
the same context token (<|endoftext|> where the tokenizer has one).

Speed: the byte-level method runs with the fast canonicality check (bytelevel_bpe.py, fast_encoder=True). On the
first `--compare-backend` cases it also runs with the tokenizers backend check (fast_encoder=False, the earlier
implementation), interleaved, and the outputs must be identical; the JSON records both times and their ratio
(per-case medians) together with os.getloadavg() (the machine is shared, so absolute seconds vary).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

from tqdm.auto import tqdm

from workbench.tokenization.byte_probs import ByteLevelLM
from workbench.tokenization.token_healing import naive_generate, token_healing_generate

IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{3,}")


def make_case(blm: ByteLevelLM, prompt: str, solution: str) -> tuple[bytes, bytes] | None:
    data = (prompt + solution).encode("utf-8")
    lines = [ln for ln in solution.split("\n") if ln.strip()]
    if not lines:
        return None
    line_start = data.index(lines[0].encode("utf-8"), len(prompt.encode("utf-8")))
    line = lines[0].encode("utf-8")
    ids = blm.encode(data)
    bounds, pos = set(), 0
    for i in ids:
        pos += len(blm.token_bytes[i])
        bounds.add(pos)
    for m in IDENT.finditer(line):
        start, end = line_start + m.start(), line_start + m.end()
        inside = [p for p in range(start + 1, end) if p not in bounds]
        if inside:
            cut = min(inside, key=lambda p: abs(p - (start + end) / 2))
            return data[:cut], data[cut:end]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--window", type=int, default=64, help="canonical_window of the byte-level method")
    parser.add_argument("--compare-backend", type=int, default=3,
                        help="cases also run with the backend canonicality check (fast_encoder=False)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "byte_level_fim.json"))
    args = parser.parse_args()
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    if args.compare_backend < 0:
        parser.error(f"--compare-backend must be >= 0, got {args.compare_backend}")

    from workbench.assets import load_corpus
    from workbench.models import LM

    lm = LM.load(args.model)
    end = lm.tokenizer.backend.token_to_id("<|endoftext|>") if hasattr(lm.tokenizer, "backend") else None
    blm = ByteLevelLM(lm, context_ids=[end] if end is not None else None, canonical_window=args.window)
    slow = ByteLevelLM(lm, context_ids=blm.context_ids, canonical_window=args.window, fast_encoder=False)
    load_before = os.getloadavg()
    rows = []
    corpus = load_corpus("humaneval")
    cases = []
    for item in corpus:
        case = make_case(blm, item["prompt"], item["canonical_solution"])
        if case is not None:
            cases.append((item["task_id"], *case))
        if len(cases) >= args.n:
            break
    totals = {"naive": 0, "token_healing": 0, "byte_level": 0}
    seconds = dict.fromkeys(totals, 0.0)
    compared = []
    for k, (task_id, prefix, target) in enumerate(tqdm(cases, desc="byte-level FIM")):
        row = {"task_id": task_id, "prefix_tail": prefix[-24:].decode("utf-8", "replace"),
               "target": target.decode("utf-8", "replace")}
        for name, fn in (
            ("naive", lambda p=prefix: naive_generate(blm, p, max_new_tokens=4)),
            ("token_healing", lambda p=prefix: token_healing_generate(blm, p, max_new_tokens=4)),
            ("byte_level", lambda p=prefix, t=target: blm.generate(p, max_new_bytes=len(t))),
        ):
            start = time.perf_counter()
            out = fn()
            row[name] = {"output": out.decode("utf-8", "replace"), "correct": out.startswith(target),
                         "seconds": time.perf_counter() - start}
            seconds[name] += row[name]["seconds"]
            totals[name] += row[name]["correct"]
        if k < args.compare_backend:
            start = time.perf_counter()
            out = slow.generate(prefix, max_new_bytes=len(target))
            backend_s = time.perf_counter() - start
            if out.decode("utf-8", "replace") != row["byte_level"]["output"]:
                raise AssertionError(f"{task_id}: fast and backend canonicality checks disagree")
            row["byte_level_backend_check"] = {"output": out.decode("utf-8", "replace"), "seconds": backend_s}
            compared.append((backend_s, row["byte_level"]["seconds"]))
        rows.append(row)
    n = len(rows)
    summary = {name: {"accuracy": totals[name] / n, "correct": totals[name], "seconds": seconds[name],
                      "seconds_per_case": seconds[name] / n} for name in totals}
    speed = None
    if compared:
        speed = {"cases": len(compared), "identical_outputs": True,
                 "backend_check_seconds_median": statistics.median(b for b, _ in compared),
                 "fast_check_seconds_median": statistics.median(f for _, f in compared),
                 "speedup_median": statistics.median(b / f for b, f in compared)}
    result = {"model": args.model, "n": n, "canonical_window": args.window, "context_ids": blm.context_ids,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "summary": summary,
              "byte_level_speed": speed, "cases": rows}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    lines = [f"Byte-level FIM ({args.model}, n={n} HumanEval cases cut mid-identifier, canonical_window={args.window})",
             "", "| method | accuracy | correct | seconds/case |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['accuracy']:.3f} | {s['correct']}/{n} | {s['seconds_per_case']:.1f} |"
              for name, s in summary.items()]
    if speed:
        lines += ["", (f"Byte-level canonicality check, first {speed['cases']} cases (identical outputs): backend "
                      f"{speed['backend_check_seconds_median']:.1f} s vs fast {speed['fast_check_seconds_median']:.1f} s "
                      f"per case (medians), speedup x{speed['speedup_median']:.1f}; load average "
                      f"{load_before[0]:.1f} -> {result['loadavg_after'][0]:.1f}.")]
    out_path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"saved {out_path} and {out_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
