"""One decode step of attention on the CPU: dense SDPA against gathered sparse attention over a budget of L/16.

    python benchmarks/sparse_attention_cpu.py [--contexts 4096 16384 32768] [--budget-divisor 16]
                                              [--shapes smollm2-135m llama-8b] [--reps 15] [--threads 1]

Shapes (one attention layer, batch 1, fp32): smollm2-135m (the default model: 9 query heads, 3 KV heads,
head_dim 64) and llama-8b (32 query heads, 8 KV heads, head_dim 128). Context L, budget B = L / divisor
positions per KV head. Methods, timed one decode query per head:
- dense_sdpa: torch SDPA over all L cached positions. GQA as SDPA batches over KV heads: the query heads of a
  group are that KV head's query rows ([1, H_kv, H/H_kv, D] against [1, H_kv, L, D]), so no K/V copy is made.
- gather_sdpa: index gather of the B selected K and V rows per KV head, then the same SDPA over them.
- kernel_reference: `workbench.kernels.sparse_decode_attention` on the CPU (its PyTorch reference: gather +
  fp32 einsum softmax), the path `workbench.sparse.integration` gathered mode takes without a GPU.
- quest_ops_gather_sdpa: gather_sdpa plus the selection cost of Quest at page size P, with workbench's ops
  (their PyTorch references on the CPU): page scores from the page bounds (`quest_page_scores`: the paper's
  sum_d max(q_d min_d, q_d max_d), elementwise over [H, P, D]), `topk_select` of B/P pages per KV head (ties
  to the more recent page, Quest's rule), page -> token indices.
- quest_matmul_gather_sdpa: the same selection written for CPU speed: since max(q m, q M) = q M for q >= 0 and
  q m for q < 0 (m <= M), the bound is clamp(q, min=0) . M + clamp(q, max=0) . m, two matrix products; then
  torch.topk over pages. Its scores are checked against quest_page_scores (fp32 tolerance; near-equal pages may
  be ordered differently, which does not change the cost).
The page bounds are cache metadata, maintained when a page fills, so both Quest rows compute them once outside
the timing (`quest_bounds_ms` reports what computing them from scratch costs).
Interleaved repetitions: every rep runs every method once, in a rotated order; medians over reps. Time is the
calling thread's CPU time (time.thread_time; torch runs single-threaded by default here), because on a shared,
overloaded machine wall time mostly measures when the scheduler lets the process run (wall medians are kept in
the JSON too; `--threads` > 1 makes CPU time meaningless, so it then reports wall time). speedup =
dense median / method median, printed next to the bound 2L / (s L + 2B) of `workbench.sparse.metrics` (s = 0
without selection, 2/P for Quest's page bounds). Roofline: the run first measures this machine's one-thread read
bandwidth (`read_bandwidth`: median time of summing a `--stream-mib` fp32 tensor, far larger than the caches);
each method's achieved bandwidth is its K/V (+ Quest metadata) bytes read / its median time, also given as a
fraction of that measured bandwidth (above 1 where the step's K/V still sits in the caches from the previous
rep: the small contexts). Writes benchmarks/results/sparse_attention_cpu.json and .md.
Simplifications: random q/k/v and a random selection (the attention cost does not depend on which positions are
chosen); one layer, batch 1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from workbench.kernels import (
    quest_page_bounds,
    quest_page_scores,
    sparse_decode_attention,
    topk_select,
)
from workbench.sparse.metrics import speedup_bound

SHAPES = {  # name: (query heads, KV heads, head_dim)
    "smollm2-135m": (9, 3, 64),
    "llama-8b": (32, 8, 128),
}
METHODS = ["dense_sdpa", "gather_sdpa", "kernel_reference", "quest_ops_gather_sdpa", "quest_matmul_gather_sdpa"]
QUEST = ("quest_ops_gather_sdpa", "quest_matmul_gather_sdpa")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--budget-divisor", type=int, default=16, help="budget B = context / divisor")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--page-size", type=int, default=16, help="Quest page size")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream-mib", type=int, default=512, help="tensor size of the read-bandwidth measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "sparse_attention_cpu.json")
    args = parser.parse_args(argv)
    for name in ("budget_divisor", "page_size", "reps", "threads", "stream_mib"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    for context in args.contexts:
        budget = context // args.budget_divisor
        if budget < args.page_size or budget % args.page_size or context % args.page_size:
            parser.error(f"context {context}: the context and the budget {budget} must be multiples of "
                         f"--page-size {args.page_size} (whole pages)")
    return args


def make_step(heads: int, kv_heads: int, head_dim: int, context: int, budget: int, page_size: int, seed: int):
    """Random decode-step tensors, a random selection of `budget` sorted positions per KV head, page bounds."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, heads, head_dim, generator=gen)
    k = torch.randn(1, kv_heads, context, head_dim, generator=gen)
    v = torch.randn(1, kv_heads, context, head_dim, generator=gen)
    indices = torch.stack([torch.randperm(context, generator=gen)[:budget].sort().values for _ in range(kv_heads)])
    kmin, kmax = quest_page_bounds(k, page_size)
    return q, k, v, indices[None], kmin, kmax


