"""Prompts that end mid-token: HumanEval prompt + the canonical solution's first line cut inside an identifier.
Accuracy of the continuation (the rest of that identifier) for naive greedy prompting, token healing, and exact
byte-level greedy decoding (Phan et al., 2024, arXiv:2410.09303; workbench.tokenization.byte_probs).

    python benchmarks/byte_level_fim.py [--n 30] [--model smollm2-135m]

Cut rule (deterministic): in the first non-blank line of the canonical solution, the first identifier of at
least 4 bytes that the canonical encoding of prompt + solution does not keep as one token boundary-aligned
piece; the cut is the middle-most byte position inside it that is not a token boundary. The target is the rest
of the identifier; a method is right when its continuation starts with the target. Every method starts after
the same context token (<|endoftext|> where the tokenizer has one).
"""
from __future__ import annotations

import argparse
import json
import re
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
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "byte_level_fim.json"))
    args = parser.parse_args()

    from workbench.assets import load_corpus
    from workbench.models import LM

    lm = LM.load(args.model)
    end = lm.tokenizer.backend.token_to_id("<|endoftext|>") if hasattr(lm.tokenizer, "backend") else None
    blm = ByteLevelLM(lm, context_ids=[end] if end is not None else None, canonical_window=args.window)
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
    for task_id, prefix, target in tqdm(cases, desc="byte-level FIM"):
        row = {"task_id": task_id, "prefix_tail": prefix[-24:].decode("utf-8", "replace"),
               "target": target.decode("utf-8", "replace")}
        for name, fn in (
            ("naive", lambda p=prefix: naive_generate(blm, p, max_new_tokens=4)),
            ("token_healing", lambda p=prefix: token_healing_generate(blm, p, max_new_tokens=4)),
            ("byte_level", lambda p=prefix, t=target: blm.generate(p, max_new_bytes=len(t))),
        ):
            start = time.perf_counter()
            out = fn()
            seconds[name] += time.perf_counter() - start
            ok = out.startswith(target)
            totals[name] += ok
            row[name] = {"output": out.decode("utf-8", "replace"), "correct": ok}
        rows.append(row)
    n = len(rows)
    summary = {name: {"accuracy": totals[name] / n, "correct": totals[name], "seconds": seconds[name]}
               for name in totals}
    result = {"model": args.model, "n": n, "canonical_window": args.window,
              "context_ids": blm.context_ids, "summary": summary, "cases": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"{'method':<15}{'accuracy':>10}{'correct':>9}{'seconds':>9}   (n={n}, {args.model})")
    for name, s in summary.items():
        print(f"{name:<15}{s['accuracy']:>10.3f}{s['correct']:>9}{s['seconds']:>9.1f}")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
