"""Shared plumbing of the host-emulation tests: build a driver around a kernels_cu/ source with g++ and
cuda_host_emulation.h into a shared library, and turn launcher arguments into ctypes values."""
from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent

# 64-bit atomics the emulation header lacks, for kernels that use them (one OS thread per CUDA thread, so
# they must really be atomic): std::atomic_ref on the same memory.
ATOMICS_64 = """
#include <atomic>
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long value) {
    std::atomic_ref<unsigned long long> ref(*address);
    ref.compare_exchange_strong(compare, value);
    return compare;
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return std::atomic_ref<unsigned long long>(*address).fetch_add(value);
}
"""


def build(folder: Path, name: str, driver: str) -> ctypes.CDLL:
    """Compile `driver` (C++ source) to lib<name>.so in `folder` and load it."""
    source = folder / f"{name}.cpp"
    source.write_text(driver)
    library = folder / f"lib{name}.so"
    cmd = ["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", f"-I{HERE}", str(source), "-o", str(library)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr[-5000:]}"
    return ctypes.CDLL(str(library))


def c_arg(arg):
    """A launcher argument (tensor or numpy scalar) as the ctypes value the driver function takes."""
    if isinstance(arg, torch.Tensor):
        return ctypes.c_void_p(arg.data_ptr())
    return {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float,
            np.float64: ctypes.c_double, np.uint64: ctypes.c_ulonglong}[type(arg)](arg)


def grid_args(grid) -> list[ctypes.c_uint]:
    return [ctypes.c_uint(n) for n in grid]
