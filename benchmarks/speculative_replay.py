"""How far can model-free drafting go on CPU? Exact offline replay of greedy speculative decoding
(workbench.speculative.replay) on the Spec-Bench-style prompts of speculative_cpu.py, with forward costs measured
in the same run.

    OMP_NUM_THREADS=1 python benchmarks/speculative_replay.py [--per-category 2] [--max-new-tokens 64]
                                                              [--reps 5] [--drafters prompt_lookup,lookahead]

1. The prompts: `build_prompts` of speculative_cpu.py (same categories, seed and selection).
2. The ground truth: each prompt's autoregressive greedy continuation (`LM.generate`, fp32), generated once and
   cached in benchmarks/results/speculative_replay_truth.json (keyed by model, prompt ids and max_new_tokens).
3. Forward costs per prompt (`measure_forward_costs`: the speculative step's forward path at 1..budget + 1 fed
   tokens, the AR decode forward, the prefill; medians of --reps, sizes interleaved, --threads torch threads).
4. Replays per drafter: fixed draft length k in {1, 2, 4, 8, 16}; `cost_aware` (the rule of
   `speculative_generate(cost_aware=True)`, its acceptance table fresh at the first prompt and kept across the
   prompts in order, as one LM keeps it); `cost_aware_ngram_key`, the same rule with the draft key the drafters
   had before (the length of the n-gram / suffix they matched, `key_cap=1`, instead of how far back the context
   agrees with earlier text, see their `draft_key`); `oracle` (hindsight: the least-cost draft length per step).
   Drafter instances are kept across the prompts in order, as speculative_cpu.py keeps them within a repetition.
   Each prompt's policies see that prompt's measured costs.

Estimated speedup over autoregressive decoding = sum over prompts of n * c_ar / sum over prompts of sum over
steps c(fed) ("est."), also with the drafting time measured in the replay added ("+draft", not for the oracle,
whose drafter runs every size) and with each prompt's prefill on both sides ("+prefill": what tokens/s including
the prefill, as speculative_cpu.py reports it, would show). tau: mean over prompts of tokens per step.
os.getloadavg() is recorded before and after. Writes benchmarks/results/speculative_replay.json and .md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from speculative_cpu import CATEGORIES, build_prompts  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FIXED = (1, 2, 4, 8, 16)


def truth_key(model: str, ids: list[int], max_new_tokens: int) -> str:
    return hashlib.sha256(json.dumps([model, ids, max_new_tokens]).encode()).hexdigest()[:16]


def ground_truth(lm, model: str, prompts: list[dict], max_new_tokens: int, path: Path) -> dict[str, list[int]]:
    """{prompt name: greedy new ids}, generated where the cache lacks them (and the cache rewritten)."""
    from tqdm.auto import tqdm

    cache = json.loads(path.read_text()) if path.exists() else {}
    missing = [p for p in prompts if truth_key(model, p["ids"], max_new_tokens) not in cache]
    for p in tqdm(missing, desc="greedy ground truth", unit="prompt", disable=not missing):
        g = lm.generate(p["ids"], max_new_tokens=max_new_tokens, temperature=0.0)
        cache[truth_key(model, p["ids"], max_new_tokens)] = {"name": p["name"], "new_ids": list(g.new_ids)}
    if missing:
        path.write_text(json.dumps(cache, indent=1) + "\n")
    return {p["name"]: cache[truth_key(model, p["ids"], max_new_tokens)]["new_ids"] for p in prompts}


def policy_names() -> list[str]:
    return [f"fixed_{k}" for k in FIXED] + ["cost_aware_ngram_key", "cost_aware", "oracle"]


def run_replays(drafter_name: str, prompts: list[dict], truths: dict, costs: dict, budget: int,
                max_new_tokens: int) -> dict[str, list]:
    """{policy: [ReplayResult per prompt]} with drafter instances and the cost rule's table kept across prompts."""
    from workbench.speculative import get_drafter
    from workbench.speculative.acceptance import AcceptanceTable
    from workbench.speculative.replay import CostAware, FixedLength, replay, replay_oracle

    names = policy_names()
    drafters = {name: get_drafter(drafter_name) for name in names}
    drafters["cost_aware_ngram_key"] = get_drafter(drafter_name, key_cap=1)  # the key before: the match's length
    tables = {name: AcceptanceTable() for name in names if name.startswith("cost_aware")}
    out: dict[str, list] = {name: [] for name in names}
    for p in prompts:
        truth, fed = truths[p["name"]], costs[p["name"]].fed
        for k in FIXED:
            out[f"fixed_{k}"].append(replay(drafters[f"fixed_{k}"], FixedLength(k), p["ids"], truth, budget,
                                            max_new_tokens))
        for name, table in tables.items():
            out[name].append(replay(drafters[name], CostAware(fed, table), p["ids"], truth, budget, max_new_tokens))
        out["oracle"].append(replay_oracle(drafters["oracle"], fed, p["ids"], truth, budget, max_new_tokens))
    return out


def summarise(results: list, costs: list) -> dict:
    """Aggregate one policy over prompts (module docstring)."""
    tokens = sum(r.n_tokens for r in results)
    ar = sum(r.n_tokens * c.ar for r, c in zip(results, costs))
    spent = sum(r.forward_seconds(c.fed) for r, c in zip(results, costs))
    drafting = sum(r.draft_seconds() for r in results)
    prefill = sum(c.prefill for c in costs)
    steps = [s for r in results for s in r.steps]
    return {"tokens": tokens, "steps": len(steps), "tau": statistics.mean(r.tau for r in results),
            "mean_drafted": statistics.mean(s.drafted for s in steps),
            "mean_accepted": statistics.mean(s.accepted for s in steps),
            "speedup": ar / spent, "speedup_with_drafting": ar / (spent + drafting),
            "speedup_with_prefill": (prefill + ar) / (prefill + spent)}


