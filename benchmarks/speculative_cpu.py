"""Speculative decoding on CPU: model-free drafters against autoregressive decoding and HF's built-ins, on a small
Spec-Bench-style prompt set (Xia et al., "Unlocking Efficiency in Large Language Model Inference: A Comprehensive
Survey of Speculative Decoding", 2024) built from the offline corpora.

    python benchmarks/speculative_cpu.py [--model smollm2-135m] [--per-category 2] [--reps 1]
                                         [--max-new-tokens 64] [--lookup-tokens 10] [--threads N]

Categories (every prompt rendered with the model's chat template): multi-turn chat (two user turns about a
HumanEval problem and an english-prose passage), code (HumanEval prompts), summarisation (a long english-prose
passage + "Summarize:"), QA (a news passage + a question), math (arithmetic word problems written here),
translation (a UDHR article in French / Spanish + "Translate to English:"). Prompts are picked with a fixed seed.

Methods, greedy fp32, interleaved per prompt (every method runs on a prompt before the next prompt), median of
`--reps` timings per prompt:
- ar: `lm.generate` (the baseline for "speedup_vs_ar");
- prompt_lookup, token_recycling: `speculative_generate` with the greedy verifier (outputs checked token-identical
  to `ar`). Token Recycling's adjacency matrix starts empty at every repetition and persists across the prompts of
  that repetition, in prompt order (as in the paper, where it persists across queries);
- hf_greedy: `lm.model.generate(do_sample=False)` (the baseline for "speedup_vs_hf_greedy");
- hf_prompt_lookup: `lm.model.generate(do_sample=False, prompt_lookup_num_tokens=N)`; whether its output equals
  hf_greedy's is recorded (HF does not guarantee it bit for bit).
Target forward passes for HF are counted with a forward pre-hook on the HF model. Every method is warmed up once
before timing. Writes benchmarks/results/speculative_cpu.json and prints a per-category and overall table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch

METHODS = ["ar", "prompt_lookup", "token_recycling", "hf_greedy", "hf_prompt_lookup"]
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


def run_method(lm, method: str, ids: list[int], args, counter: ForwardCounter, recycler) -> dict:
    from workbench.speculative import speculative_generate

    if method == "ar":
        g = lm.generate(ids, max_new_tokens=args.max_new_tokens, temperature=0.0)
        return {"new_ids": list(g.new_ids), "seconds": g.seconds, "forward_calls": g.forward_calls}
    if method in ("prompt_lookup", "token_recycling"):
        drafter = recycler if method == "token_recycling" else "prompt_lookup"
        g = speculative_generate(lm, ids, drafter=drafter, max_new_tokens=args.max_new_tokens, temperature=0.0,
                                 budget=args.budget)
        return {"new_ids": list(g.new_ids), "seconds": g.seconds, "forward_calls": g.forward_calls, "tau": g.tau,
                "acceptance": g.acceptance_rate, "steps": len(g.steps)}
    x = torch.tensor([ids])
    extra = {"prompt_lookup_num_tokens": args.lookup_tokens} if method == "hf_prompt_lookup" else {}
    counter.calls = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        out = lm.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=args.max_new_tokens,
                                do_sample=False, pad_token_id=lm.tokenizer.eos_id, **extra)
    seconds = time.perf_counter() - t0
    return {"new_ids": out[0, len(ids):].tolist(), "seconds": seconds, "forward_calls": counter.calls}


def summarise(rows: list[dict]) -> dict:
    """Aggregate per-prompt medians: tokens/s = total tokens / total median seconds; tau and acceptance averaged."""
    out = {}
    for method in METHODS:
        rs = [r[method] for r in rows]
        tokens = sum(len(r["new_ids"]) for r in rs)
        seconds = sum(r["seconds_median"] for r in rs)
        out[method] = {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
                       "forward_calls": sum(r["forward_calls"] for r in rs)}
        if "tau" in rs[0]:
            out[method]["tau"] = statistics.mean(r["tau"] for r in rs)
            out[method]["acceptance"] = statistics.mean(r["acceptance"] for r in rs)
    for method in METHODS:
        out[method]["speedup_vs_ar"] = out[method]["tokens_per_s"] / out["ar"]["tokens_per_s"]
        out[method]["speedup_vs_hf_greedy"] = out[method]["tokens_per_s"] / out["hf_greedy"]["tokens_per_s"]
    for method in ("prompt_lookup", "token_recycling"):
        out[method]["identical_to_ar"] = all(r[method]["identical_to_ar"] for r in rows)
    out["hf_prompt_lookup"]["identical_to_hf_greedy"] = all(r["hf_prompt_lookup"]["identical_to_hf_greedy"]
                                                            for r in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--lookup-tokens", type=int, default=10, help="HF prompt_lookup_num_tokens")
    ap.add_argument("--budget", type=int, default=16, help="draft nodes per step for our drafters")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt selection")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: all cores)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "speculative_cpu.json"))
    args = ap.parse_args()
    for name in ("per_category", "reps", "max_new_tokens", "lookup_tokens", "budget", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.per_category > len(MATH):
        ap.error(f"--per-category must be <= {len(MATH)} (math prompts written in the script), got {args.per_category}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()

    from tqdm.auto import tqdm

    from workbench.models import LM
    from workbench.speculative import get_drafter

    lm = LM.load(args.model, dtype="float32")
    prompts = build_prompts(lm, args.per_category, args.seed)
    counter = ForwardCounter(lm.model)
    warm = prompts[0]["ids"]
    for method in METHODS:  # warm-up, not recorded
        run_method(lm, method, warm, argparse.Namespace(**{**vars(args), "max_new_tokens": 8}), counter,
                   get_drafter("token_recycling"))

    runs: dict[tuple[int, str], list[dict]] = {}
    bar = tqdm(total=args.reps * len(prompts) * len(METHODS), desc="speculative_cpu", unit="gen")
    for rep in range(args.reps):
        recycler = get_drafter("token_recycling")
        for p, prompt in enumerate(prompts):
            for method in METHODS:
                runs.setdefault((p, method), []).append(run_method(lm, method, prompt["ids"], args, counter, recycler))
                bar.update(1)
    bar.close()
    counter.handle.remove()

    rows = []
    for p, prompt in enumerate(prompts):
        row: dict = {"category": prompt["category"], "name": prompt["name"], "prompt_tokens": len(prompt["ids"])}
        for method in METHODS:
            rs = runs[(p, method)]
            first = rs[0]
            r = {"new_ids": first["new_ids"], "seconds_median": statistics.median(x["seconds"] for x in rs),
                 "seconds_all": [x["seconds"] for x in rs], "forward_calls": first["forward_calls"]}
            r["tokens_per_s"] = len(first["new_ids"]) / r["seconds_median"]
            if "tau" in first:  # token recycling's tau may differ between reps (its matrix); report the median
                r["tau"] = statistics.median(x["tau"] for x in rs)
                r["acceptance"] = statistics.median(x["acceptance"] for x in rs)
                r["forward_calls"] = int(statistics.median(x["forward_calls"] for x in rs))
                r["identical_to_ar"] = all(x["new_ids"] == runs[(p, "ar")][0]["new_ids"] for x in rs)
            row[method] = r
        row["hf_prompt_lookup"]["identical_to_hf_greedy"] = all(
            x["new_ids"] == row["hf_greedy"]["new_ids"] for x in runs[(p, "hf_prompt_lookup")])
        row["hf_greedy_identical_to_ar"] = row["hf_greedy"]["new_ids"] == row["ar"]["new_ids"]
        rows.append(row)

    result: dict = {
        "model": args.model, "dtype": "float32", "decoding": "greedy",
        "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "methods": METHODS,
        "overall": summarise(rows),
        "per_category": {c: summarise([r for r in rows if r["category"] == c]) for c in CATEGORIES},
        "prompts": rows,
    }
    result["load_average_before"] = list(load_before)
    result["load_average_after"] = list(os.getloadavg())
    result["total_seconds"] = time.perf_counter() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{args.model}, greedy fp32, {len(prompts)} prompts, {args.max_new_tokens} new tokens max, "
          f"median of {args.reps}, {result['threads']} threads, load avg {load_before[0]:.2f} -> "
          f"{result['load_average_after'][0]:.2f}, total {result['total_seconds']:.0f} s")
    header = f"{'category':<14}{'method':<18}{'tau':>6}{'accept':>8}{'fwd':>6}{'tok/s':>8}{'vs ar':>7}{'vs hf':>7}  same"
    print(header)
    print("-" * len(header))
    for label, summary in [*result["per_category"].items(), ("OVERALL", result["overall"])]:
        for method in METHODS:
            s = summary[method]
            same = s.get("identical_to_ar", s.get("identical_to_hf_greedy", ""))
            tau = f"{s['tau']:.2f}" if "tau" in s else "-"
            acc = f"{s['acceptance']:.2f}" if "acceptance" in s else "-"
            print(f"{label:<14}{method:<18}{tau:>6}{acc:>8}{s['forward_calls']:>6}{s['tokens_per_s']:>8.1f}"
                  f"{s['speedup_vs_ar']:>7.2f}{s['speedup_vs_hf_greedy']:>7.2f}  {same}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
