"""Attribution-guided prompt compression (FrugalPrompt, 2025) on the default model: how much of a reference
continuation's log-likelihood survives when only the top-k% of the context's words, ranked by each attributor,
are kept (in their original order), next to keeping the bottom-k% and a random k%.

    python benchmarks/attribution_compression.py [--prompts 24] [--context-words 50] [--target-words 6]
        [--methods occlusion,attention,...] [--random-repeats 3] [--out PATH]

Task: contexts of at least `--context-words` words (whole consecutive sentences of a Lee news document,
english-prose corpus), target = the first `--target-words` words of the sentence that follows (teacher-forced;
the metric is its log-likelihood given the compressed context, `workbench.attribution.compression`). Units are
words; dropped words are removed from the prompt (it gets shorter). Each ranker is an attribution method run on
the full context and the same target (options in OPTIONS), its units ranked by the sum over target tokens.

Reported: per ranker and keep fraction (10% .. 100%), the mean over prompts of the change in log-likelihood per
target token against the full context (0 = nothing lost; negative = lost), for top-k, bottom-k and random-k
(mean of `--random-repeats` draws); the mean over fractions as one number per curve (higher is better for top,
the gap top - bottom says how well the ranking separates useful from useless words); and each method's cost.
Writes benchmarks/results/attribution_compression.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attribution_shapley import split_sentences

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("occlusion", "saliency", "input_x_gradient", "integrated_gradients", "attention", "rollout",
           "leverage_shap")
OPTIONS = {"integrated_gradients": {"steps": 16}, "leverage_shap": {"samples": 256}}


def build_items(documents: list[str], count: int, context_words: int, target_words: int, seed: int = 0) -> list[dict]:
    """`count` (context, target) pairs: a run of whole consecutive sentences of one document with at least
    `context_words` words, and the first `target_words` words of the next sentence (with a leading space) as the
    target; at most one pair per document, documents in a seeded order."""
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    items = []
    for d in order:
        sentences = [s for s in split_sentences(documents[d]) if s]
        words, k = 0, 0
        while k < len(sentences) and words < context_words:
            words += len(sentences[k].split())
            k += 1
        if words < context_words or k >= len(sentences) or len(sentences[k].split()) < target_words:
            continue
        items.append({"document": d, "context": " ".join(sentences[:k]), "context_words": words,
                      "target": " " + " ".join(sentences[k].split()[:target_words])})
        if len(items) == count:
            return items
    raise ValueError(f"--prompts: found only {len(items)} documents with {context_words} context words and a "
                     f"following sentence of {target_words} words, asked for {count}")


def per_token_change(curves: dict[str, list[float]], full: float, target_tokens: int) -> dict[str, list[float]]:
    """Each curve's (metric - full-context metric) / number of target tokens."""
    return {name: [(v - full) / target_tokens for v in values] for name, values in curves.items()}


def summarize(per_prompt: list[dict[str, list[float]]]) -> dict[str, dict]:
    """Mean curve over prompts and its mean over fractions, per curve name present in every prompt."""
    names = [n for n in per_prompt[0] if all(n in p for p in per_prompt)]
    out = {}
    for name in names:
        curve = np.mean([p[name] for p in per_prompt], axis=0)
        out[name] = {"curve": curve.tolist(), "mean": float(curve.mean())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--context-words", type=int, default=50)
    parser.add_argument("--target-words", type=int, default=6)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--random-repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "attribution_compression"))
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.context_words < 2 or args.target_words < 1 or args.random_repeats < 1:
        parser.error("--prompts, --target-words, --random-repeats must be >= 1 and --context-words >= 2")
    from workbench.attribution import METHODS as REGISTERED

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in REGISTERED]
    if not methods or unknown:
        parser.error(f"--methods: unknown {unknown or '(empty)'}; known: {', '.join(sorted(REGISTERED))}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from tqdm.auto import tqdm

    from workbench.assets import load_corpus
    from workbench.attribution.compression import compression_curves
    from workbench.models import LM

    load_before = os.getloadavg()
    start = time.perf_counter()
    lm = LM.load(args.model)
    documents = list(load_corpus("english-prose", sources=["lee"])["text"])
    items = build_items(documents, args.prompts, args.context_words, args.target_words)
    per_prompt, records = [], []
    for item in tqdm(items, desc="prompts"):
        res = compression_curves(lm, item["context"], item["target"], methods, granularity="word",
                                 random_repeats=args.random_repeats, batch_size=args.batch_size,
                                 method_options={m: OPTIONS[m] for m in methods if m in OPTIONS})
        n_target = len(lm.tokenizer.encode(item["target"], add_special_tokens=False))
        curves = {k: v.tolist() for k, v in res.curves.items()}
        per_prompt.append(per_token_change(curves, res.full, n_target))
        records.append({**item, "units": res.n_units, "target_tokens": n_target, "full": res.full, "curves": curves,
                        "evaluations": res.evaluations, "seconds": res.seconds, "cost": res.attribution_cost})
    summary = summarize(per_prompt)
    costs = {m: {key: float(np.mean([r["cost"][m][key] for r in records]))
                 for key in ("forward_passes", "backward_passes", "evaluations", "seconds")} for m in methods}
    result = {
        "benchmark": "attribution_compression",
        "command": "python benchmarks/attribution_compression.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model, "threads": args.threads, "methods": methods, "options": OPTIONS,
        "fractions": res.fractions, "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
        "seconds": time.perf_counter() - start,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "prompts": records, "summary": summary, "method_cost": costs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


def markdown(result: dict) -> str:
    s, fr = result["summary"], result["fractions"]
    records = result["prompts"]
    lines = [
        f"# Attribution-guided prompt compression ({result['model']}, {len(records)} prompts)", "",
        f"`{result['command']}`", "",
        (f"Contexts of {min(r['context_words'] for r in records)}-{max(r['context_words'] for r in records)} words, "
         f"targets of {min(r['target_tokens'] for r in records)}-{max(r['target_tokens'] for r in records)} tokens; "
         f"full-context log-likelihood per target token {np.mean([r['full'] / r['target_tokens'] for r in records]):.3f} "
         "(mean). Entries: change in log-likelihood per target token against the full context (nats; 0 = nothing "
         "lost), mean over prompts. Top = keep the highest-ranked words, bottom = the lowest."), "",
        (f"loadavg before/after: {[round(x, 2) for x in result['loadavg_before']]} / "
         f"{[round(x, 2) for x in result['loadavg_after']]}; total {result['seconds']:.0f} s"), "",
        "| curve | " + " | ".join(f"{q:.0%}" for q in fr) + " | mean |", "|---" * (len(fr) + 2) + "|"]
    order = sorted(s, key=lambda n: (n != "random", not n.startswith("top:"), -s[n]["mean"]))
    for name in order:
        lines.append(f"| {name} | " + " | ".join(f"{v:+.3f}" for v in s[name]["curve"]) + f" | {s[name]['mean']:+.3f} |")
    lines += ["", "| method | top mean | bottom mean | top - bottom | forward passes | backward passes | seconds |",
              "|---|---|---|---|---|---|---|"]
    for m in result["methods"]:
        top, bottom, c = s[f"top:{m}"]["mean"], s[f"bottom:{m}"]["mean"], result["method_cost"][m]
        lines.append(f"| {m} | {top:+.3f} | {bottom:+.3f} | {top - bottom:.3f} | {c['forward_passes']:.0f} | "
                     f"{c['backward_passes']:.0f} | {c['seconds']:.2f} |")
    lines += ["", f"random (mean of the draws): {s['random']['mean']:+.3f}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
