"""Faithfulness of every registered attribution method on the default model: comprehensiveness / sufficiency
AOPC (DeYoung et al. 2020, ERASER), their soft variants (after Zhao & Aletras 2023), deletion / insertion AUC
(Petsiuk et al. 2018), the cost of each method, and how much the methods agree (Spearman's rho).

    python benchmarks/attribution_faithfulness.py [--prompts 50] [--words 6] [--soft-samples 2] [--quick]
        [--time-limit MIN] [--offset K] [--methods NAME ...] [--out PATH]
    python benchmarks/attribution_faithfulness.py --merge A.json B.json ... --out PATH

A run can be split over processes: each takes the prompts from --offset on (the prompt list is the same prefix
for any --prompts) and the methods named by --methods (default: every registered one), --time-limit stops it
starting new prompts (results are written after every prompt), and --merge pools the (prompt, method) results
of several runs (a cell present twice is kept once, from the first file), so runs can split the prompts, the
methods, or both. Rank agreement between two methods comes only from prompts where one run scored both.

Prompts: the first `--words` words of Lee news sentences (english-prose corpus; the same builder as
benchmarks/attribution_shapley.py), target = the sentence's true next word (teacher-forced), granularity "word"
(token-level methods' columns summed per word). Every method in workbench.attribution.METHODS at run time is
run with the options in OPTIONS (kept modest so the run fits in about half an hour on one CPU thread; a method
not listed there runs with its defaults) and scored with workbench.attribution.faithfulness.faithfulness:
fractions 10%..100%, removal = pad-token embedding, scale "prob" (target probability), `--soft-samples` masks
per row for the soft metrics, deletion/insertion curves. A "random" reference row scores a seeded Gaussian
attribution the same way (not a method: the floor every method should beat).

Reported per method (means over prompts, each prompt's metrics averaged over its target rows): the six metrics,
the attribution's cost (forward and backward passes, model evaluations, seconds; from Attribution.cost), the
faithfulness scoring's own cost, and the mean pairwise Spearman rho between methods' word rankings (per prompt,
averaged over target rows, then over prompts; NaN where a ranking is constant is skipped).
With --words <= 10 every deletion/insertion curve point is one of the AOPC fractions' unit counts, so the curves
cost no extra model evaluations (the value function memoizes coalitions). Defaults (6-word prompts, 2 soft
samples) are small because the shared 2-core machine was heavily loaded when this was written. Timings are on a shared CPU: compare methods
only as ratios within this run. Writes benchmarks/results/attribution_faithfulness.json and .md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attribution_shapley import build_prompts

RESULTS = Path(__file__).resolve().parent / "results"
OPTIONS = {
    "integrated_gradients": {"steps": 8},
    "shapley": {"permutations": 8},
    "kernel_shap": {"samples": 32},
    "leverage_shap": {"samples": 32},
    "regression_adjusted_shap": {"samples": 32},
}
METRICS = ("comprehensiveness", "sufficiency", "soft_comprehensiveness", "soft_sufficiency", "deletion_auc",
           "insertion_auc")
BETTER = {"comprehensiveness": "higher", "sufficiency": "lower", "soft_comprehensiveness": "higher",
          "soft_sufficiency": "lower", "deletion_auc": "lower", "insertion_auc": "higher"}


def method_options(name: str, cls: type, words: int) -> dict:
    """OPTIONS[name] restricted to the options the method has; KernelSHAP gets at least its minimum samples."""
    fields = {f.name for f in dataclasses.fields(cls)}
    opts = {k: v for k, v in OPTIONS.get(name, {}).items() if k in fields}
    if name == "kernel_shap" and "samples" in opts:
        opts["samples"] = max(opts["samples"], 2 * (words - 1))
    return opts


def random_attribution(a, rng: np.random.Generator):
    """The same Attribution with a seeded standard-normal matrix (the reference row)."""
    return dataclasses.replace(a, matrix=rng.standard_normal(a.matrix.shape), method="random")


def mean_agreement(per_prompt: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Average pairwise tables {a: {b: rho}} over prompts, skipping NaN entries."""
    names = list(per_prompt[0])
    out: dict[str, dict[str, float]] = {}
    for a in names:
        out[a] = {}
        for b in names:
            vals = np.array([t[a][b] for t in per_prompt], dtype=np.float64)
            out[a][b] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=50, help="number of prompts (default 50)")
    parser.add_argument("--words", type=int, default=6, help="words per prompt (default 6)")
    parser.add_argument("--soft-samples", type=int, default=2, help="Bernoulli masks per row for soft metrics")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes: start no new prompt after this (results cover the prompts completed)")
    parser.add_argument("--offset", type=int, default=0,
                        help="skip the first prompts of the list (to split a run over processes, see --merge)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="combine the results of runs over disjoint prompts into --out instead of running")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="run only these registered methods (default: all; see --merge)")
    parser.add_argument("--quick", action="store_true", help="5 prompts of 5 words")
    parser.add_argument("--out", default=str(RESULTS / "attribution_faithfulness"))
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.words = 5, 5
    if args.prompts < 1 or not 2 <= args.words <= 40 or args.soft_samples < 0:
        parser.error("--prompts must be >= 1, --words in [2, 40], --soft-samples >= 0")
    if args.merge:
        return merge(args.merge, Path(args.out))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from tqdm.auto import tqdm

    from workbench.attribution import METHODS, attribute, get_method
    from workbench.attribution.faithfulness import agreement_table, faithfulness
    from workbench.models import LM

    get_method("saliency")  # registers the built-in methods
    unknown = sorted(set(args.methods or ()) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; registered: {sorted(METHODS)}")
    names = sorted(args.methods or METHODS)
    opts = {name: method_options(name, METHODS[name], args.words) for name in names}
    load_before = os.getloadavg()
    start = time.perf_counter()
    lm = LM.load(args.model)
    items = build_prompts(args.prompts, (args.words,), seed=1)[args.offset:]
    rng = np.random.default_rng(0)
    rows: dict[str, list[dict]] = {name: [] for name in [*names, "random"]}
    agreements = []
    for item in tqdm(items, desc="prompts"):
        if args.time_limit is not None and time.perf_counter() - start > 60 * args.time_limit:
            break
        attrs = {}
        for name in names:
            a = attribute(lm, item["prompt"], item["target"], method=name, granularity="word", progress=False,
                          **opts[name])
            attrs[name] = a
            fa = faithfulness(lm, a, soft_samples=args.soft_samples, seed=0)
            rows[name].append({**fa.aggregated(), **{f"attr_{k}": v for k, v in a.cost.to_dict().items()
                                                    if k != "device"},
                               "faith_evaluations": fa.evaluations, "faith_seconds": fa.seconds})
        fa = faithfulness(lm, random_attribution(attrs[names[0]], rng), soft_samples=args.soft_samples, seed=0)
        rows["random"].append({**fa.aggregated(), "faith_evaluations": fa.evaluations, "faith_seconds": fa.seconds})
        agreements.append(agreement_table(attrs, metric="spearman"))
        write(args, items[:len(agreements)], names, opts, rows, agreements, load_before, start, argv)
    return 0


def write(args, items, names, opts, rows, agreements, load_before, start, argv) -> None:
    """Write the JSON and markdown for the prompts completed so far (called after every prompt)."""
    table = {name: {key: float(np.mean([r[key] for r in rs])) for key in rs[0]} for name, rs in rows.items()}
    result = {
        "benchmark": "attribution_faithfulness",
        "command": "python benchmarks/attribution_faithfulness.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model, "threads": args.threads, "words": args.words, "soft_samples": args.soft_samples,
        "prompts_requested": args.prompts - args.offset, "prompts_completed": len(items),
        "methods": names, "options": opts, "better": BETTER,
        "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
        "seconds_total": time.perf_counter() - start,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "prompts": items, "table": table, "spearman": mean_agreement(agreements), "per_prompt": rows,
        "spearman_per_prompt": agreements,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(_finite(result), indent=1))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    if len(items) == args.prompts - args.offset:
        print(md)


def merge(files: list[str], out: Path) -> int:
    """Combine runs over disjoint prompts and/or methods (same settings): the per-prompt rows are pooled cell by
    cell, (prompt, method) -> row, a cell seen twice kept from the first file; the tables are recomputed. A method
    with a row for every pooled prompt is in the table; one covering only some prompts is kept apart in
    "methods_in_some_runs_only". Spearman means pool the per-prompt tables, pair by pair, over the prompts where
    a run scored both methods."""
    parts = [json.loads(Path(f).read_text()) for f in files]
    base = parts[0]
    for key in ("model", "words", "soft_samples"):
        if any(p[key] != base[key] for p in parts):
            raise ValueError(f"--merge: the runs differ in {key}")
    if any("spearman_per_prompt" not in p for p in parts):
        raise ValueError("--merge: every run needs per-prompt Spearman tables (a run written by --merge has none)")
    items, cells, rhos = {}, {}, {}
    for p in parts:
        for k, item in enumerate(p["prompts"][:p["prompts_completed"]]):
            items.setdefault(item["prompt"], item)
            for name in [*p["methods"], "random"]:
                cells.setdefault((item["prompt"], name), p["per_prompt"][name][k])
            table = rhos.setdefault(item["prompt"], {})
            for a, row in p["spearman_per_prompt"][k].items():
                for b, rho in row.items():
                    table.setdefault(a, {}).setdefault(b, rho)
    all_names = sorted({name for p in parts for name in p["methods"]})
    names = [m for m in all_names if all((prompt, m) in cells for prompt in items)]
    rows = {name: [cells[(prompt, name)] for prompt in items] for name in [*names, "random"]}
    partial = {}
    for m in all_names:
        if m not in names:
            got = [cells[(prompt, m)] for prompt in items if (prompt, m) in cells]
            partial[m] = {key: float(np.mean([r[key] for r in got if r.get(key) is not None])) for key in got[0]}
            partial[m]["prompts"] = len(got)
    per_prompt_rho = [{a: {b: (rhos[prompt].get(a, {}).get(b) if rhos[prompt].get(a, {}).get(b) is not None
                               else float("nan")) for b in names} for a in names} for prompt in items]
    table = {name: {key: float(np.mean([r[key] for r in rs if r.get(key) is not None])) for key in rs[0]}
             for name, rs in rows.items()}
    result = {**base, "command": "; ".join(p["command"] for p in parts) + "; python benchmarks/"
              "attribution_faithfulness.py --merge " + " ".join(files),
              "prompts_requested": len(items), "prompts_completed": len(items),
              "seconds_total": sum(p["seconds_total"] for p in parts), "processes": len(parts),
              "loadavg_before": [p["loadavg_before"] for p in parts], "loadavg_after": [p["loadavg_after"] for p in parts],
              "prompts": list(items.values()), "table": table, "spearman": mean_agreement(per_prompt_rho),
              "per_prompt": rows, "methods": names,
              "options": {m: o for p in reversed(parts) for m, o in p["options"].items() if m in names},
              "methods_in_some_runs_only": partial}
    result.pop("spearman_per_prompt", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(_finite(result), indent=1))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


def _finite(x):
    """NaN / inf -> None, recursively (JSON-safe)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def markdown(result: dict) -> str:
    t = result["table"]
    arrows = {"higher": "↑", "lower": "↓"}
    head = " | ".join(f"{m} {arrows[result['better'][m]]}" for m in METRICS)
    lines = [(f"# Attribution faithfulness ({result['model']}, {len(result['prompts'])} prompts of "
             f"{result['words']} words, word units, target = true next word)"), "",
             (f"loadavg before/after: {np.round(result['loadavg_before'], 2).tolist()} / "
             f"{np.round(result['loadavg_after'], 2).tolist()}; threads {result['threads']}; total "
             f"{result['seconds_total'] / 60:.1f} min" + (f" summed over {result['processes']} processes"
                                                           if result.get("processes", 1) > 1 else "")), "",
             f"| method | {head} | forward | backward | evaluations | attribution s | faithfulness s |",
             "|---" * (len(METRICS) + 6) + "|"]
    for name, r in t.items():
        vals = " | ".join(f"{r[m]:.4f}" if r.get(m) is not None else "-" for m in METRICS)
        cost = (f"{r['attr_forward_passes']:.1f} | {r['attr_backward_passes']:.1f} | {r['attr_evaluations']:.1f} | "
                f"{r['attr_seconds']:.3f}" if "attr_seconds" in r else "- | - | - | -")
        lines.append(f"| {name} | {vals} | {cost} | {r['faith_seconds']:.3f} |")
    names = result["methods"]
    lines += ["", "Mean Spearman rho between methods' rankings:", "",
              "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for a in names:
        rhos = [result["spearman"][a][b] for b in names]
        lines.append(f"| {a} | " + " | ".join(f"{v:.2f}" if v is not None and np.isfinite(v) else "-" for v in rhos)
                     + " |")
    opts = ", ".join(f"{k}: {v}" for k, v in result["options"].items() if v)
    lines += ["", f"Options: {opts}; soft samples {result['soft_samples']}.", ""]
    partial = result.get("methods_in_some_runs_only") or {}
    if partial:
        lines += ["Left out of the table (scored on only some of the prompts): " + ", ".join(
            f"{m} ({r['prompts']} prompts)" for m, r in partial.items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
