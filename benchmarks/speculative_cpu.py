"""Speculative decoding on CPU: every registered model-free drafter against autoregressive decoding and HF's
built-ins, on a small Spec-Bench-style prompt set (Xia et al., "Unlocking Efficiency in Large Language Model
Inference: A Comprehensive Survey of Speculative Decoding", 2024) built from the offline corpora.

    python benchmarks/speculative_cpu.py [--model smollm2-135m] [--per-category 2] [--reps 1]
                                         [--max-new-tokens 64] [--lookup-tokens 10] [--threads N]
    python benchmarks/speculative_cpu.py --pair [--per-category 1] [--max-new-tokens 32]   # Qwen 0.5B -> 1.5B

Categories (every prompt rendered with the model's chat template): multi-turn chat (two user turns about a
HumanEval problem and an english-prose passage), code (HumanEval prompts), summarisation (a long english-prose
passage + "Summarize:"), QA (a news passage + a question), math (arithmetic word problems written here),
translation (a UDHR article in French / Spanish + "Translate to English:"). Prompts are picked with a fixed seed.

Methods, greedy fp32, interleaved per prompt (every method runs on a prompt before the next prompt), median of
`--reps` timings per prompt:
- ar: `lm.generate` (the baseline for "speedup_vs_ar");
- default mode: every drafter in the registry that needs no draft model (prompt_lookup, token_recycling,
  lookahead, stand, goose, del, ... as registered when run) through `speculative_generate` with the greedy
  verifier and the cost-aware budget (`--no-cost-aware` turns it off); `prompt_lookup_fixed` is prompt lookup
  with the fixed budget, to show what the cost rule changes. Stateful drafters (token recycling, goose, stand)
  are built once per repetition and keep their memory across that repetition's prompts, in prompt order;
- --pair mode (target qwen2.5-coder-1.5b, draft qwen2.5-coder-0.5b, both loaded once): the draft-model
  drafters (draft_model chain, dyspec, specdec_pp when `--specdec-head` gives its trained head) and HF assisted
  generation (`assistant_model=`, HF's built-in for a draft model);
- hf_greedy: `lm.model.generate(do_sample=False)` (the baseline for "speedup_vs_hf_greedy");
- hf_prompt_lookup (default mode): `lm.model.generate(do_sample=False, prompt_lookup_num_tokens=N)`.
Every output is compared with `ar`'s tokens (`identical_to_ar`, recorded per method; HF's are not guaranteed
bit for bit). Targets of issue #7: the best of our lossless methods >= 1.5x `ar`, and its speedup over `ar`
>= 1.25x the best HF built-in's speedup over hf_greedy; both recorded as met or not. Target forward passes for
HF are counted with a forward pre-hook on the HF model. Besides wall-clock time every generation records the
process CPU time it used (`cpu_seconds`; speedups `cpu_speedup_*` and targets `targets_cpu_time` from it): on a
machine shared with other jobs that is the steadier measure. Our verification forwards use input-major Linear
weights from 4 fed tokens on (`speculative_generate(input_major=...)`, workbench.models.layout; `--no-input-major`
turns it off); AR, hf_greedy and HF's built-ins run on the same model in its usual layout. Every method is
warmed up once before timing (this also runs the cost-aware budget's one-off forward-time calibration).
Greedy loops: a 135M model decoding greedily sometimes repeats itself ("of the House of the House ..."), and
copying drafters are accepted almost always inside such a loop. Each prompt records `ar_self_repeat`
(`self_repeat_fraction` of ar's output: the share of its tokens ending a 10-gram seen earlier in it); prompts at
>= 0.5 are listed as `loop_prompts`, and the overall speedups and targets are also given without them
(`overall_without_loops`, `targets_without_loops`, `targets_cpu_time_without_loops`).
os.getloadavg() is recorded before and after: wall-clock speeds only mean something on a quiet machine. Writes
benchmarks/results/speculative_cpu.json + .md (speculative_cpu_pair.* with --pair).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from workbench.speculative.metrics import self_repeat_fraction

LOOP_SHARE = 0.5  # ar outputs with at least this self_repeat_fraction count as greedy loops (module docstring)
LOOP_NGRAM = 10
CATEGORIES = ["multi_turn", "code", "summarization", "qa", "math", "translation"]

MATH = [
    "A baker makes 24 muffins every morning and packs them in boxes of 6. On Monday she sold 3 boxes in the morning "
    "and 1 box in the afternoon. How many muffins were left at the end of the day? Explain step by step.",
    "Tom has 15 apples. He gives 4 apples to Anna and buys twice as many apples as he gave away. Then he eats 2. "
    "How many apples does Tom have now? Explain step by step.",
    "A train travels 60 kilometres per hour for 3 hours and then 80 kilometres per hour for 2 hours. How many "
    "kilometres does it travel in total? Explain step by step.",
]
QUESTIONS = ["What is the main event described in the passage, and where did it happen?",
             "Who is mentioned in the passage, and what did they say or do?"]


def _chat(lm, turns: list[tuple[str, str | None]]) -> list[int]:
    messages = []
    for user, assistant in turns:
        messages.append({"role": "user", "content": user})
        if assistant is not None:
            messages.append({"role": "assistant", "content": assistant})
    return lm.tokenizer.apply_chat_template(messages)


def _cut(text: str, chars: int) -> str:
    """The first `chars` characters of text, ending at a sentence or line end where possible."""
    if len(text) <= chars:
        return text.strip()
    head = text[:chars]
    end = max(head.rfind(". "), head.rfind("\n"))
    return (head[:end + 1] if end > chars // 2 else head).strip()


def build_prompts(lm, per_category: int, seed: int) -> list[dict]:
    """[{category, name, ids}] with `per_category` prompts per category, chosen with `seed`."""
    from workbench.assets import load_corpus

    rng = random.Random(seed)
    humaneval = load_corpus("humaneval")
    botchan = load_corpus("english-prose", sources=["botchan"])
    lee = load_corpus("english-prose", sources=["lee"])
    lee = lee.filter(lambda row: len(row["text"]) >= 1200)
    udhr = load_corpus("udhr", languages=["fra", "spa"], articles=list(range(1, 31)))
    he = rng.sample(range(len(humaneval)), 2 * per_category)
    prose = rng.sample(range(1, len(botchan)), per_category)  # row 0 is the translator's note
    news = rng.sample(range(len(lee)), 2 * per_category)
    articles = rng.sample(range(1, 31), per_category)
    out: list[dict] = []
    for i in range(per_category):
        problem = humaneval[he[i]]
        passage = _cut(botchan[prose[i]]["text"], 800)
        first = f"Here is a Python function signature with its docstring:\n\n{problem['prompt']}\nWhat does it do?"
        answer = (f"The function `{problem['entry_point']}` is described by its docstring: "
                  + _cut(problem["prompt"].split('"""')[1] if '"""' in problem["prompt"] else problem["prompt"], 300))
        second = f"Thanks. Now read this passage and tell me who the narrator is:\n\n{passage}"
        out.append({"category": "multi_turn", "name": f"{problem['task_id']}+botchan#{prose[i]}",
                    "ids": _chat(lm, [(first, answer), (second, None)])})
    for i in range(per_category):
        problem = humaneval[he[per_category + i]]
        out.append({"category": "code", "name": problem["task_id"],
                    "ids": _chat(lm, [("Complete this Python function:\n\n" + problem["prompt"], None)])})
    for i in range(per_category):
        passage = _cut(lee[news[i]]["text"], 2400)
        out.append({"category": "summarization", "name": f"lee#{news[i]}",
                    "ids": _chat(lm, [(passage + "\n\nSummarize:", None)])})
    for i in range(per_category):
        passage = _cut(lee[news[per_category + i]]["text"], 1200)
        question = QUESTIONS[i % len(QUESTIONS)]
        out.append({"category": "qa", "name": f"lee#{news[per_category + i]}",
                    "ids": _chat(lm, [(f"{passage}\n\nQuestion: {question}", None)])})
    for i in range(per_category):
        out.append({"category": "math", "name": f"math#{i}", "ids": _chat(lm, [(MATH[i % len(MATH)], None)])})
    for i in range(per_category):
        code = ["fra", "spa"][i % 2]
        row = udhr.filter(lambda r: r["code"] == code and r["article"] == articles[i])[0]
        out.append({"category": "translation", "name": f"udhr-{code}-art{articles[i]}",
                    "ids": _chat(lm, [(row["text"] + "\n\nTranslate to English:", None)])})
    return out


class ForwardCounter:
    """Counts forward calls of an HF model (pre-hook on the top module)."""

    def __init__(self, model) -> None:
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.calls += 1


def needs_draft_model(name: str) -> bool:
    """Drafters with a `draft` field load a separate draft model (draft_model, dyspec, specdec_pp)."""
    from workbench.speculative.drafters.registry import DRAFTER_REGISTRY

    return "draft" in {f.name for f in dataclasses.fields(DRAFTER_REGISTRY.get(name))}


def plan_methods(args) -> tuple[list[str], dict[str, str]]:
    """(methods in run order, {skipped method: why})."""
    from workbench.speculative.drafters.registry import DRAFTER_REGISTRY

    names = DRAFTER_REGISTRY.names()
    skipped: dict[str, str] = {}
    if args.pair:
        ours = [n for n in ("draft_model", "dyspec", "specdec_pp") if n in names]
        if "specdec_pp" in ours and not args.specdec_head:
            ours.remove("specdec_pp")
            skipped["specdec_pp"] = "needs a trained acceptance head (--specdec-head PATH)"
        return ["ar", *ours, "hf_greedy", "hf_assisted"], skipped
    ours = []
    for n in names:
        if needs_draft_model(n):
            skipped[n] = "needs a draft model (run with --pair)"
        else:
            ours.append(n)
    if "prompt_lookup" in ours and args.cost_aware:
        ours.insert(ours.index("prompt_lookup") + 1, "prompt_lookup_fixed")
    return ["ar", *ours, "hf_greedy", "hf_prompt_lookup"], skipped


def make_drafter(method: str, args, draft_lm):
    from workbench.speculative import get_drafter

    if method == "prompt_lookup_fixed":
        return get_drafter("prompt_lookup")
    if method in ("draft_model", "dyspec"):
        return get_drafter(method, draft=draft_lm)
    if method == "specdec_pp":
        return get_drafter(method, draft=draft_lm, head=args.specdec_head)
    return get_drafter(method)


def run_method(lm, method: str, ids: list[int], args, counter: ForwardCounter, drafters: dict, draft_lm) -> dict:
    """One generation; `cpu_seconds` is the process CPU time it took (robust to other jobs on a shared machine)."""
    cpu = time.process_time()
    out = _run_method(lm, method, ids, args, counter, drafters, draft_lm)
    out["cpu_seconds"] = time.process_time() - cpu
    return out


def _run_method(lm, method: str, ids: list[int], args, counter: ForwardCounter, drafters: dict, draft_lm) -> dict:
    from workbench.speculative import speculative_generate

    if method == "ar":
        g = lm.generate(ids, max_new_tokens=args.max_new_tokens, temperature=0.0)
        return {"new_ids": list(g.new_ids), "seconds": g.seconds, "forward_calls": g.forward_calls}
    if not method.startswith("hf_"):
        if method not in drafters:
            drafters[method] = make_drafter(method, args, draft_lm)
        cost_aware = args.cost_aware and method != "prompt_lookup_fixed"
        g = speculative_generate(lm, ids, drafter=drafters[method], max_new_tokens=args.max_new_tokens,
                                 temperature=0.0, budget=args.budget, cost_aware=cost_aware,
                                 input_major=args.input_major)
        return {"new_ids": list(g.new_ids), "seconds": g.seconds, "forward_calls": g.forward_calls, "tau": g.tau,
                "acceptance": g.acceptance_rate, "steps": len(g.steps),
                "mean_drafted": statistics.mean(s.drafted for s in g.steps) if g.steps else 0.0}
    x = torch.tensor([ids])
    extra: dict = {}
    if method == "hf_prompt_lookup":
        extra = {"prompt_lookup_num_tokens": args.lookup_tokens}
    elif method == "hf_assisted":
        extra = {"assistant_model": draft_lm.model}
    counter.calls = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        out = lm.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=args.max_new_tokens,
                                do_sample=False, pad_token_id=lm.tokenizer.eos_id, **extra)
    seconds = time.perf_counter() - t0
    return {"new_ids": out[0, len(ids):].tolist(), "seconds": seconds, "forward_calls": counter.calls}


def summarise(rows: list[dict], methods: list[str]) -> dict:
    """Aggregate per-prompt medians: tokens/s = total tokens / total median seconds; tau and acceptance averaged."""
    out = {}
    for method in methods:
        rs = [r[method] for r in rows]
        tokens = sum(len(r["new_ids"]) for r in rs)
        seconds = sum(r["seconds_median"] for r in rs)
        cpu = sum(r["cpu_seconds_median"] for r in rs)
        out[method] = {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
                       "cpu_seconds": cpu, "cpu_tokens_per_s": tokens / cpu,
                       "forward_calls": sum(r["forward_calls"] for r in rs),
                       "identical_to_ar": all(r["identical_to_ar"] for r in rs)}
        if "tau" in rs[0]:
            out[method]["tau"] = statistics.mean(r["tau"] for r in rs)
            out[method]["acceptance"] = statistics.mean(r["acceptance"] for r in rs)
            out[method]["mean_drafted"] = statistics.mean(r["mean_drafted"] for r in rs)
    for method in methods:
        out[method]["speedup_vs_ar"] = out[method]["tokens_per_s"] / out["ar"]["tokens_per_s"]
        out[method]["speedup_vs_hf_greedy"] = out[method]["tokens_per_s"] / out["hf_greedy"]["tokens_per_s"]
        out[method]["cpu_speedup_vs_ar"] = out[method]["cpu_tokens_per_s"] / out["ar"]["cpu_tokens_per_s"]
        out[method]["cpu_speedup_vs_hf_greedy"] = (out[method]["cpu_tokens_per_s"]
                                                   / out["hf_greedy"]["cpu_tokens_per_s"])
    return out


def targets(overall: dict, methods: list[str], prefix: str = "") -> dict:
    """Issue #7's two targets on the overall numbers (lossless = token-identical to ar on every prompt); prefix
    "cpu_" judges them on CPU-time speedups instead of wall-clock ones."""
    vs_ar, vs_hf = f"{prefix}speedup_vs_ar", f"{prefix}speedup_vs_hf_greedy"
    ours = [m for m in methods if m != "ar" and not m.startswith("hf_") and overall[m]["identical_to_ar"]]
    hf = [m for m in methods if m.startswith("hf_") and m != "hf_greedy"]
    best = max(ours, key=lambda m: overall[m][vs_ar]) if ours else None
    best_hf = max(hf, key=lambda m: overall[m][vs_hf]) if hf else None
    ours_speedup = overall[best][vs_ar] if best else 0.0
    hf_speedup = overall[best_hf][vs_hf] if best_hf else 1.0
    return {"best_lossless_method": best, "best_lossless_speedup_vs_ar": ours_speedup,
            "best_hf_method": best_hf, "best_hf_speedup_vs_hf_greedy": hf_speedup,
            "ratio_to_hf_speedup": ours_speedup / hf_speedup,
            "target_1_5x_ar_met": ours_speedup >= 1.5, "target_1_25x_hf_met": ours_speedup >= 1.25 * hf_speedup}


def _targets_line(label: str, t: dict) -> str:
    return (f"{label}: best lossless {t['best_lossless_method']} {t['best_lossless_speedup_vs_ar']:.2f}x ar "
            f"(target 1.5x: {'met' if t['target_1_5x_ar_met'] else 'not met'}); best HF built-in "
            f"{t['best_hf_method']} {t['best_hf_speedup_vs_hf_greedy']:.2f}x hf_greedy; ratio "
            f"{t['ratio_to_hf_speedup']:.2f} (target 1.25: {'met' if t['target_1_25x_hf_met'] else 'not met'}).")


def markdown(result: dict) -> str:
    methods = result["methods"]
    lines = [f"# speculative_cpu{' (pair)' if result['settings']['pair'] else ''}", "",
             f"Command: `{result['command']}`" if result.get("command") else "", "",
             f"{result['model']} (draft: {result.get('draft_model') or '-'}), greedy fp32, {result['num_prompts']} "
             f"prompts, {result['settings']['max_new_tokens']} new tokens, median of {result['settings']['reps']}, "
             f"{result['threads']} threads, load average {result['load_average_before'][0]:.2f} -> "
             f"{result['load_average_after'][0]:.2f} (1 min), cost-aware budget: {result['settings']['cost_aware']}, "
             f"input-major verification weights: {result['settings'].get('input_major')}.",
             "", "Speeds from wall-clock time (tok/s, vs ar, vs hf greedy) and from the process's CPU time (cpu vs "
             "ar, cpu vs hf greedy: what each generation itself consumed, robust to other jobs on a shared machine).",
             "", "| method | tau | mean drafted | fwd | tok/s | vs ar | vs hf greedy | cpu vs ar | cpu vs hf greedy "
             "| identical to ar |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        s = result["overall"][m]
        tau = f"{s['tau']:.2f}" if "tau" in s else "-"
        drafted = f"{s['mean_drafted']:.1f}" if "mean_drafted" in s else "-"
        lines.append(f"| {m} | {tau} | {drafted} | {s['forward_calls']} | {s['tokens_per_s']:.1f} | "
                     f"{s['speedup_vs_ar']:.2f} | {s['speedup_vs_hf_greedy']:.2f} | {s['cpu_speedup_vs_ar']:.2f} | "
                     f"{s['cpu_speedup_vs_hf_greedy']:.2f} | {s['identical_to_ar']} |")
    lines += ["", _targets_line("Wall clock", result["targets"]), "",
              _targets_line("CPU time", result["targets_cpu_time"])]
    if result.get("loop_prompts"):
        n_plain = result["num_prompts"] - len(result["loop_prompts"])
        loops = (f"Greedy loops: the AR output of {len(result['loop_prompts'])} prompt(s) "
                 f"({', '.join(result['loop_prompts'])}) repeats itself (>= {result['loop_share_threshold']:.0%} of "
                 f"its tokens end a {result['loop_ngram']}-gram seen earlier in it), where copying drafters are "
                 f"accepted almost always. Without them ({n_plain} prompts):")
        lines += ["", loops, "",
                  _targets_line("Wall clock", result["targets_without_loops"]), "",
                  _targets_line("CPU time", result["targets_cpu_time_without_loops"])]
    if result["skipped"]:
        lines += ["", "Not run: " + "; ".join(f"{k}: {v}" for k, v in result["skipped"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="target (default smollm2-135m; with --pair qwen2.5-coder-1.5b)")
    ap.add_argument("--pair", action="store_true", help="draft-model mode: Qwen 0.5B drafts for Qwen 1.5B")
    ap.add_argument("--draft", default="qwen2.5-coder-0.5b", help="draft model of --pair")
    ap.add_argument("--specdec-head", default=None, help="trained SpecDec++ acceptance head (--pair)")
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="keep only the first N prompts (quick runs)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--lookup-tokens", type=int, default=10, help="HF prompt_lookup_num_tokens")
    ap.add_argument("--budget", type=int, default=16, help="draft nodes per step for our drafters")
    ap.add_argument("--no-cost-aware", dest="cost_aware", action="store_false",
                    help="fixed budget for every drafter (default: cost-aware budget)")
    ap.add_argument("--no-input-major", dest="input_major", action="store_const", const=False, default=None,
                    help="verification forwards keep the usual weight layout (default: input-major from 4 tokens)")
    ap.add_argument("--methods", default=None,
                    help="comma-separated subset of the planned methods to run (ar and hf_greedy always run)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt selection")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: all cores)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/speculative_cpu[_pair].json)")
    args = ap.parse_args()
    for name in ("per_category", "reps", "max_new_tokens", "lookup_tokens", "budget", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.per_category > len(MATH):
        ap.error(f"--per-category must be <= {len(MATH)} (math prompts written in the script), got {args.per_category}")
    if args.limit is not None and args.limit < 1:
        ap.error(f"--limit must be >= 1, got {args.limit}")
    if args.specdec_head is not None and not args.pair:
        ap.error("--specdec-head only applies with --pair")
    args.model = args.model or ("qwen2.5-coder-1.5b" if args.pair else "smollm2-135m")
    out_path = Path(args.out or Path(__file__).parent / "results" /
                    ("speculative_cpu_pair.json" if args.pair else "speculative_cpu.json"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()

    from tqdm.auto import tqdm

    from workbench.models import LM

    methods, skipped = plan_methods(args)
    if args.methods:
        wanted = {m.strip() for m in args.methods.split(",") if m.strip()}
        unknown = wanted - set(methods)
        if unknown:
            ap.error(f"--methods: unknown {sorted(unknown)}; planned methods are {methods}")
        methods = [m for m in methods if m in wanted | {"ar", "hf_greedy"}]
    lm = LM.load(args.model, dtype="float32")
    draft_lm = LM.load(args.draft, dtype="float32") if args.pair else None
    prompts = build_prompts(lm, args.per_category, args.seed)[: args.limit]
    counter = ForwardCounter(lm.model)
    warm = prompts[0]["ids"]
    for method in methods:  # warm-up (and the cost rule's calibration), not recorded
        run_method(lm, method, warm, argparse.Namespace(**{**vars(args), "max_new_tokens": 8}), counter, {},
                   draft_lm)

    runs: dict[tuple[int, str], list[dict]] = {}
    bar = tqdm(total=args.reps * len(prompts) * len(methods), desc="speculative_cpu", unit="gen")
    for rep in range(args.reps):
        drafters: dict = {}  # fresh drafter state every repetition, kept across its prompts
        for p, prompt in enumerate(prompts):
            for method in methods:
                runs.setdefault((p, method), []).append(
                    run_method(lm, method, prompt["ids"], args, counter, drafters, draft_lm))
                bar.update(1)
    bar.close()
    counter.handle.remove()

    rows = []
    for p, prompt in enumerate(prompts):
        row: dict = {"category": prompt["category"], "name": prompt["name"], "prompt_tokens": len(prompt["ids"])}
        reference = runs[(p, "ar")][0]["new_ids"]
        row["ar_self_repeat"] = self_repeat_fraction(reference, LOOP_NGRAM)
        for method in methods:
            rs = runs[(p, method)]
            first = rs[0]
            r = {"new_ids": first["new_ids"], "seconds_median": statistics.median(x["seconds"] for x in rs),
                 "seconds_all": [x["seconds"] for x in rs],
                 "cpu_seconds_median": statistics.median(x["cpu_seconds"] for x in rs),
                 "cpu_seconds_all": [x["cpu_seconds"] for x in rs], "forward_calls": first["forward_calls"],
                 "identical_to_ar": all(x["new_ids"] == reference for x in rs)}
            r["tokens_per_s"] = len(first["new_ids"]) / r["seconds_median"]
            if "tau" in first:  # stateful drafters' tau may differ between reps; report medians
                for key in ("tau", "acceptance", "mean_drafted"):
                    r[key] = statistics.median(x[key] for x in rs)
                r["forward_calls"] = int(statistics.median(x["forward_calls"] for x in rs))
            row[method] = r
        rows.append(row)

    overall = summarise(rows, methods)
    loops = [r["name"] for r in rows if r["ar_self_repeat"] >= LOOP_SHARE]
    plain = [r for r in rows if r["ar_self_repeat"] < LOOP_SHARE]
    without_loops = summarise(plain, methods) if plain and loops else None
    result: dict = {
        "model": args.model, "draft_model": args.draft if args.pair else None, "dtype": "float32",
        "decoding": "greedy", "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "methods": methods, "skipped": skipped, "num_prompts": len(prompts),
        "overall": overall, "targets": targets(overall, methods), "targets_cpu_time": targets(overall, methods, "cpu_"),
        "loop_share_threshold": LOOP_SHARE, "loop_ngram": LOOP_NGRAM, "loop_prompts": loops,
        "overall_without_loops": without_loops,
        "targets_without_loops": targets(without_loops, methods) if without_loops else None,
        "targets_cpu_time_without_loops": targets(without_loops, methods, "cpu_") if without_loops else None,
        "per_category": {c: summarise([r for r in rows if r["category"] == c], methods) for c in CATEGORIES
                         if any(r["category"] == c for r in rows)},
        "prompts": rows,
    }
    result["command"] = "python benchmarks/speculative_cpu.py " + " ".join(sys.argv[1:])
    result["load_average_before"] = list(load_before)
    result["load_average_after"] = list(os.getloadavg())
    result["total_seconds"] = time.perf_counter() - started
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    out_path.with_suffix(".md").write_text(markdown(result))

    print(f"\n{args.model}, greedy fp32, {len(prompts)} prompts, {args.max_new_tokens} new tokens max, "
          f"median of {args.reps}, {result['threads']} threads, load avg {load_before[0]:.2f} -> "
          f"{result['load_average_after'][0]:.2f}, total {result['total_seconds']:.0f} s")
    header = (f"{'category':<14}{'method':<20}{'tau':>6}{'accept':>8}{'fwd':>6}{'tok/s':>8}{'vs ar':>7}{'vs hf':>7}"
              f"{'cpu ar':>7}{'cpu hf':>7}  same")
    print(header)
    print("-" * len(header))
    for label, summary in [*result["per_category"].items(), ("OVERALL", overall)]:
        for method in methods:
            s = summary[method]
            tau = f"{s['tau']:.2f}" if "tau" in s else "-"
            acc = f"{s['acceptance']:.2f}" if "acceptance" in s else "-"
            print(f"{label:<14}{method:<20}{tau:>6}{acc:>8}{s['forward_calls']:>6}{s['tokens_per_s']:>8.1f}"
                  f"{s['speedup_vs_ar']:>7.2f}{s['speedup_vs_hf_greedy']:>7.2f}{s['cpu_speedup_vs_ar']:>7.2f}"
                  f"{s['cpu_speedup_vs_hf_greedy']:>7.2f}  {s['identical_to_ar']}")
    print(markdown(result))
    print(f"wrote {out_path} and {out_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
