"""The CPU-side pieces of benchmarks/sparse_attention_gpu.py (argument checks, bytes-read accounting, peak
bandwidth look-up, the exit without a GPU) and the building blocks of benchmarks/sparse_attention_cpu.py."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from workbench.kernels import (
    quest_page_bounds,
    quest_page_scores,
    sparse_decode_attention,
)
from workbench.sparse.reference import dense_attention, sparse_attention

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gpu = _load("sparse_attention_gpu")
cpu = _load("sparse_attention_cpu")


def test_gpu_arguments_defaults_and_errors(capsys):
    args = gpu.parse_args([])
    assert args.contexts == [4096, 16384, 32768] and args.budget == 2048 and args.dtype == "bfloat16"
    assert gpu.parse_args(["--contexts", "32768", "--budget", "4096", "--peak-gbps", "3350"]).peak_gbps == 3350.0
    for bad, message in [(["--budget", "0"], "--budget must be >= 1"), (["--contexts", "1024"], "must not exceed"),
                         (["--peak-gbps", "-1"], "--peak-gbps must be > 0"), (["--dtype", "int8"], "invalid choice"),
                         (["--shapes", "gpt2"], "invalid choice"), (["--warmup", "-1"], "--warmup must be >= 0")]:
        with pytest.raises(SystemExit) as exc:
            gpu.parse_args(bad)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_bytes_read_accounting_llama_32k_2k_bf16():
    # 8 KV heads x 32768 positions x 128 channels x 2 bytes, for K and for V, plus q and out (32 x 128 x 2 each)
    dense = gpu.bytes_read("dense_sdpa", 1, 32, 8, 128, 32768, 2048, 2)
    assert dense == 2 * 8 * 32768 * 128 * 2 + 2 * 32 * 128 * 2 == 134_234_112
    kernel = gpu.bytes_read("kernel", 1, 32, 8, 128, 32768, 2048, 2)
    rows = 2 * 8 * 2048 * 128 * 2
    assert kernel == rows + 8 * 2048 * 8 + 2 * 32 * 128 * 2
    assert gpu.bytes_read("gather_sdpa", 1, 32, 8, 128, 32768, 2048, 2) == kernel + 2 * rows
    assert gpu.bytes_read("kernel", 2, 32, 8, 128, 32768, 2048, 2) == 2 * kernel
    assert dense / kernel == pytest.approx(16 * 512 / 520, rel=5e-3)  # 8 index bytes per 512 K/V bytes
    with pytest.raises(ValueError, match="method must be one of"):
        gpu.bytes_read("flash", 1, 32, 8, 128, 32768, 2048, 2)


def test_summary_bandwidth_and_peak():
    nbytes = {"dense_sdpa": 4_000_000, "gather_sdpa": 600_000, "kernel": 250_000}
    times = {"dense_sdpa": [2.0, 1.0, 3.0], "gather_sdpa": [0.5, 0.5, 0.4], "kernel": [0.1, 0.125, 0.2],
             "quest_select": [0.05]}
    summary = gpu.summarize(times, nbytes, peak=4.0)
    assert summary["median_ms"]["kernel"] == 0.125
    assert summary["speedup_vs_dense"]["kernel"] == pytest.approx(2.0 / 0.125)
    assert summary["gbps"]["kernel"] == pytest.approx(250_000 / 0.125e-3 / 1e9)  # 2 GB/s
    assert summary["peak_fraction"]["kernel"] == pytest.approx(0.5)
    assert "quest_select" not in summary["gbps"] and gpu.summarize(times, nbytes, None)["peak_fraction"] is None


def test_peak_bandwidth_lookup():
    assert gpu.peak_gbps("NVIDIA H100 80GB HBM3") == 3350.0
    assert gpu.peak_gbps("NVIDIA H100 PCIe") == 2000.0
    assert gpu.peak_gbps("NVIDIA H200") == 4800.0
    assert gpu.peak_gbps("Some Future GPU") is None and gpu.peak_gbps("Some Future GPU", 1234.0) == 1234.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU is present")
def test_gpu_benchmark_exits_with_a_clear_message_without_cuda(tmp_path):
    with pytest.raises(SystemExit) as exc:
        gpu.main(["--out", str(tmp_path / "x.json")])
    assert "sparse_attention_gpu: cannot run here" in str(exc.value.code) and "CUDA" in str(exc.value.code)
    assert not (tmp_path / "x.json").exists()


def test_cpu_benchmark_building_blocks():
    q, k, v, indices, kmin, kmax = cpu.make_step(6, 2, 64, 256, 32, 16, seed=1)
    assert indices.shape == (1, 2, 32) and bool((indices.diff(dim=-1) > 0).all())
    torch.testing.assert_close(cpu.dense_sdpa(q, k, v), dense_attention(q, k, v), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cpu.gather_sdpa(q, k, v, indices), sparse_attention(q, k, v, indices),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cpu.gather_sdpa(q, k, v, indices), sparse_decode_attention(q, k, v, indices),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cpu.quest_matmul_scores(q, kmin, kmax), quest_page_scores(q, kmin, kmax),
                               rtol=1e-5, atol=1e-5)
    chosen = cpu.quest_indices(q, kmin, kmax, 32, 16)
    assert torch.equal(chosen, cpu.quest_matmul_indices(q, kmin, kmax, 32, 16))
    assert chosen.shape == (1, 2, 32) and torch.equal(chosen % 16, torch.arange(16).repeat(2).expand(1, 2, 32))
    assert torch.equal(quest_page_bounds(k, 16)[0], kmin)
    with pytest.raises(SystemExit):
        cpu.parse_args(["--contexts", "4100"])  # not whole pages


def test_cpu_benchmark_end_to_end_tiny(tmp_path):
    out = tmp_path / "r.json"
    results = cpu.main(["--contexts", "512", "--shapes", "smollm2-135m", "--reps", "2", "--warmup", "0",
                        "--stream-mib", "8", "--out", str(out)])
    case = results["cases"][0]
    bw = results["read_bandwidth"]
    assert bw["bytes"] == 8 * 2**20 and bw["gbps"] == pytest.approx(bw["bytes"] / bw["median_s"] / 1e9)
    for m in cpu.METHODS:  # achieved bandwidth = bytes read / median time
        assert case["achieved_gbps"][m] == pytest.approx(case["bytes_read"][m] / (case["median_ms"][m] / 1e3) / 1e9)
    assert "Roofline" in out.with_suffix(".md").read_text()
    assert out.exists() and out.with_suffix(".md").exists()
    assert case["budget"] == 32 and case["speedup_bound"]["gather_sdpa"] == pytest.approx(16.0)
    assert case["speedup_bound"]["quest_matmul_gather_sdpa"] == pytest.approx(2 * 512 / (512 / 8 + 64))
    assert set(case["median_ms"]) == set(cpu.METHODS) and len(results["loadavg_before"]) == 3
