"""Sparse attention quality on the default model: perplexity delta, attention-mass recall and passkey accuracy of
every policy at every budget, against full attention in the same run.

    OMP_NUM_THREADS=2 python benchmarks/sparse_quality.py [--quick] [--prefix 4096] [--score 64] [--texts 2]
        [--lengths 1024 2048 4096 8192] [--depths 0.1 0.5 0.9] [--budgets 64 128 256 512 1024]

Perplexity (`workbench.sparse.perplexity`): `--texts` windows of Botchan (english-prose corpus, the chapters
joined), each `--prefix` tokens prefilled densely once, then `--score` tokens fed one at a time under each policy
(masked mode, teacher forcing); ppl over all scored tokens, delta vs full attention, recall vs the oracle top-k
at the same count, KV bytes read per decode step. Passkey (`workbench.sparse.needle`): by default the Landmark
Attention paper's format (`--passkey-format landmark`: its instruction and repeated "The grass is green. ..."
filler; `kjv`: KJV verses as filler), a seeded 5-digit key (`--key-digits`) at each depth, `--seeds` items per
(length, depth) (seed = 1000 * length + 100 * depth + 100000 * i), greedy answer under each policy. Full KV is
always run, so each policy's accuracy is read against it.
The issue's target check: at budget = 1/8 of the context (prefix/8 for perplexity, length/8 for the passkey)
does the best query-aware policy (quest, landmark, tokenselect, fasa; the oracle is not deployable) stay within
3% of full-KV perplexity, and reach >= 95% passkey accuracy at the lengths where StreamingLLM fails?
Writes benchmarks/results/sparse_quality.json and .md (`--out`). `--merge` combines part results: perplexity parts
split over policies or budgets on the same text (their full-KV ppl must agree), needle parts split over lengths,
depths or policies, or both kinds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

BUDGETS = [64, 128, 256, 512, 1024]
QUERY_AWARE = ["quest", "landmark", "tokenselect", "fasa"]
ANSWER_TOKENS = 8  # greedy tokens per passkey answer: " 12345" is 6 (a space, one token per digit) plus 2 of slack


def text_windows(lm, n: int, tokens: int) -> torch.Tensor:
    """`n` non-overlapping windows of `tokens` tokens from Botchan (chapters joined), [n, tokens]."""
    from workbench.assets import load_corpus

    docs = load_corpus("english-prose", sources=["botchan"])
    text = "\n\n".join(t for d, t in zip(docs["doc"], docs["text"]) if d != "botchan/note")
    ids = lm.tokenizer.encode(text)
    if len(ids) < n * tokens:
        raise ValueError(f"--texts {n} x {tokens} tokens needs {n * tokens} tokens; Botchan has {len(ids)}")
    return torch.tensor([ids[i * tokens:(i + 1) * tokens] for i in range(n)])


def kjv_filler(lm, tokens: int) -> list[int]:
    from workbench.assets import load_corpus

    verses = load_corpus("bible-kjv")["text"]
    text, ids, i = "", [], 0
    while len(ids) < tokens:
        text += " ".join(verses[i:i + 2000]) + " "
        i += 2000
        ids = lm.tokenizer.encode(text)
    return ids


def target_check(ppl_rows: list[dict], needle_rows: list[dict], prefix: int, lengths: list[int]) -> dict:
    out: dict = {}
    b = prefix // 8
    full = next((r for r in ppl_rows if r["policy"] == "full"), None)
    aware = [r for r in ppl_rows if r["policy"] in QUERY_AWARE and r["budget"] == b]
    if full is None:
        out["perplexity"] = {"note": "no perplexity part"}
    elif aware:
        best = min(aware, key=lambda r: r["ppl"])
        out["perplexity"] = {"budget": b, "full_ppl": full["ppl"], "best_query_aware": best["policy"],
                             "ppl": best["ppl"], "delta": best["delta"], "within_3pct": abs(best["delta"]) <= 0.03,
                             "scored_tokens": full["tokens"]}
    else:
        out["perplexity"] = {"budget": b, "note": "budget prefix/8 not in the grid"}
    per_length = {}
    for length in lengths:
        lb = length // 8
        def acc(policy, lb=lb, length=length):
            rows = [r for r in needle_rows if r["policy"] == policy and (r["budget"] == lb or policy == "full")]
            return rows[0]["by_length"].get(str(length)) if rows else None
        stream = acc("streaming_llm")
        aware_acc = {p: acc(p) for p in QUERY_AWARE if acc(p) is not None}
        best = max(aware_acc, key=aware_acc.get) if aware_acc else None
        per_length[str(length)] = {
            "budget": lb, "full": acc("full"), "streaming_llm": stream, "oracle": acc("oracle"),
            "query_aware": aware_acc, "best_query_aware": best, "best_accuracy": aware_acc.get(best),
            "full_solves": acc("full") is not None and acc("full") >= 0.95,
            "streaming_fails": stream is not None and stream < 0.95,
            "target_met": (best is not None and aware_acc[best] >= 0.95) if stream is not None and stream < 0.95
            else None,
        }
    out["passkey"] = per_length
    return out


def markdown(res: dict) -> str:
    lines = ["# Sparse attention quality (smollm2-135m)", "",
             f"Command: `{res['command']}`  ",
             (f"Load average at start / end: {res['loadavg_start']} / {res['loadavg_end']}; "
              f"total {res['seconds']:.0f} s"), ""]
    if "perplexity" in res:
        lines += ppl_markdown(res)
    if "needle" in res:
        lines += needle_markdown(res)
    if "target_check" in res:
        tc = res["target_check"]
        lines += ["", "## Target check (budget = 1/8 of the context)", "", "```", json.dumps(tc, indent=1), "```"]
    if res.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


def ppl_markdown(res: dict) -> list[str]:
    ppl, budgets = res["perplexity"], res["config"]["budgets"]
    lines = [(f"## Perplexity: {ppl['texts']} Botchan windows, dense prefix {ppl['prefix']}, {ppl['score']} scored "
              f"tokens each; full-KV ppl {ppl['rows'][0]['ppl']:.3f}"), "",
             "ppl delta vs full (normalized recall vs oracle top-k; KV bytes read / dense)", "",
             "| policy | " + " | ".join(str(b) for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for p in res["config"]["policies"]:
        cells = []
        for b in budgets:
            r = next((r for r in ppl["rows"] if r["policy"] == p and r["budget"] == b), None)
            cells.append("-" if r is None else f"{r['delta']:+.1%} ({r['normalized_recall']:.2f}; {r['bytes_ratio']:.2f})")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def needle_markdown(res: dict) -> list[str]:
    """One table per length: policies x the budgets run at that length, accuracy (correct/items)."""
    nd, cfg = res["needle"], res["config"]
    lengths = sorted({it["length"] for it in nd["items"]})
    fmt = cfg.get("passkey_format", "kjv")
    lines = ["", f"## Passkey accuracy ({fmt} format): lengths {lengths}, depths {cfg['depths']}, "
                 f"{cfg.get('seeds', 1)} seed(s) per (length, depth)", ""]
    full = next(r for r in nd["rows"] if r["policy"] == "full")
    for n in lengths:
        count = sum(it["length"] == n for it in nd["items"])

        def cell(r, n=n, count=count):
            acc = r["by_length"].get(str(n))
            if acc is None:
                return "-"
            m = r["item_lengths"].count(n) if "item_lengths" in r else count  # merged rows may skip parts
            return f"{acc:.2f} ({round(acc * m)}/{m})"

        budgets = sorted({r["budget"] for r in nd["rows"] if r["policy"] != "full" and str(n) in r["by_length"]
                          and isinstance(r["budget"], int)})
        lines += [f"### length {n} ({count} items; full KV {cell(full)})", "",
                  "| policy | " + " | ".join(f"{b}" + (" (1/8)" if b == n // 8 else " (1/16)" if b == n // 16 else "")
                                             for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
        for p in cfg["policies"]:
            rows = {r["budget"]: r for r in nd["rows"] if r["policy"] == p}
            lines.append(f"| {p} | " + " | ".join("-" if b not in rows else cell(rows[b]) for b in budgets) + " |")
        lines.append("")
    return lines


def merge_needle(parts: list[dict]) -> dict:
    """One needle result from several (the same runs on different items, or different runs on the same items):
    rows recomputed from the answers. An item (length, depth, seed) in several parts counts once per row (its
    first answer), so e.g. the full-KV row of two parts over the same items is not doubled."""
    from workbench.sparse.needle import answer_key

    def ident(it):
        return (it["length"], it["depth"], it["seed"])

    first: dict = {}
    for p in parts:
        for it in p["items"]:
            first.setdefault(ident(it), it)
    items = list(first.values())
    keys = list(dict.fromkeys((r["policy"], json.dumps(r["budget"])) for p in parts for r in p["rows"]))
    rows = []
    for key in keys:
        answers, row_items, seconds, row, seen = [], [], 0.0, None, set()
        for p in parts:  # a run missing from a part (e.g. skipped at one length) has no items there
            match = next((r for r in p["rows"] if (r["policy"], json.dumps(r["budget"])) == key), None)
            if match is not None:
                row = row or match
                for a, it in zip(match["answers"], p["items"]):
                    if ident(it) not in seen:
                        seen.add(ident(it))
                        answers.append(a)
                        row_items.append(it)
                seconds += match["seconds"]
        ok = [answer_key(a) == it["passkey"] for a, it in zip(answers, row_items)]
        by_length, by_depth = {}, {}
        for o, it in zip(ok, row_items):
            by_length.setdefault(str(it["length"]), []).append(o)
            by_depth.setdefault(f"{it['depth']:g}", []).append(o)
        rows.append({**row, "items": len(row_items), "correct": sum(ok), "accuracy": sum(ok) / len(ok),
                     "item_lengths": [it["length"] for it in row_items],
                     "item_keys": [list(ident(it)) for it in row_items],  # (length, depth, seed) of each answer
                     "by_length": {k: sum(v) / len(v) for k, v in by_length.items()},
                     "by_depth": {k: sum(v) / len(v) for k, v in by_depth.items()}, "answers": answers,
                     "seconds": seconds})
    return {"items": items, "answer_tokens": parts[0]["answer_tokens"],
            "prefill_seconds": sum(p["prefill_seconds"] for p in parts), "rows": rows}


def merge_perplexity(parts: list[dict]) -> dict:
    """One perplexity result from parts split over policies / budgets on the same text: the full-KV row once
    (every part's must agree), then every part's other rows in order (a (policy, budget) seen twice kept once)."""
    fulls = [next(r for r in p["rows"] if r["policy"] == "full") for p in parts]
    if max(f["ppl"] for f in fulls) - min(f["ppl"] for f in fulls) > 1e-6 * fulls[0]["ppl"]:
        raise SystemExit(f"--merge: the perplexity parts disagree on full-KV ppl {[f['ppl'] for f in fulls]}")
    for key in ("prefix", "score", "texts"):
        if len({p[key] for p in parts}) > 1:
            raise SystemExit(f"--merge: the perplexity parts differ in {key}")
    rows, seen = [fulls[0]], {("full", json.dumps(fulls[0]["budget"]))}
    for p in parts:
        for r in p["rows"]:
            key = (r["policy"], json.dumps(r["budget"]))
            if key not in seen:
                seen.add(key)
                rows.append(r)
    return {**parts[0], "rows": rows, "prefill_seconds": [p["prefill_seconds"] for p in parts]}


def merge(paths: list[str], out: Path, notes: list[str]) -> None:
    """Combine part results into the final json + md: perplexity parts (split over policies or budgets on the same
    text), needle parts (split over lengths, depths or policies), or both."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    ppl = [p for p in parts if "perplexity" in p]
    needle = [p for p in parts if "needle" in p]
    res = dict(ppl[0] if ppl else needle[0])
    res.pop("needle", None)
    if ppl:
        res["perplexity"] = merge_perplexity([p["perplexity"] for p in ppl])
    config = {**res["config"], "budgets": sorted({b for p in parts for b in p["config"]["budgets"]}),
              "policies": list(dict.fromkeys(x for p in parts for x in p["config"]["policies"])),
              "lengths": [], "depths": []}
    if needle:
        formats = {p["config"].get("passkey_format", "kjv") for p in needle}
        if len(formats) > 1:
            raise SystemExit(f"--merge: the needle parts use different passkey formats {sorted(formats)}")
        res["needle"] = merge_needle([p["needle"] for p in needle])
        config.update(lengths=sorted({n for p in needle for n in p["config"]["lengths"]}),
                      depths=sorted({d for p in needle for d in p["config"]["depths"]}),
                      seeds=max(p["config"].get("seeds", 1) for p in needle), passkey_format=formats.pop())
    res["config"] = config
    res["parts"] = [{"command": p["command"], "seconds": p["seconds"], "loadavg_start": p["loadavg_start"],
                     "loadavg_end": p["loadavg_end"], "threads": p["config"]["threads"]} for p in parts]
    res["command"] = " ; ".join(p["command"] for p in parts) + " ; merged with --merge"
    res["seconds"] = max(p["seconds"] for p in parts)
    res["loadavg_start"] = min((p["loadavg_start"] for p in parts), key=lambda x: x[0])
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["target_check"] = target_check(res["perplexity"]["rows"] if ppl else [],
                                       res["needle"]["rows"] if needle else [], config["prefix"], config["lengths"])
    res["notes"] = notes
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--quick", action="store_true", help="small smoke configuration")
    ap.add_argument("--policies", nargs="*", default=None, help="default: every registered policy")
    ap.add_argument("--budgets", nargs="*", type=int, default=None)
    ap.add_argument("--prefix", type=int, default=None)
    ap.add_argument("--score", type=int, default=None)
    ap.add_argument("--texts", type=int, default=None)
    ap.add_argument("--lengths", nargs="*", type=int, default=None)
    ap.add_argument("--depths", nargs="*", type=float, default=None)
    ap.add_argument("--passkey-format", default="landmark", choices=["landmark", "kjv"],
                    help="passkey task: the Landmark Attention paper's filler (default) or KJV verses")
    ap.add_argument("--seeds", type=int, default=1, help="passkey items per (length, depth)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="index of the first item per (length, depth): parts with disjoint items for --merge")
    ap.add_argument("--key-digits", type=int, default=5, help="digits of the passkey")
    ap.add_argument("--answer-tokens", type=int, default=ANSWER_TOKENS,
                    help="greedy tokens decoded per passkey answer (slack for a prefix such as ' is')")
    ap.add_argument("--skip-needle", action="store_true")
    ap.add_argument("--skip-ppl", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--group", type=int, default=8, help="runs decoded together as one batch")
    ap.add_argument("--out", default="benchmarks/results/sparse_quality")
    ap.add_argument("--notes", nargs="*", default=None, help="free-text notes for the results (with --merge)")
    ap.add_argument("--merge", nargs="*", default=None,
                    help="combine part results (e.g. runs with --skip-needle / --skip-ppl) into --out")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, Path(args.out), args.notes or [])
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from workbench.models import LM
    from workbench.sparse import SELECTORS
    from workbench.sparse.needle import make_needle_item, needle_accuracy
    from workbench.sparse.perplexity import policy_perplexity

    q = args.quick
    policies = args.policies or sorted(n for n in SELECTORS if n != "full")
    unknown = [p for p in policies if p not in SELECTORS]
    if unknown:
        raise SystemExit(f"--policies: unknown {unknown}; known: {sorted(SELECTORS)}")
    policies = [p for p in policies if p != "full"]
    budgets = args.budgets or ([64, 128] if q else BUDGETS)
    prefix = args.prefix or (512 if q else 4096)
    score = args.score or (8 if q else 64)
    texts = args.texts or (1 if q else 2)
    lengths = args.lengths or ([1024] if q else [1024, 2048, 4096, 8192])
    depths = args.depths or ([0.5] if q else [0.1, 0.5, 0.9])
    for d in depths:
        if not 0 <= d <= 1:
            raise SystemExit(f"--depths must lie in [0, 1], got {d}")
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
    if args.first_seed < 0:
        raise SystemExit(f"--first-seed must be >= 0, got {args.first_seed}")
    if args.answer_tokens < 1:
        raise SystemExit(f"--answer-tokens must be >= 1, got {args.answer_tokens}")
    if not 1 <= args.key_digits <= 18:
        raise SystemExit(f"--key-digits must be in [1, 18], got {args.key_digits}")
    runs = [(p, b) for p in policies for b in budgets]

    t0 = time.perf_counter()
    load0 = os.getloadavg()
    lm = LM.load(args.model)
    res: dict = {
        "command": "python benchmarks/sparse_quality.py " + " ".join(os.sys.argv[1:]),
        "config": {"model": args.model, "policies": policies, "budgets": budgets, "prefix": prefix, "score": score,
                   "texts": texts, "lengths": lengths, "depths": depths, "threads": torch.get_num_threads(),
                   "passkey_format": args.passkey_format, "seeds": args.seeds, "first_seed": args.first_seed,
                   "key_digits": args.key_digits,
                   "answer_tokens": args.answer_tokens},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "cpus": os.cpu_count()},
        "loadavg_start": [round(x, 2) for x in load0],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        res["seconds"] = time.perf_counter() - t0
        res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        if "needle" in res:
            res["target_check"] = target_check(res.get("perplexity", {}).get("rows", []), res["needle"]["rows"],
                                               prefix, lengths)
        if "perplexity" in res or "needle" in res:
            out.with_suffix(".md").write_text(markdown(res))
        out.with_suffix(".json").write_text(json.dumps(res, indent=1))

    if not args.skip_ppl:
        ids = text_windows(lm, texts, prefix + score + 1)
        ppl = policy_perplexity(lm, ids, prefix, score, runs, group=args.group, progress=True)
        res["perplexity"] = ppl.to_dict()
        print(ppl, flush=True)
        save()
    if not args.skip_needle:
        filler = kjv_filler(lm, max(lengths) * 2) if args.passkey_format == "kjv" else None
        items = [make_needle_item(lm.tokenizer, filler, n, d, seed=1000 * n + round(100 * d) + 100000 * i,
                                  max_context=lm.max_context, fmt=args.passkey_format, key_digits=args.key_digits)
                 for n in lengths for d in depths for i in range(args.first_seed, args.first_seed + args.seeds)]
        parts = []
        for n in lengths:  # one length at a time, saved after each (a run killed later keeps the finished lengths)
            fits = [r for r in runs if r[1] <= n + args.answer_tokens - 1]  # a larger budget would be full KV here
            nd = needle_accuracy(lm, [it for it in items if it.length == n], fits, answer_tokens=args.answer_tokens,
                                 group=args.group, progress=True)
            parts.append(nd.to_dict())
            res["needle"] = merge_needle(parts)
            print(nd, flush=True)
            save()
    save()
    print(f"wrote {out.with_suffix('.json')} in {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()