def markdown(result: dict) -> str:
    s, load = result["settings"], result["load_average_before"][0]
    relative = ", ".join(f"{n}: {result['relative_costs'][str(n)]:.2f}" for n in (1, 2, 3, 5, 9, 17)
                         if str(n) in result["relative_costs"])
    setting = (f"{result['model']}, greedy fp32, {result['num_prompts']} prompts ({s['per_category']} per category), "
               f"{s['max_new_tokens']} new tokens, budget {s['budget']}")
    measured = (f"forward costs: medians of {s['reps']} per prompt, {result['threads']} thread(s), load average "
                f"{load:.2f} -> {result['load_average_after'][0]:.2f}. Overall c(n)/c_ar: {relative}.")
    lines = ["# speculative_replay", "", f"{setting}, {measured}",
             "", "Estimated speedup over autoregressive decoding from an exact replay (est.: forwards only; +draft: "
             "with the measured drafting time; +prefill: with each prompt's prefill on both sides).", ""]
    for drafter, table in result["drafters"].items():
        cats = [c for c in table["per_category"]]
        lines += [f"## {drafter}", "", "| policy | tau | drafted/step | est. | +draft | +prefill | "
                  + " | ".join(cats) + " |", "|---|---|---|---|---|---|" + "---|" * len(cats)]
        for policy, o in table["overall"].items():
            per = " | ".join(f"{table['per_category'][c][policy]['speedup']:.2f}" for c in cats)
            draft = f"{o['speedup_with_drafting']:.2f}" if policy != "oracle" else "-"
            lines.append(f"| {policy} | {o['tau']:.2f} | {o['mean_drafted']:.1f} | {o['speedup']:.2f} | {draft} | "
                         f"{o['speedup_with_prefill']:.2f} | {per} |")
        lines.append("")
    lines.append("Per-category columns: est. speedup (forwards only).")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--budget", type=int, default=16, help="most draft nodes per step (fixed k above it is capped)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each forward-cost measurement (median)")
    ap.add_argument("--drafters", default="prompt_lookup,lookahead", help="comma-separated replayable drafters")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt selection (as speculative_cpu.py)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--truth", default=str(RESULTS / "speculative_replay_truth.json"), help="ground-truth cache")
    ap.add_argument("--out", default=str(RESULTS / "speculative_replay.json"))
    args = ap.parse_args()
    for name in ("per_category", "max_new_tokens", "budget", "reps", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    from workbench.speculative.replay import REPLAYABLE

    drafters = [d.strip() for d in args.drafters.split(",") if d.strip()]
    if not drafters or any(d not in REPLAYABLE for d in drafters):
        ap.error(f"--drafters must name some of {', '.join(REPLAYABLE)}, got {args.drafters!r}")
    if args.budget < max(FIXED):
        ap.error(f"--budget must be >= {max(FIXED)} (the largest fixed k), got {args.budget}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()

    from tqdm.auto import tqdm

    from workbench.models import LM
    from workbench.speculative.forward_costs import measure_forward_costs

    lm = LM.load(args.model, dtype="float32")
    prompts = build_prompts(lm, args.per_category, args.seed)
    truths = ground_truth(lm, args.model, prompts, args.max_new_tokens, Path(args.truth))
    measure_forward_costs(lm, prompts[0]["ids"], max_fed=args.budget + 1, reps=1)  # warm-up (input-major copy)
    costs = {p["name"]: measure_forward_costs(lm, p["ids"], max_fed=args.budget + 1, reps=args.reps)
             for p in tqdm(prompts, desc="forward costs", unit="prompt")}

    result: dict = {"model": args.model, "dtype": "float32", "decoding": "greedy",
                    "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "settings": {k: v for k, v in vars(args).items() if k not in ("out", "truth")},
                    "num_prompts": len(prompts), "drafters": {}}
    every = [costs[p["name"]] for p in prompts]
    result["relative_costs"] = {str(n): sum(c.fed[n] for c in every) / sum(c.ar for c in every)
                                for n in every[0].fed}
    for drafter in tqdm(drafters, desc="replays", unit="drafter"):
        replays = run_replays(drafter, prompts, truths, costs, args.budget, args.max_new_tokens)
        table = {"overall": {name: summarise(rs, every) for name, rs in replays.items()}, "per_category": {}}
        for c in CATEGORIES:
            idx = [i for i, p in enumerate(prompts) if p["category"] == c]
            if idx:
                table["per_category"][c] = {name: summarise([rs[i] for i in idx], [every[i] for i in idx])
                                            for name, rs in replays.items()}
        table["step_columns"] = ["position", "key", "drafted", "accepted"]
        table["prompts"] = [{"name": p["name"], "category": p["category"],
                             **{name: {"tau": rs[i].tau, "steps": [[s.position, s.key, s.drafted, s.accepted]
                                                                   for s in rs[i].steps]}
                                for name, rs in replays.items()}}
                            for i, p in enumerate(prompts)]
        result["drafters"][drafter] = table
    result["costs"] = {p["name"]: costs[p["name"]].to_dict() for p in prompts}
    result["load_average_before"] = list(load_before)
    result["load_average_after"] = list(os.getloadavg())
    result["total_seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
