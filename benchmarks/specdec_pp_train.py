"""Train the SpecDec++ acceptance head (Huang et al., "SpecDec++: Boosting Speculative Decoding via Adaptive
Candidate Lengths", 2024) for the Qwen pair of speculative_cpu.py --pair (draft qwen2.5-coder-0.5b, target
qwen2.5-coder-1.5b), on calibration prompts disjoint from the benchmark's.

    OMP_NUM_THREADS=1 python benchmarks/specdec_pp_train.py [--prompts 8] [--new-tokens 32] [--threads 1]
    OMP_NUM_THREADS=1 python benchmarks/speculative_cpu.py --pair --per-category 1 --max-new-tokens 32 \\
        --threads 1 --specdec-head benchmarks/results/specdec_pp_head_qwen.pt

Calibration prompts: `build_prompts` of speculative_cpu.py (same categories and chat template) with another seed
(--calib-seed, default 1; several seeds, e.g. 1,2,3, pool their prompts, a later seed adding only prompts whose
corpus rows are new) and 3 per category, WITHOUT its math prompts (that script's three math problems are
fixed, so every seed shares them): the math prompts here are CALIBRATION_MATH, written for this script. Every
prompt is named by the corpus rows it uses (a HumanEval task id, botchan#row, lee#row, udhr-<lang>-art<n>);
a calibration prompt is dropped when any of its rows appears in the benchmark's prompts at --bench-seed
(default 0, the benchmark's) for every --per-category it allows (1, 2, 3), and `check_disjoint` then asserts
that no row name and no token sequence is shared. From what is left, --prompts prompts are taken round-robin
over the categories.

Calibration data (specdec_pp_head.calibration_data, greedy): the target continues each prompt by --new-tokens
tokens; draft and target run once over prompt + continuation; each position's label is 1 iff the draft's argmax
equals the target's. The features are cached under $WORKBENCH_HOME/specdec_pp/ (keyed by the models, prompt ids
and --new-tokens), so refitting with other head settings skips the model runs.

Held-out split by PROMPT (positions within a prompt are correlated): every --heldout-every-th prompt (default 4:
prompts 4 and 8 of 8) is held out; the head saved is the one fit on the other prompts (logistic regression by
default, weighted BCE with --rejected-weight, Adam with --weight-decay as an L2 penalty: the calibration set is
small next to the draft's 896 hidden features). Reported per split (train, held-out, and
leave-one-prompt-out over all prompts: each scored by a head fit on the others): positions, acceptance rate
(label balance), weighted and plain BCE, the BCE of predicting the training acceptance rate everywhere (the
constant baseline), accuracy at 0.5 against the majority-class rate, ROC AUC (pairwise count). Prompts are built
with the target's tokenizer alone, so a cached calibration loads no model.

Writes the head to --out (default benchmarks/results/specdec_pp_head_qwen.pt: about 13 KB for logistic
regression) and benchmarks/results/specdec_pp_train.json + .md; os.getloadavg() is recorded before and after.
Simplifications: one small calibration run (8 prompts x 32 tokens by default, ~6 minutes on one thread), greedy
labels only (the benchmark decodes greedily), no hyperparameter search.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from speculative_cpu import CATEGORIES, _chat, build_prompts

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CALIBRATION_MATH = [
    ("A library has 120 books on a shelf. On Monday 18 books are borrowed and 7 are returned; on Tuesday 25 are "
    "borrowed and 12 are returned. How many books are on the shelf now? Explain step by step."),
    ("A rectangle is 14 centimetres long and 9 centimetres wide. A square has the same perimeter. What is the area "
    "of the square? Explain step by step."),
    ("Maria saves 35 dollars a week. After 6 weeks she spends a third of her savings on a bicycle. How much money "
    "does she have left? Explain step by step."),
]


def source_keys(name: str) -> set[str]:
    """The corpus rows a prompt is built from, from its speculative_cpu name ('HumanEval/3+botchan#5' -> both)."""
    return set(name.split("+"))


def calibration_prompts(lm, count: int, calib_seeds: int | list[int], bench_seed: int) -> tuple[list[dict], list[dict]]:
    """(calibration prompts, benchmark prompts they were checked against); see the module docstring. Several
    calibration seeds pool their prompts (in seed order, each corpus row once)."""
    bench: list[dict] = []
    for per_category in (1, 2, 3):
        bench += build_prompts(lm, per_category, bench_seed)
    taken = set().union(*(source_keys(p["name"]) for p in bench))
    pool: list[dict] = []
    for seed in [calib_seeds] if isinstance(calib_seeds, int) else calib_seeds:
        fresh = [p for p in build_prompts(lm, 3, seed)
                 if p["category"] != "math" and not source_keys(p["name"]) & taken]
        pool += fresh
        taken = taken.union(*(source_keys(p["name"]) for p in fresh))  # a later seed adds only new rows
    pool += [{"category": "math", "name": f"calib-math#{i}", "ids": _chat(lm, [(text, None)])}
             for i, text in enumerate(CALIBRATION_MATH)]
    by_category = {c: [p for p in pool if p["category"] == c] for c in CATEGORIES}
    chosen: list[dict] = []
    while len(chosen) < count and any(by_category.values()):
        for c in CATEGORIES:
            if by_category[c] and len(chosen) < count:
                chosen.append(by_category[c].pop(0))
    if len(chosen) < count:
        raise ValueError(f"--prompts must be <= {len(chosen)} (disjoint calibration prompts available), got {count}")
    check_disjoint(chosen, bench)
    return chosen, bench


def check_disjoint(calibration: list[dict], bench: list[dict]) -> None:
    """Raise ValueError if a calibration prompt shares a corpus row or its token ids with a benchmark prompt."""
    bench_keys = set().union(*(source_keys(p["name"]) for p in bench)) if bench else set()
    bench_ids = {tuple(p["ids"]) for p in bench}
    for p in calibration:
        shared = source_keys(p["name"]) & bench_keys
        if shared or tuple(p["ids"]) in bench_ids:
            raise ValueError(f"calibration prompt {p['name']!r} overlaps the benchmark prompts ({sorted(shared)})")


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """P(score of a random accepted > score of a random rejected), ties count 1/2; None without both classes."""
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return None
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def split_metrics(head, features: torch.Tensor, labels: torch.Tensor, rejected_weight: float,
                  prior: float | None = None) -> dict:
    """Positions, acceptance rate, weighted / plain BCE, accuracy at 0.5, majority-class rate, ROC AUC, and
    `prior_bce`: the BCE of predicting `prior` (the training acceptance rate; default this split's) everywhere."""
    from workbench.speculative.drafters.specdec_pp_head import weighted_bce

    with torch.no_grad():
        logits = head(features)
    rate = float(labels.float().mean())
    prior = rate if prior is None else prior
    prior_logit = torch.full_like(labels, math.log(prior / (1 - prior))) if 0 < prior < 1 else None
    return {"positions": int(labels.numel()), "acceptance_rate": rate,
            "weighted_bce": float(weighted_bce(logits, labels, rejected_weight)),
            "bce": float(weighted_bce(logits, labels, 1.0)),
            "prior_bce": float(weighted_bce(prior_logit, labels, 1.0)) if prior_logit is not None else None,
            "accuracy": float(((logits > 0).float() == (labels > 0.5).float()).float().mean()),
            "majority_rate": max(rate, 1 - rate), "auc": roc_auc(logits, labels)}


def leave_one_prompt_out(features: list, labels: list, fit) -> dict:
    """Metrics pooled over prompts of heads fit (by `fit(x, y)`) on every other prompt."""
    logits, prior = [], []
    for k in range(len(features)):
        rest = [i for i in range(len(features)) if i != k]
        y = torch.cat([labels[i] for i in rest])
        head = fit(torch.cat([features[i] for i in rest]), y)
        with torch.no_grad():
            logits.append(head(features[k]))
        prior.append(torch.full_like(labels[k], float(y.mean())))
    p = torch.cat(prior).clamp(1e-6, 1 - 1e-6)
    out = split_metrics(lambda z: z, torch.cat(logits), torch.cat(labels), 1.0)
    out["prior_bce"] = float(torch.nn.functional.binary_cross_entropy(p, torch.cat(labels)))
    del out["weighted_bce"]
    return {"prompts": len(features), **out}


def parse_hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated layer widths (empty = logistic regression), got {text!r}") from None
    if any(w < 1 for w in widths):
        raise ValueError(f"--hidden widths must be >= 1, got {text!r}")
    return widths


def check_args(args: argparse.Namespace) -> None:
    """ValueError naming the option for bad values, before any model is loaded."""
    for name in ("prompts", "new_tokens", "epochs", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.prompts < 2:
        raise ValueError(f"--prompts must be >= 2 (a training and a held-out prompt), got {args.prompts}")
    if not 2 <= args.heldout_every <= args.prompts:
        raise ValueError(f"--heldout-every must be in [2, --prompts={args.prompts}], got {args.heldout_every}")
    for name in ("lr", "rejected_weight"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if not args.weight_decay >= 0:
        raise ValueError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    try:
        args.calib_seeds = [int(x) for x in str(args.calib_seed).split(",")]
    except ValueError:
        raise ValueError(f"--calib-seed must be an int or comma-separated ints, got {args.calib_seed!r}") from None
    if args.bench_seed in args.calib_seeds:
        raise ValueError(f"--calib-seed must differ from --bench-seed ({args.bench_seed})")
    args.hidden_widths = parse_hidden(args.hidden)


def collect(args: argparse.Namespace, prompts: list[dict], cache: Path) -> tuple[list, list]:
    """Per prompt (features, labels), from the cache file when it holds this exact calibration (then no model
    is loaded)."""
    from tqdm.auto import tqdm

    from workbench.models import LM
    from workbench.speculative.drafters.specdec_pp_head import calibration_data

    if cache.is_file():
        blob = torch.load(str(cache), weights_only=True)
        return blob["features"], blob["labels"]
    target = LM.load(args.target, dtype="float32")
    draft = LM.load(args.draft, dtype="float32")
    new_tokens = args.new_tokens
    features, labels = [], []
    for p in tqdm(prompts, desc="calibration (target continues, both models score)", unit="prompt"):
        f, y = calibration_data(draft, target, [p["ids"]], new_tokens=new_tokens)
        features.append(f)
        labels.append(y)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features": features, "labels": labels}, str(cache))
    return features, labels


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = ["# specdec_pp_train", "", f"Command: `{result['command']}`", "",
             (f"Acceptance head for {result['draft']} -> {result['target']}: {result['num_prompts']} calibration "
             f"prompts x {s['new_tokens']} tokens (greedy labels), held out every {s['heldout_every']}th prompt "
             f"({', '.join(result['heldout_prompts'])}); head hidden={list(result['hidden'])}, epochs {s['epochs']}, "
             f"lr {s['lr']}, weight decay {s['weight_decay']}, rejected weight {s['rejected_weight']}; "
             f"{result['threads']} threads, load average {result['load_average_before'][0]:.2f} -> "
             f"{result['load_average_after'][0]:.2f}, {result['total_seconds']:.0f} s"
             f"{' (calibration features from the cache of an earlier run)' if result.get('features_from_cache') else ''}."),
             "",
             "| split | prompts | positions | accepted | BCE | prior BCE | accuracy | majority | AUC |",
             "|---|---|---|---|---|---|---|---|---|"]
    for split in ("train", "heldout", "leave_one_prompt_out"):
        m = result[split]
        auc = f"{m['auc']:.3f}" if m["auc"] is not None else "-"
        prior = f"{m['prior_bce']:.3f}" if m["prior_bce"] is not None else "-"
        lines.append(f"| {split} | {m['prompts']} | {m['positions']} | {m['acceptance_rate']:.3f} | {m['bce']:.3f} | "
                     f"{prior} | {m['accuracy']:.3f} | {m['majority_rate']:.3f} | {auc} |")
    lines += ["", ("prior BCE: predicting the training prompts' acceptance rate everywhere. leave_one_prompt_out: "
              "each prompt scored by a head fit on the other prompts (same settings), pooled.")]
    lines += ["", f"Head: `{result['head_path']}` ({result['head_bytes']} bytes). Calibration prompts: "
              + ", ".join(f"{p['category']}:{p['name']}" for p in result["prompts"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draft", default="qwen2.5-coder-0.5b")
    ap.add_argument("--target", default="qwen2.5-coder-1.5b")
    ap.add_argument("--prompts", type=int, default=8, help="calibration prompts (round-robin over categories)")
    ap.add_argument("--new-tokens", type=int, default=32, help="target continuation per calibration prompt")
    ap.add_argument("--heldout-every", type=int, default=4, help="every Nth prompt is held out")
    ap.add_argument("--calib-seed", default="1",
                    help="seed(s) of the calibration prompt selection; several (1,2,3) pool their prompts")
    ap.add_argument("--bench-seed", type=int, default=0, help="speculative_cpu.py's --seed, whose prompts are excluded")
    ap.add_argument("--hidden", default="", help="head MLP widths, comma-separated (empty: logistic regression)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--weight-decay", type=float, default=0.01, help="Adam L2 penalty")
    ap.add_argument("--rejected-weight", type=float, default=1.0, help="BCE weight of the rejected class")
    ap.add_argument("--seed", type=int, default=0, help="seed of the head's initialisation")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default=str(RESULTS / "specdec_pp_head_qwen.pt"), help="where the head is saved")
    ap.add_argument("--results", default=str(RESULTS / "specdec_pp_train.json"), help="results JSON (+ .md)")
    args = ap.parse_args(argv)
    try:
        check_args(args)
    except ValueError as e:
        ap.error(str(e))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()

    from types import SimpleNamespace

    from workbench.assets import home
    from workbench.speculative.drafters.specdec_pp_head import fit_acceptance_head
    from workbench.tokenization import load_tokenizer

    chat = SimpleNamespace(tokenizer=load_tokenizer(args.target))  # what build_prompts uses of the LM
    prompts, bench = calibration_prompts(chat, args.prompts, args.calib_seeds, args.bench_seed)
    key = hashlib.sha256(json.dumps([args.draft, args.target, args.new_tokens, [p["ids"] for p in prompts]])
                         .encode()).hexdigest()[:16]
    cache = home() / "specdec_pp" / f"calibration_{key}.pt"
    from_cache = cache.is_file()
    features, labels = collect(args, prompts, cache)

    held = [i for i in range(len(prompts)) if i % args.heldout_every == args.heldout_every - 1]
    train = [i for i in range(len(prompts)) if i not in held]
    x_train, y_train = torch.cat([features[i] for i in train]), torch.cat([labels[i] for i in train])
    x_held, y_held = torch.cat([features[i] for i in held]), torch.cat([labels[i] for i in held])
    def fit(x: torch.Tensor, y: torch.Tensor, progress: bool = False):
        return fit_acceptance_head(x, y, args.hidden_widths, args.rejected_weight, args.epochs, args.lr, args.seed,
                                   progress=progress, weight_decay=args.weight_decay)

    head = fit(x_train, y_train, progress=True)
    prior = float(y_train.mean())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head.save(out)

    result = {
        "draft": args.draft, "target": args.target, "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("hidden_widths", "calib_seeds")},
        "hidden": list(args.hidden_widths), "num_prompts": len(prompts),
        "prompts": [{"category": p["category"], "name": p["name"], "prompt_tokens": len(p["ids"]),
                     "positions": int(labels[i].numel()), "acceptance_rate": float(labels[i].mean()),
                     "heldout": i in held} for i, p in enumerate(prompts)],
        "heldout_prompts": [prompts[i]["name"] for i in held],
        "benchmark_prompts_excluded": sorted({p["name"] for p in bench}),
        "train": {"prompts": len(train), **split_metrics(head, x_train, y_train, args.rejected_weight, prior)},
        "heldout": {"prompts": len(held), **split_metrics(head, x_held, y_held, args.rejected_weight, prior)},
        "leave_one_prompt_out": leave_one_prompt_out(features, labels, fit),
        "features_cache": str(cache), "features_from_cache": from_cache, "head_bytes": out.stat().st_size,
        "head_path": str(out.resolve().relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out),
        "command": "python benchmarks/specdec_pp_train.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "total_seconds": time.perf_counter() - started,
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out}, {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
