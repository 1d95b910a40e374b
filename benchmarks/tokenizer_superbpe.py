"""SuperBPE vs plain BPE at equal vocabulary: tokens on held-out English for several transition sizes t.

    python benchmarks/tokenizer_superbpe.py [--train-mb 2] [--vocab-size 8192] [--fractions 0.25 0.5 0.75 0.9 1.0]
                                            [--max-words 4]

Data (offline assets): English prose ("english-prose", every 10th document held out) plus modern English
from the World English Bible ("bible-parallel", version "web"; chapters as documents, every 10th chapter held
out), training text up to --train-mb. t = fraction x vocab_size; t = vocab_size is plain BPE (checked to
equal `train_bpe`'s merges). All runs share stage 1 (`train_superbpe_sweep`). Reported per t: tokens and
bytes/token on each held-out set, and the change vs plain BPE. Writes benchmarks/results/tokenizer_superbpe.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from pathlib import Path


def load_english(train_mb: float) -> tuple[list[str], dict[str, list[str]]]:
    from workbench.assets import load_corpus

    prose = load_corpus("english-prose")
    train, held_prose = [], []
    for k, text in enumerate(prose["text"]):
        (held_prose if k % 10 == 9 else train).append(text)
    bible = load_corpus("bible-parallel").filter(lambda r: r["version"] == "web")
    chapters: dict[tuple[str, int], list[str]] = defaultdict(list)
    for book, chapter, text in zip(bible["book"], bible["chapter"], bible["text"], strict=True):
        chapters[(book, chapter)].append(text)
    held_bible = []
    size = sum(len(t.encode()) for t in train)
    for k, verses in enumerate(chapters.values()):
        doc = " ".join(verses) + "\n"
        if k % 10 == 9:
            if len(held_bible) < 60:
                held_bible.append(doc)
        elif size < train_mb * 1e6:
            train.append(doc)
            size += len(doc.encode())
    return train, {"english-prose": held_prose, "bible-web": held_bible}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-mb", type=float, default=2.0)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 0.9, 1.0])
    parser.add_argument("--max-words", type=int, default=4)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tokenizer_superbpe.json"))
    args = parser.parse_args()

    from workbench.tokenization.bpe_train import train_bpe
    from workbench.tokenization.superbpe import train_superbpe_sweep

    train, held = load_english(args.train_mb)
    train_bytes = sum(len(t.encode()) for t in train)
    transitions = [max(257, round(f * args.vocab_size)) for f in args.fractions]
    start = time.perf_counter()
    results = train_superbpe_sweep(train, args.vocab_size, transitions, special_tokens=["<|endoftext|>"],
                                   max_words=args.max_words)
    sweep_seconds = time.perf_counter() - start
    start = time.perf_counter()
    plain = train_bpe(train, args.vocab_size, special_tokens=["<|endoftext|>"])
    bpe_seconds = time.perf_counter() - start

    def measure(tok) -> dict[str, dict[str, float]]:
        out = {}
        for name, docs in held.items():
            n_bytes = sum(len(d.encode()) for d in docs)
            n_tokens = sum(len(tok.encode(d)) for d in docs)
            out[name] = {"tokens": n_tokens, "bytes": n_bytes, "bytes_per_token": n_bytes / n_tokens}
        return out

    base = measure(plain.tokenizer)
    rows = []
    for f, t, r in zip(args.fractions, transitions, results, strict=True):
        m = measure(r.tokenizer)
        superwords = sum(1 for i in range(r.tokenizer.vocab_size)
                         if len(r.tokenizer.token_bytes(i).split()) >= 2)
        rows.append({
            "fraction": f, "transition": t, "vocab_size": r.tokenizer.vocab_size,
            "stage2_merges": len(r.stage2_merges), "superword_tokens": superwords,
            "equals_plain_bpe": t == args.vocab_size and r.stage1_merges == plain.merges,
            "heldout": {name: {**m[name], "tokens_vs_bpe": m[name]["tokens"] / base[name]["tokens"] - 1}
                        for name in held},
        })
    longest = max(results, key=lambda r: len(r.stage2_merges))
    examples = sorted((longest.tokenizer.token_bytes(i) for i in range(longest.tokenizer.vocab_size)
                       if len(longest.tokenizer.token_bytes(i).split()) >= 2), key=len, reverse=True)[:25]
    report = {
        "benchmark": "tokenizer_superbpe",
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "config": {"train_bytes": train_bytes, "train_docs": len(train), "vocab_size": args.vocab_size,
                   "max_words": args.max_words, "pattern": "cl100k-style (default)",
                   "heldout_bytes": {k: sum(len(d.encode()) for d in v) for k, v in held.items()}},
        "seconds": {"sweep_all_t": sweep_seconds, "plain_bpe": bpe_seconds},
        "plain_bpe": base,
        "sweep": rows,
        "example_superwords": [e.decode("utf-8", "replace") for e in examples],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    names = list(held)
    print(f"train {train_bytes / 1e6:.2f} MB, vocab {args.vocab_size}, max_words {args.max_words}; "
          f"sweep {sweep_seconds:.1f}s, plain BPE {bpe_seconds:.1f}s")
    print(f"{'t':>6} {'frac':>5} " + " ".join(f"{n + ' tokens':>22} {'B/tok':>6} {'vs BPE':>7}" for n in names))
    print(f"{'BPE':>6} {'':>5} " + " ".join(
        f"{base[n]['tokens']:>22} {base[n]['bytes_per_token']:>6.2f} {'':>7}" for n in names))
    for row in rows:
        h = row["heldout"]
        print(f"{row['transition']:>6} {row['fraction']:>5.2f} " + " ".join(
            f"{h[n]['tokens']:>22} {h[n]['bytes_per_token']:>6.2f} {h[n]['tokens_vs_bpe']:>+7.1%}" for n in names))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
