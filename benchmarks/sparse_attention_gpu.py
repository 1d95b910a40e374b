"""Sparse decode attention on a GPU: the CuPy kernel against torch dense SDPA and torch gather + SDPA.

    python benchmarks/sparse_attention_gpu.py [--contexts 4096 16384 32768] [--budget 2048]
                                              [--shapes smollm2-135m llama-8b] [--dtype bfloat16]
                                              [--batch 1] [--reps 50] [--peak-gbps N]

Needs a CUDA device, a CUDA build of torch and CuPy (`pip install -e ".[gpu]"`); without them it exits at once
with a message saying what is missing. One decode step of one attention layer (one query per head), shapes as
in benchmarks/sparse_attention_cpu.py. Methods:
- dense_sdpa: torch SDPA over all L cached positions (GQA as SDPA batched over KV heads, no K/V copy);
- gather_sdpa: index_select of the B selected K/V rows per KV head, then SDPA over them;
- kernel: `workbench.kernels.sparse_decode_attention(backend="cupy")` (kernels_cu/sparse_decode_attention.cu);
- quest_select: the selection kernels of one Quest step alone (`quest_page_scores` + `topk_select` of
  B / page_size pages), for scale.
Timing: CUDA events around each call, the L2 cache flushed (a 256 MiB write) before every timed call, methods
interleaved per repetition, medians. Bytes read per call (`bytes_read`): the K and V rows the method must read
plus the query, the index list and the output; achieved bandwidth = bytes / median time, reported as a
fraction of the device's peak DRAM bandwidth (`--peak-gbps`, else a table of known devices). Targets (issue
#6): the kernel >= 8x dense SDPA at L = 32k with B = 2k, and >= 70% of peak bandwidth. Writes
benchmarks/results/sparse_attention_gpu.json and .md.
Simplifications: random q/k/v and a random selection (the cost does not depend on which positions are chosen);
bytes count each needed element once (what a perfect kernel would read), not what caches actually moved.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

SHAPES = {  # name: (query heads, KV heads, head_dim)
    "smollm2-135m": (9, 3, 64),
    "llama-8b": (32, 8, 128),
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
METHODS = ["dense_sdpa", "gather_sdpa", "kernel"]
# Peak DRAM bandwidth in GB/s (10^9 bytes/s) from the vendors' data sheets, matched on the device name.
PEAK_GBPS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H100 NVL": 3900.0,
             "A100-SXM4-80GB": 2039.0, "A100 80GB PCIe": 1935.0, "A100-SXM4-40GB": 1555.0, "A100-PCIE-40GB": 1555.0,
             "L40S": 864.0, "L4": 300.0, "A10G": 600.0, "RTX 4090": 1008.0}
TARGET_SPEEDUP = 8.0  # kernel vs dense SDPA at L = 32k, B = 2k
TARGET_PEAK_FRACTION = 0.70
INDEX_BYTES = 8  # int64 positions
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--budget", type=int, default=2048, help="selected positions per KV head")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=16, help="Quest page size of the quest_select row")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--peak-gbps", type=float, default=None,
                        help="the device's peak DRAM bandwidth in GB/s (default: looked up from the device name)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "sparse_attention_gpu.json")
    args = parser.parse_args(argv)
    for name in ("budget", "batch", "page_size", "reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.peak_gbps is not None and args.peak_gbps <= 0:
        parser.error(f"--peak-gbps must be > 0, got {args.peak_gbps}")
    for context in args.contexts:
        if not args.budget <= context:
            parser.error(f"--budget {args.budget} must not exceed a context (got context {context})")
    return args


def bytes_read(method: str, batch: int, heads: int, kv_heads: int, head_dim: int, context: int, budget: int,
               elem_bytes: int) -> int:
    """Bytes one decode step must move for `method`: K and V rows read, plus query, indices and output."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    q_and_out = 2 * batch * heads * head_dim * elem_bytes
    if method == "dense_sdpa":
        return 2 * batch * kv_heads * context * head_dim * elem_bytes + q_and_out
    rows = 2 * batch * kv_heads * budget * head_dim * elem_bytes
    indices = batch * kv_heads * budget * INDEX_BYTES
    if method == "gather_sdpa":  # the gathered copy is written and read back
        return 3 * rows + indices + q_and_out
    return rows + indices + q_and_out


def peak_gbps(device_name: str, override: float | None = None) -> float | None:
    """The peak DRAM bandwidth for a device name (longest matching key of PEAK_GBPS), or `override`."""
    if override is not None:
        return override
    matches = [key for key in PEAK_GBPS if key.lower() in device_name.lower()]
    return PEAK_GBPS[max(matches, key=len)] if matches else None


def gpu_unavailable_reason() -> str | None:
    """Why this benchmark cannot run here, or None."""
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (a CUDA build of torch and a GPU are needed)"
    from workbench.kernels import cupy_unavailable_reason

    return cupy_unavailable_reason()


def summarize(times_ms: dict[str, list[float]], nbytes: dict[str, int], peak: float | None) -> dict:
    """Medians, speedups vs dense, achieved GB/s and fraction of peak from per-rep times (ms) and bytes."""
    medians = {m: statistics.median(ts) for m, ts in times_ms.items()}
    out = {"median_ms": medians,
           "speedup_vs_dense": {m: medians["dense_sdpa"] / medians[m] for m in medians if m in nbytes},
           "gbps": {m: nbytes[m] / (medians[m] * 1e-3) / 1e9 for m in nbytes}}
    out["peak_fraction"] = {m: g / peak for m, g in out["gbps"].items()} if peak else None
    return out


