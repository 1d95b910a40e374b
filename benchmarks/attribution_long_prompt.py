"""Attribution of a long prompt (>= 2,000 tokens) on the default model: peak memory and cost per method.

    OMP_NUM_THREADS=2 python benchmarks/attribution_long_prompt.py [--model smollm2-135m] [--tokens 2048]
        [--methods occlusion:sentence input_x_gradient:token] [--target-tokens 4] [--memory-budget BYTES]
        [--first-sentences 8]

The prompt is the start of Botchan (english-prose corpus, offline), cut at the end of the first sentence after
`--tokens` tokens; the target is the text's own next `--target-tokens` tokens (teacher-forced continuation).
Each method runs in a fresh subprocess so that its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, a
process high-water mark) is its own: the record holds the RSS after loading the model (and one 8-token
forward, so every weight page is resident), the peak after the
attribution, their difference, the Attribution's cost (forward / backward passes, tokens, evaluations,
seconds, KV bytes written / read), the batching chosen under the memory budget, and the top sources.
For scale it also records what the logits alone would take if every prompt position were unembedded
(batch rows x prompt tokens x vocab x 4 bytes), which is what ran out of memory before `logits_to_keep`.
`--first-sentences K` (default 8; 0 = all): sentence-granularity methods attribute the prompt's first K
sentences as units and the rest of the prompt as one more ("gap") unit, through explicit byte spans. Occluding
an early sentence feeds (almost) the whole prompt, so these are the longest, most memory-hungry inputs of a
full sentence-level run; a full run (~185 sentences at 2,048 tokens, ~190k tokens fed) takes hours on a
shared 2-core CPU. The record gives the full run's token count for scale (`full_run_tokens`: what occlusion
with KV reuse feeds for every sentence, batch_size 1).
Writes benchmarks/results/attribution_long_prompt.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "attribution_long_prompt"


def max_rss_bytes() -> int:
    """This process' peak resident set size (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def long_prompt(tokenizer, tokens: int, target_tokens: int) -> tuple[str, str]:
    """(prompt, target): Botchan from its start, cut after the first sentence end past `tokens` tokens; the
    target is the following `target_tokens` tokens of the text."""
    from workbench.assets import load_corpus

    text = "\n".join(load_corpus("english-prose", sources=["botchan"], limit=3)["text"])
    ids, offsets = tokenizer.encode_with_offsets(text)
    if len(ids) < tokens + target_tokens + 200:
        raise ValueError(f"--tokens {tokens}: the corpus text has only {len(ids)} tokens")
    data = text.encode("utf-8")
    cut = offsets[tokens - 1][1]
    end = data.find(b". ", cut)
    cut = end + 1 if 0 <= end < offsets[tokens + 150][1] else cut
    prompt = data[:cut].decode("utf-8")
    n = len(tokenizer.encode(prompt))
    _, rest_offsets = tokenizer.encode_with_offsets(text[len(prompt):])
    target = text[len(prompt):].encode("utf-8")[:rest_offsets[target_tokens - 1][1]].decode("utf-8")
    assert n >= tokens and target
    return prompt, target


def worker(args: argparse.Namespace) -> None:
    """One method in this process; prints one JSON line."""
    import torch

    from workbench.attribution import attribute
    from workbench.attribution.chunking import default_budget, row_bytes
    from workbench.models import LM

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    lm = LM.load(args.model)
    prompt, target = long_prompt(lm.tokenizer, args.tokens, args.target_tokens)
    method, granularity = args.worker.split(":")
    lm.forward(lm.tokenizer.encode(prompt)[:8])  # touch every weight page, so the baseline holds the model
    rss_loaded = max_rss_bytes()
    options = {} if args.memory_budget is None else {"memory_budget": args.memory_budget}
    units, sentences, full_run_tokens = granularity, None, None
    if granularity == "sentence":
        from workbench.attribution.problem import check_prompt
        from workbench.attribution.units import build_units

        text = check_prompt(lm, prompt)
        found = build_units("sentence", text.ids, text.offsets, text.data)
        sentences = len(found)
        n_all = len(text.prefix_ids) + len(text.ids)
        cont_len = len(lm.tokenizer.encode(target))
        full_run_tokens = n_all + sum(n_all - len(text.prefix_ids) - u.token_indices[0] + cont_len for u in found)
        if args.first_sentences:
            units = [(u.start, u.end) for u in found[:args.first_sentences]]
    start = time.perf_counter()
    a = attribute(lm, prompt, target, method=method, granularity=units, progress=True, **options)
    seconds = time.perf_counter() - start
    rss_peak = max_rss_bytes()
    n = len(lm.tokenizer.encode(prompt))
    cont = len(lm.tokenizer.encode(target))
    batch = min(a.options.get("batch_size", 1) or 1, a.cost.evaluations)  # rows of the largest batch
    record = {
        "method": method,
        "granularity": granularity,
        "prompt_tokens": n,
        "target": target,
        "target_tokens": cont,
        "sources": a.matrix.shape[1],
        "source_kinds": sorted({u.kind for u in a.sources}),
        "sentences_in_prompt": sentences,
        "full_run_tokens": full_run_tokens,
        "rss_after_load_bytes": rss_loaded,
        "rss_peak_bytes": rss_peak,
        "rss_added_bytes": rss_peak - rss_loaded,
        "seconds": seconds,
        "cost": a.cost.to_dict(),
        "options": a.options,
        "memory_budget_bytes": args.memory_budget or default_budget(lm),
        "estimated_row_bytes_full_prompt": row_bytes(lm, n + cont, n + cont, cont + 1,
                                                     grad=method in ("input_x_gradient", "saliency",
                                                                     "integrated_gradients")),
        "all_position_logits_bytes_per_batch": batch * (n + cont) * lm.vocab_size * 4,
        "extras": {k: v for k, v in a.to_dict()["extras"].items() if isinstance(v, (int, float))},
        "top_sources_row0": [[text[:60], value] for text, value in a.top(0, 5)],
        "target_values": [float(v) for v in a.target_values] if a.target_values is not None else None,
    }
    print(json.dumps(record))


