"""CharBench-style character probes (Uzan & Pinter, 2025, arXiv:2508.02591) on a real model: accuracy of
counting a character in a word and of locating its first occurrence, against the length of the token that
holds the queried character and against the word's length (workbench.tokenization.charbench).

    OMP_NUM_THREADS=1 python benchmarks/charbench.py [--n 300] [--model smollm2-135m] [--corpus english-prose]

Items: `--n` probes, tasks in turn, words drawn (seed `--seed`) from the distinct lowercase words of the corpus,
3-shot prompts, greedy decoding of up to 4 tokens. Writes benchmarks/results/charbench.json (summary tables,
every item, wall time, os.getloadavg()) and charbench.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _records(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def _md_table(frame, by: str) -> list[str]:
    wide = frame.pivot(index=by, columns="task", values=["accuracy", "n"])
    tasks = [t for t in ("all", "count", "locate") if t in frame["task"].unique()]
    lines = [f"| {by} | " + " | ".join(f"{t} acc (n)" for t in tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for value in wide.index:
        cells = []
        for t in tasks:
            n = wide.loc[value, ("n", t)]
            cells.append("" if math.isnan(n) else f"{wide.loc[value, ('accuracy', t)]:.2f} ({int(n)})")
        lines.append(f"| {value} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--corpus", default="english-prose")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--min-len", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=12)
    parser.add_argument("--out", default=str(RESULTS / "charbench.json"))
    args = parser.parse_args()
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")

    from workbench.models import LM
    from workbench.tokenization.charbench import (
        accuracy_by,
        corpus_words,
        evaluate,
        few_shot_prompt,
        make_items,
    )

    start = time.perf_counter()
    load_before = os.getloadavg()
    words = corpus_words(args.corpus, min_len=args.min_len, max_len=args.max_len)
    lm = LM.load(args.model)
    items = make_items(words, args.n, seed=args.seed, tokenizer=lm.tokenizer)
    few_shot_prompt(items[0], args.shots)  # bad --shots fails here, before the model runs
    eval_start = time.perf_counter()
    table = evaluate(lm, items, shots=args.shots)
    eval_seconds = time.perf_counter() - eval_start
    by_task = (accuracy_by(table, "word_len").groupby("task")[["n", "correct"]].sum().reset_index()
               .assign(accuracy=lambda f: f["correct"] / f["n"]))
    baseline = {}  # always answering the task's most frequent gold value
    for task, part in table.groupby("task"):
        value = int(part["answer"].mode().iloc[0])
        baseline[task] = {"answer": value, "accuracy": float((part["answer"] == value).mean())}
    by_token = accuracy_by(table, "token_len")
    by_word = accuracy_by(table, "word_len")
    by_tokens = accuracy_by(table, "word_tokens")
    result = {
        "model": args.model, "corpus": args.corpus, "words_available": len(words), "n": len(table),
        "seed": args.seed, "shots": args.shots, "min_len": args.min_len, "max_len": args.max_len,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(), "wall_seconds": time.perf_counter() - start,
        "eval_seconds": eval_seconds, "seconds_per_item": eval_seconds / len(table),
        "unparsed_answers": int(table["prediction"].isna().sum()),
        "accuracy_by_task": _records(by_task), "majority_baseline": baseline, "accuracy_by_token_len": _records(by_token),
        "accuracy_by_word_len": _records(by_word), "accuracy_by_word_tokens": _records(by_tokens),
        "items": _records(table.drop(columns=["seconds"])),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    lines = [(f"CharBench-style probes: {args.model}, {len(table)} items ({args.shots}-shot, greedy), words from "
             f"{args.corpus} (seed {args.seed}); {result['seconds_per_item']:.2f} s/item, eval "
             f"{eval_seconds / 60:.1f} min at OMP_NUM_THREADS={result['omp_num_threads']} (load average "
             f"{load_before[0]:.1f} -> {result['loadavg_after'][0]:.1f})"), "",
             "| task | accuracy | n | always the most frequent gold answer |", "|---|---|---|---|"]
    for r in _records(by_task):
        base = baseline.get(r["task"])
        shown = f"{base['accuracy']:.3f} (answer {base['answer']})" if base else ""
        lines.append(f"| {r['task']} | {r['accuracy']:.3f} | {r['n']} | {shown} |")
    lines += ["", "Accuracy by the length (characters) of the token holding the queried character:", ""]
    lines += _md_table(by_token, "token_len")
    lines += ["", "Accuracy by word length:", ""]
    lines += _md_table(by_word, "word_len")
    lines += ["", "Accuracy by the number of tokens the word is split into:", ""]
    lines += _md_table(by_tokens, "word_tokens")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"saved {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