def _time_case(shape: str, context: int, args: argparse.Namespace, flush: torch.Tensor) -> dict:
    import torch.nn.functional as F

    from workbench.kernels import (
        quest_page_bounds,
        quest_page_scores,
        sparse_decode_attention,
        topk_select,
    )

    heads, kv_heads, head_dim = SHAPES[shape]
    dtype, device = DTYPES[args.dtype], torch.device("cuda")
    gen = torch.Generator(device=device).manual_seed(args.seed)
    b = args.batch
    q = torch.randn(b, heads, head_dim, generator=gen, device=device, dtype=dtype)
    k = torch.randn(b, kv_heads, context, head_dim, generator=gen, device=device, dtype=dtype)
    v = torch.randn(b, kv_heads, context, head_dim, generator=gen, device=device, dtype=dtype)
    indices = torch.rand(b, kv_heads, context, generator=gen, device=device).argsort(-1)[..., :args.budget]
    indices = indices.sort(-1).values.contiguous()
    flat = (indices + torch.arange(b * kv_heads, device=device).view(b, kv_heads, 1) * context).flatten()
    qg = q.reshape(b, kv_heads, heads // kv_heads, head_dim)
    kmin, kmax = quest_page_bounds(k, args.page_size)
    pages = max(1, args.budget // args.page_size)

    def gather(x):
        return x.view(-1, head_dim).index_select(0, flat).view(b, kv_heads, args.budget, head_dim)

    calls = {
        "dense_sdpa": lambda: F.scaled_dot_product_attention(qg, k, v),
        "gather_sdpa": lambda: F.scaled_dot_product_attention(qg, gather(k), gather(v)),
        "kernel": lambda: sparse_decode_attention(q, k, v, indices, check_indices=False, backend="cupy"),
        "quest_select": lambda: topk_select(quest_page_scores(q, kmin, kmax, backend="cupy"), pages, "higher",
                                            check_values=False, backend="cupy"),
    }
    reference = calls["gather_sdpa"]().reshape(b, heads, head_dim).float()
    torch.testing.assert_close(calls["kernel"]().float(), reference, rtol=2e-2, atol=2e-3)

    times: dict[str, list[float]] = {m: [] for m in calls}
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    names = list(calls)
    for rep in range(args.warmup + args.reps):
        for method in names[rep % len(names):] + names[:rep % len(names)]:
            flush.zero_()
            start.record()
            calls[method]()
            end.record()
            end.synchronize()
            if rep >= args.warmup:
                times[method].append(start.elapsed_time(end))
    elem = torch.finfo(dtype).bits // 8
    nbytes = {m: bytes_read(m, b, heads, kv_heads, head_dim, context, args.budget, elem) for m in METHODS}
    peak = peak_gbps(torch.cuda.get_device_name(device), args.peak_gbps)
    case = {"shape": shape, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "context": context,
            "budget": args.budget, "bytes_read": nbytes, **summarize(times, nbytes, peak), "times_ms": times}
    if context == 32768 and args.budget == 2048:
        case["targets"] = {"speedup_vs_dense": case["speedup_vs_dense"]["kernel"] >= TARGET_SPEEDUP,
                           "peak_fraction": None if peak is None else
                           case["peak_fraction"]["kernel"] >= TARGET_PEAK_FRACTION}
    return case


def markdown(results: dict) -> str:
    lines = [(f"{results['device']}, {results['dtype']}, batch {results['batch']}, budget {results['budget']}; "
             f"medians of {results['reps']} interleaved reps, L2 flushed before each call; peak "
             f"{results['peak_gbps']} GB/s."), "",
             ("| shape | context | dense ms | gather+SDPA ms (x) | kernel ms (x) | kernel GB/s (of peak) "
             "| Quest select ms |"),
             "|---|---:|---:|---:|---:|---:|---:|"]
    for c in results["cases"]:
        ms, x = c["median_ms"], c["speedup_vs_dense"]
        frac = f" ({c['peak_fraction']['kernel']:.0%})" if c["peak_fraction"] else ""
        lines.append(f"| {c['shape']} | {c['context']} | {ms['dense_sdpa']:.4f} | {ms['gather_sdpa']:.4f} "
                     f"({x['gather_sdpa']:.1f}x) | {ms['kernel']:.4f} ({x['kernel']:.1f}x) "
                     f"| {c['gbps']['kernel']:.0f}{frac} | {ms['quest_select']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    reason = gpu_unavailable_reason()
    if reason is not None:
        raise SystemExit(f"sparse_attention_gpu: cannot run here: {reason}")
    from tqdm import tqdm

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    results = {"benchmark": "sparse_attention_gpu",
               "command": "python benchmarks/sparse_attention_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "device": name, "peak_gbps": peak_gbps(name, args.peak_gbps), "dtype": args.dtype,
               "batch": args.batch, "budget": args.budget, "reps": args.reps, "torch": torch.__version__,
               "platform": platform.platform(), "loadavg_before": list(os.getloadavg()), "cases": []}
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    cases = [(s, c) for s in args.shapes for c in args.contexts]
    with torch.inference_mode():
        for shape, context in tqdm(cases, desc="cases"):
            results["cases"].append(_time_case(shape, context, args, flush))
    results["loadavg_after"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return results


if __name__ == "__main__":
    main()
