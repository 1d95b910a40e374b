"""Run the selection kernels (top-k, Quest pages, TokenSelect votes) on the CPU through their real launchers.

`build_library` compiles a kernels_cu/ source with g++ and cuda_host_emulation.h, plus one C entry point per
kernel instantiation (the kernel's parameters, then grid x/y/z and block x). `patch_cupy` then replaces
CuPy's pieces in `workbench.kernels.cupy_module` (compiled kernel -> that entry point, DLPack -> identity,
stream -> no-op, device properties -> 132 SMs), so a launcher's own `_launch` (plan, buffers, argument
lists, grid) runs unchanged. What this cannot see: CuPy compilation, DLPack, streams and GPU timing.
"""
from __future__ import annotations

import contextlib
import ctypes
import re
import subprocess
from pathlib import Path

import numpy as np
import torch

from workbench.kernels import cupy_module

HERE = Path(__file__).resolve().parent
# 32-bit shared-memory atomics the emulation header lacks (one OS thread per CUDA thread: must be atomic).
ATOMICS_32 = """
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}
"""
C_TYPES = {"float": "float", "wb_half": "wb_half", "wb_bf16": "wb_bf16"}


def symbol(name_expression: str) -> str:
    """A C identifier for a kernel name expression: 'k<float, 64>' -> 'emu_k_float_64'."""
    return "emu_" + "_".join(re.findall(r"\w+", name_expression))


def _template_type(name_expression: str) -> str:
    found = re.search(r"<\s*(\w+)", name_expression)
    return found.group(1) if found else "float"


def driver_source(source: Path, kernels: dict[str, list[str]], prelude: str = "") -> str:
    """C++ entry points for `kernels` {name expression: parameter types, with T for the template type}."""
    lines = ['#include "cuda_host_emulation.h"', prelude, f'#include "{source}"']
    for name, types in kernels.items():
        params, call = [], []
        for i, kind in enumerate(types):
            if "*" in kind:
                params.append(f"void* a{i}")
                call.append(f"({kind})a{i}")
            else:
                params.append(f"{kind} a{i}")
                call.append(f"a{i}")
        lines.append(
            f'extern "C" void {symbol(name)}({", ".join(params)}, unsigned gx, unsigned gy, unsigned gz, unsigned bx) {{\n'
            f"    using T = {_template_type(name)};\n"
            f"    wb_launch(dim3{{gx, gy, gz}}, dim3{{bx, 1, 1}}, [&] {{ {name}({', '.join(call)}); }});\n}}")
    return "\n".join(lines) + "\n"


def build_library(folder: Path, source: Path, kernels: dict[str, list[str]], prelude: str = "") -> ctypes.CDLL:
    driver = folder / f"{source.stem}_driver.cpp"
    driver.write_text(driver_source(source, kernels, prelude))
    library = folder / f"lib{source.stem}_emulated.so"
    cmd = ["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", f"-I{HERE}", str(driver), "-o", str(library)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr[-5000:]}"
    return ctypes.CDLL(str(library))


def c_arg(arg):
    """A launcher argument (tensor or numpy scalar) as the ctypes value the entry point takes."""
    if isinstance(arg, torch.Tensor):
        return ctypes.c_void_p(arg.data_ptr())
    return {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float}[type(arg)](arg)


class _Properties:
    multi_processor_count = 132


def patch_cupy(monkeypatch, library: ctypes.CDLL, source: str, launched: list[str]) -> None:
    """Make `cupy_module.get_kernel(source, ...)` return emulated kernels; record each launch's name."""

    def get_kernel(op, dtype, names, name, device):
        assert op == source and name in names, (op, name, names)

        def kernel(grid, block, args):
            launched.append(name)
            getattr(library, symbol(name))(*map(c_arg, args), *(ctypes.c_uint(n) for n in (*grid, block[0])))
        return kernel

    monkeypatch.setattr(cupy_module, "get_kernel", get_kernel)
    monkeypatch.setattr(cupy_module, "to_cupy", lambda t: t)
    monkeypatch.setattr(cupy_module, "torch_stream", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: _Properties())