def units(record: dict) -> str:
    """'2058 token', or '8 sentence + rest of prompt' when the rest of the prompt formed one gap unit."""
    if "gap" in record["source_kinds"]:
        return f"{record['sources'] - 1} {record['granularity']} + rest of prompt"
    return f"{record['sources']} {record['granularity']}"


def markdown(result: dict) -> str:
    gib = 1 << 30
    mib = 1 << 20
    lines = [
        (f"# Long-prompt attribution ({result['model']}, {result['runs'][0]['prompt_tokens']} prompt tokens, "
         f"{result['runs'][0]['target_tokens']} target tokens)"),
        "",
        (f"Command: `{result['command']}`; threads {result['threads']}, load average before "
         f"{result['loadavg_before'][0]:.1f}, after {result['loadavg_after'][0]:.1f}."),
        "",
        ("| method | units | peak RSS (GiB) | added over loaded model (MiB) | seconds | forward | backward | "
         "tokens | KV written (MiB) | KV read (MiB) | all-position logits would be (GiB) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        c = r["cost"]
        lines.append(
            f"| {r['method']} | {units(r)} | {r['rss_peak_bytes'] / gib:.2f} | "
            f"{r['rss_added_bytes'] / mib:.0f} | {r['seconds']:.1f} | {c['forward_passes']} | "
            f"{c['backward_passes']} | {c['tokens_processed']} | {c['kv_bytes_written'] / mib:.0f} | "
            f"{c['kv_bytes_read'] / mib:.0f} | {r['all_position_logits_bytes_per_batch'] / gib:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=2048, help="prompt length (>= this many tokens)")
    parser.add_argument("--target-tokens", type=int, default=4)
    parser.add_argument("--methods", nargs="+", default=["occlusion:sentence", "input_x_gradient:token"],
                        help="method:granularity pairs")
    parser.add_argument("--memory-budget", type=int, default=None, help="bytes (default: the methods' default)")
    parser.add_argument("--first-sentences", type=int, default=8,
                        help="sentence methods: attribute the first K sentences (+ the rest as one unit); 0 = all")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.tokens < 1 or args.target_tokens < 1 or args.first_sentences < 0:
        parser.error("--tokens and --target-tokens must be >= 1, --first-sentences >= 0")
    for spec in args.methods:
        if spec.count(":") != 1:
            parser.error(f"--methods entries look like occlusion:sentence, got {spec!r}")
    if args.worker:
        worker(args)
        return

    from tqdm import tqdm

    result = {
        "model": args.model,
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?"), "python",
                             "benchmarks/attribution_long_prompt.py", *sys.argv[1:]]),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_before": list(os.getloadavg()),
        "runs": [],
    }
    for spec in tqdm(args.methods, desc="methods", unit="method"):
        cmd = [sys.executable, __file__, "--worker", spec, "--model", args.model, "--tokens", str(args.tokens),
               "--target-tokens", str(args.target_tokens), "--first-sentences", str(args.first_sentences)]
        if args.memory_budget is not None:
            cmd += ["--memory-budget", str(args.memory_budget)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        record = json.loads(out.stdout.strip().splitlines()[-1])
        result["runs"].append(record)
        tqdm.write(f"{spec}: peak RSS {record['rss_peak_bytes'] / (1 << 30):.2f} GiB, {record['seconds']:.1f} s, "
                   f"cost {record['cost']}")
    result["loadavg_after"] = list(os.getloadavg())
    import torch

    result["torch"] = torch.__version__
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / f"{NAME}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