def dense_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    b, h, d = q.shape
    kv_heads = k.shape[1]
    out = F.scaled_dot_product_attention(q.reshape(b, kv_heads, h // kv_heads, d), k, v)
    return out.reshape(b, h, d)


def gather_rows(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """x[b, g, indices[b, g]] for contiguous x [B, H_kv, S, D]: one index_select over the flattened rows."""
    b, kv_heads, seq, d = x.shape
    base = torch.arange(b * kv_heads).view(b, kv_heads, 1) * seq
    return x.view(-1, d).index_select(0, (indices + base).flatten()).view(b, kv_heads, -1, d)


def gather_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    return dense_sdpa(q, gather_rows(k, indices), gather_rows(v, indices))


def quest_indices(q: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor, budget: int, page_size: int
                  ) -> torch.Tensor:
    """Quest's selection of budget // page_size whole pages per KV head, as token indices [1, H_kv, budget]."""
    pages = topk_select(quest_page_scores(q, kmin, kmax), budget // page_size, "higher", check_values=False)
    offsets = torch.arange(page_size)
    return (pages[..., None] * page_size + offsets).flatten(2)


def quest_matmul_indices(q: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor, budget: int, page_size: int
                         ) -> torch.Tensor:
    """quest_indices with the page bound as two matrix products and torch.topk (see the module docstring)."""
    scores = quest_matmul_scores(q, kmin, kmax)
    pages = torch.topk(scores, budget // page_size, dim=-1, sorted=False).indices.sort(-1).values
    return (pages[..., None] * page_size + torch.arange(page_size)).flatten(2)


def quest_matmul_scores(q: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> torch.Tensor:
    b, h, d = q.shape
    kv_heads = kmin.shape[1]
    qg = q.reshape(b, kv_heads, h // kv_heads, d)
    bound = qg.clamp(min=0) @ kmax.transpose(-1, -2) + qg.clamp(max=0) @ kmin.transpose(-1, -2)
    return bound.amax(2)


def bytes_read(kv_heads: int, context: int, head_dim: int, budget: int, page_size: int) -> dict[str, int]:
    """K/V (and Quest metadata) bytes one step reads per method, fp32, batch 1 (selection indices excluded)."""
    row = head_dim * 4
    dense = 2 * kv_heads * context * row
    sparse = 2 * kv_heads * budget * row
    metadata = 2 * kv_heads * (context // page_size) * row
    return {"dense_sdpa": dense, "gather_sdpa": sparse, "kernel_reference": sparse,
            "quest_ops_gather_sdpa": sparse + metadata, "quest_matmul_gather_sdpa": sparse + metadata}


def read_bandwidth(mib: int, reps: int, clock=time.thread_time) -> dict:
    """Read bandwidth in GB/s (10^9 bytes/s): `mib` MiB of fp32 summed, median time of `reps` by `clock` (the
    cases' clock: thread CPU time with one thread, wall time with more)."""
    x = torch.ones(mib * 2**20 // 4)
    x.sum()  # touch every page once before timing
    times = []
    for _ in range(reps):
        start = clock()
        x.sum()
        times.append(clock() - start)
    size, median = x.numel() * 4, statistics.median(times)
    return {"bytes": size, "median_s": median, "gbps": size / median / 1e9}


def run_case(shape: str, context: int, args: argparse.Namespace, bar: tqdm) -> dict:
    heads, kv_heads, head_dim = SHAPES[shape]
    budget = context // args.budget_divisor
    q, k, v, indices, kmin, kmax = make_step(heads, kv_heads, head_dim, context, budget, args.page_size, args.seed)
    calls = {
        "dense_sdpa": lambda: dense_sdpa(q, k, v),
        "gather_sdpa": lambda: gather_sdpa(q, k, v, indices),
        "kernel_reference": lambda: sparse_decode_attention(q, k, v, indices, check_indices=False),
        "quest_ops_gather_sdpa": lambda: gather_sdpa(q, k, v, quest_indices(q, kmin, kmax, budget, args.page_size)),
        "quest_matmul_gather_sdpa": lambda: gather_sdpa(
            q, k, v, quest_matmul_indices(q, kmin, kmax, budget, args.page_size)),
    }
    # Sanity: the gathered paths compute the same attention over the same selection.
    torch.testing.assert_close(calls["gather_sdpa"](), calls["kernel_reference"](), rtol=1e-4, atol=1e-5)
    full = torch.arange(context).expand(1, kv_heads, context)
    torch.testing.assert_close(gather_sdpa(q, k, v, full), dense_sdpa(q, k, v), rtol=1e-4, atol=1e-5)
    assert quest_indices(q, kmin, kmax, budget, args.page_size).shape == (1, kv_heads, budget)
    assert quest_matmul_indices(q, kmin, kmax, budget, args.page_size).shape == (1, kv_heads, budget)
    torch.testing.assert_close(quest_matmul_scores(q, kmin, kmax), quest_page_scores(q, kmin, kmax),
                               rtol=1e-4, atol=1e-4)

    times: dict[str, list[float]] = {m: [] for m in METHODS}
    walls: dict[str, list[float]] = {m: [] for m in METHODS}
    for rep in range(args.warmup + args.reps):
        order = METHODS[rep % len(METHODS):] + METHODS[:rep % len(METHODS)]
        for method in order:
            cpu, wall = time.thread_time(), time.perf_counter()
            calls[method]()
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            if rep >= args.warmup:
                times[method].append(cpu)
                walls[method].append(wall)
        bar.update(1)
    start = time.thread_time()
    quest_page_bounds(k, args.page_size)
    bounds_ms = (time.thread_time() - start) * 1e3

    primary = walls if args.threads > 1 else times
    medians = {m: statistics.median(ts) * 1e3 for m, ts in primary.items()}
    bounds = {"dense_sdpa": 1.0, "gather_sdpa": speedup_bound(context, budget, 0.0),
              "kernel_reference": speedup_bound(context, budget, 0.0),
              **{m: speedup_bound(context, budget, 2 / args.page_size) for m in QUEST}}
    moved = bytes_read(kv_heads, context, head_dim, budget, args.page_size)
    achieved = {m: moved[m] / (medians[m] / 1e3) / 1e9 for m in METHODS}
    return {
        "clock": "wall" if args.threads > 1 else "thread_cpu",
        "shape": shape, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "context": context,
        "budget": budget, "page_size": args.page_size,
        "median_ms": medians,
        "median_wall_ms": {m: statistics.median(ts) * 1e3 for m, ts in walls.items()},
        "speedup_vs_dense": {m: medians["dense_sdpa"] / medians[m] for m in METHODS},
        "speedup_bound": bounds,
        "bytes_read": moved,
        "achieved_gbps": achieved,
        "quest_bounds_ms": bounds_ms,
        "times_ms": {m: [t * 1e3 for t in ts] for m, ts in times.items()},
        "wall_times_ms": {m: [t * 1e3 for t in ts] for m, ts in walls.items()},
    }


def markdown(results: dict) -> str:
    lines = [(f"Decode attention, one layer, batch 1, fp32, {results['threads']} thread(s); budget = context / "
             f"{results['budget_divisor']}; medians of {results['reps']} interleaved reps "
             f"({results['cases'][0]['clock'] if results['cases'] else ''} time); load average "
             f"{results['loadavg_before'][0]:.1f} before, {results['loadavg_after'][0]:.1f} after."), "",
             ("| shape | context | budget | dense ms | gather+SDPA ms (x, bound) | kernel ref ms (x) "
             "| Quest ops + gather ms (x) | Quest matmul + gather ms (x, bound) |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case in results["cases"]:
        ms, x, bound = case["median_ms"], case["speedup_vs_dense"], case["speedup_bound"]
        lines.append(
            f"| {case['shape']} | {case['context']} | {case['budget']} | {ms['dense_sdpa']:.3f} "
            f"| {ms['gather_sdpa']:.3f} ({x['gather_sdpa']:.1f}x, {bound['gather_sdpa']:.0f}x) "
            f"| {ms['kernel_reference']:.3f} ({x['kernel_reference']:.1f}x) "
            f"| {ms['quest_ops_gather_sdpa']:.3f} ({x['quest_ops_gather_sdpa']:.1f}x) "
            f"| {ms['quest_matmul_gather_sdpa']:.3f} ({x['quest_matmul_gather_sdpa']:.1f}x, "
            f"{bound['quest_matmul_gather_sdpa']:.0f}x) |")
    bw = results.get("read_bandwidth")
    if bw:
        lines += ["", (f"Roofline: bytes read / median time, in GB/s and as a fraction of this machine's "
                       f"read bandwidth measured in the same run ({bw['gbps']:.1f} GB/s: a {bw['bytes'] / 2**20:.0f}"
                       f" MiB fp32 sum; above 1 where the K/V is still in the caches)."), "",
                  "| shape | context | dense | gather+SDPA | kernel ref | Quest ops + gather | Quest matmul + gather |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for case in results["cases"]:
            cells = [f"{case['achieved_gbps'][m]:.1f} ({case['achieved_gbps'][m] / bw['gbps']:.2f})" for m in METHODS]
            lines.append(f"| {case['shape']} | {case['context']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {
        "benchmark": "sparse_attention_cpu", "command": "python benchmarks/sparse_attention_cpu.py "
        + " ".join(argv if argv is not None else os.sys.argv[1:]),
        "threads": args.threads, "reps": args.reps, "warmup": args.warmup, "budget_divisor": args.budget_divisor,
        "dtype": "float32", "torch": torch.__version__, "platform": platform.platform(),
        "processor": platform.processor(), "cpu_count": os.cpu_count(), "loadavg_before": list(os.getloadavg()),
        "cases": [],
    }
    cases = [(shape, context) for shape in args.shapes for context in args.contexts]
    clock = time.perf_counter if args.threads > 1 else time.thread_time
    results["read_bandwidth"] = read_bandwidth(args.stream_mib, max(args.reps, 3), clock)
    with torch.inference_mode(), tqdm(total=len(cases) * (args.warmup + args.reps), desc="reps") as bar:
        for shape, context in cases:
            bar.set_postfix_str(f"{shape} L={context}")
            results["cases"].append(run_case(shape, context, args, bar))
    results["loadavg_after"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return results


if __name__ == "__main__":
    main()
