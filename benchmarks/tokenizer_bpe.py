"""The project's BPE trainer and encoder side by side with HF `tokenizers` and tiktoken.

    python benchmarks/tokenizer_bpe.py [--corpus cpython-stdlib] [--train-mb 3] [--heldout-mb 1]
                                       [--vocab-size 8192] [--reps 3]

Corpus: files of the chosen corpus asset in path/doc order; every 10th file is held out (until --heldout-mb),
the others are training text (until --train-mb). Both trainers get the same texts, the same pre-tokenizer
(the cl100k-style regex as a Split pre-tokenizer + ByteLevel(use_regex=False) for HF), the same vocabulary
size (256 bytes + merges + 1 special token), min_frequency 2, and the full byte alphabet.

Reported (median of --reps runs each, all in one process, side by side):
- training time: ours / HF (ratio) and merges per second of each;
- encode throughput on the held-out documents (encoded one by one) for the SAME trained tokenizer run by
  three engines: our encoder (its pre-token cache emptied before every run), HF `tokenizers` loading our
  exported tokenizer.json (rebuilt before every run, so its cache is cold too; `encode` per document,
  single-threaded; `encode_batch`, multi-threaded, reported beside it) and tiktoken built from our merge
  ranks (`encode_ordinary`); ids are checked to be identical across all of them;
- compression: bytes/token on the held-out text of our trained tokenizer vs HF's trained one (target: ours
  within 1% of HF's).
Writes benchmarks/results/tokenizer_bpe.json and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

SPECIAL = "<|endoftext|>"


def load_split(corpus: str, train_mb: float, heldout_mb: float) -> tuple[list[str], list[str]]:
    from workbench.assets import load_corpus

    ds = load_corpus(corpus)
    key = "path" if "path" in ds.column_names else "doc"
    rows = sorted(zip(ds[key], ds["text"], strict=True), key=lambda r: str(r[0]))
    train, held, n_train, n_held = [], [], 0, 0
    for k, (_, text) in enumerate(rows):
        size = len(text.encode("utf-8"))
        if k % 10 == 9:
            if n_held < heldout_mb * 1e6:
                held.append(text)
                n_held += size
        elif n_train < train_mb * 1e6:
            train.append(text)
            n_train += size
        if n_train >= train_mb * 1e6 and n_held >= heldout_mb * 1e6:
            break
    return train, held


def hf_trainer_run(texts: list[str], vocab_size: int, pattern: str):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[SPECIAL], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    t0 = time.perf_counter()
    tok.train_from_iterator(texts, trainer=trainer)
    return tok, time.perf_counter() - t0


def timed(fn, reps: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="cpython-stdlib", choices=["cpython-stdlib", "english-prose"])
    parser.add_argument("--train-mb", type=float, default=3.0)
    parser.add_argument("--heldout-mb", type=float, default=1.0)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tokenizer_bpe.json"))
    args = parser.parse_args()

    import tiktoken
    from tokenizers import Tokenizer

    from workbench.tokenization.bpe_train import train_bpe
    from workbench.tokenization.pretokenize import DEFAULT_PATTERN

    load_before = os.getloadavg()
    train, held = load_split(args.corpus, args.train_mb, args.heldout_mb)
    train_bytes = sum(len(t.encode()) for t in train)
    held_bytes = sum(len(t.encode()) for t in held)
    print(f"corpus {args.corpus}: train {len(train)} texts / {train_bytes / 1e6:.2f} MB, "
          f"held-out {len(held)} texts / {held_bytes / 1e6:.2f} MB, vocab {args.vocab_size}")

    # --- training ---
    ours_runs, hf_runs = [], []
    for _ in range(args.reps):
        result = train_bpe(train, args.vocab_size, special_tokens=[SPECIAL], min_frequency=2, progress=False)
        ours_runs.append(result)
        hf_runs.append(hf_trainer_run(train, args.vocab_size, DEFAULT_PATTERN))
    ours = ours_runs[-1].tokenizer
    hf_trained = hf_runs[-1][0]
    assert all(r.merges == ours_runs[0].merges for r in ours_runs), "our trainer must be deterministic"
    ours_s = statistics.median(r.seconds for r in ours_runs)
    ours_merge_s = statistics.median(r.seconds - r.count_seconds for r in ours_runs)
    hf_s = statistics.median(t for _, t in hf_runs)
    n_merges = len(ours_runs[0].merges)
    hf_merges = len(json.loads(hf_trained.to_str())["model"]["merges"])

    # --- encoding: one trained tokenizer, three engines ---
    hf_json = ours.to_hf().to_str()
    ranks = {ours.token_bytes(i): i for i in range(ours.num_base_tokens)}
    tik = tiktoken.Encoding(name="workbench-bpe", pat_str=ours.pattern, mergeable_ranks=ranks,
                            special_tokens={SPECIAL: ours.vocab_size - 1})

    def ours_encode():
        ours._cache.clear()
        return [ours.encode(t) for t in held]

    hf_times, batch_times = [], []
    for _ in range(args.reps):
        hf_tok = Tokenizer.from_str(hf_json)
        t0 = time.perf_counter()
        hf_ids = [e.ids for e in (hf_tok.encode(t, add_special_tokens=False) for t in held)]
        hf_times.append(time.perf_counter() - t0)
        hf_tok = Tokenizer.from_str(hf_json)
        t0 = time.perf_counter()
        batch_ids = [e.ids for e in hf_tok.encode_batch(held, add_special_tokens=False)]
        batch_times.append(time.perf_counter() - t0)
    tik_times, tik_ids = timed(lambda: [tik.encode_ordinary(t) for t in held], args.reps)
    ours_times, our_ids = timed(ours_encode, args.reps)
    identical = our_ids == hf_ids == tik_ids == batch_ids
    enc = {name: held_bytes / statistics.median(ts) / 1e6
           for name, ts in (("ours", ours_times), ("hf", hf_times), ("tiktoken", tik_times),
                            ("hf_encode_batch", batch_times))}
    our_tokens = sum(map(len, our_ids))

    # --- compression at equal vocabulary ---
    hf_tokens = sum(len(e.ids) for e in hf_trained.encode_batch(held, add_special_tokens=False))
    bpt_ours = held_bytes / our_tokens
    bpt_hf = held_bytes / hf_tokens

    results = {
        "command": "python benchmarks/tokenizer_bpe.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "note": "shared, busy machine (2 cores, other jobs running): absolute times are noisy; "
                            "ratios are measured side by side in one process. HF's trainer may use both cores "
                            "(rayon); ours is single-threaded Python."},
        "corpus": {"name": args.corpus, "train_texts": len(train), "train_bytes": train_bytes,
                   "heldout_texts": len(held), "heldout_bytes": held_bytes},
        "vocab_size": args.vocab_size,
        "train": {
            "ours_seconds": ours_s, "ours_seconds_runs": [r.seconds for r in ours_runs],
            "ours_count_seconds": statistics.median(r.count_seconds for r in ours_runs),
            "hf_seconds": hf_s, "hf_seconds_runs": [t for _, t in hf_runs],
            "time_ratio_ours_over_hf": ours_s / hf_s,
            "ours_merges": n_merges, "hf_merges": hf_merges,
            "ours_merges_per_second": n_merges / ours_s,
            "ours_merge_loop_merges_per_second": n_merges / ours_merge_s,
            "hf_merges_per_second": hf_merges / hf_s,
        },
        "encode": {
            "identical_ids_ours_hf_tiktoken": identical,
            "mb_per_second": enc,
            "seconds_runs": {"ours": ours_times, "hf": hf_times, "tiktoken": tik_times,
                             "hf_encode_batch": batch_times},
            "ratio_hf_over_ours": enc["hf"] / enc["ours"],
            "ratio_tiktoken_over_ours": enc["tiktoken"] / enc["ours"],
        },
        "compression": {
            "ours_bytes_per_token": bpt_ours, "hf_bytes_per_token": bpt_hf,
            "relative_difference": bpt_ours / bpt_hf - 1, "within_1_percent": abs(bpt_ours / bpt_hf - 1) <= 0.01,
            "ours_tokens": our_tokens, "hf_tokens": hf_tokens,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    t, e, c = results["train"], results["encode"], results["compression"]
    print(f"\n{'':28}{'ours':>12}{'HF tokenizers':>16}{'tiktoken':>12}{'ratio':>22}")
    print(f"{'train time (s, median)':28}{t['ours_seconds']:12.2f}{t['hf_seconds']:16.2f}{'-':>12}"
          f"{t['time_ratio_ours_over_hf']:>14.1f}x slower")
    print(f"{'merges / s':28}{t['ours_merges_per_second']:12.0f}{t['hf_merges_per_second']:16.0f}{'-':>12}")
    print(f"{'encode MB/s (same vocab)':28}{enc['ours']:12.2f}{enc['hf']:16.2f}{enc['tiktoken']:12.2f}"
          f"   HF/ours {e['ratio_hf_over_ours']:.2f}, tiktoken/ours {e['ratio_tiktoken_over_ours']:.2f}")
    print(f"{'  HF encode_batch (threads)':28}{'':12}{enc['hf_encode_batch']:16.2f}")
    print(f"{'held-out bytes / token':28}{c['ours_bytes_per_token']:12.4f}{c['hf_bytes_per_token']:16.4f}{'-':>12}"
          f"{100 * c['relative_difference']:>+13.2f}% (ours vs HF)")
    print(f"identical ids (ours = HF = tiktoken on held-out): {identical}; wrote {out}")


if __name__ == "__main__":
    main()
