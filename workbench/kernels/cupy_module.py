"""CuPy plumbing for the kernels: availability, NVRTC compilation with a cache, DLPack hand-off, streams.

Sources live in `kernels_cu/` (found with `workbench.resources.resource_dir`), one op family per `.cu`
file named after the op. They are compiled with `cupy.RawModule` (NVRTC) once per (op, dtype, compute
capability) for every device that uses them; CuPy also keeps the compiled binary in its on-disk cache.
Tensors cross from torch to CuPy without a copy through DLPack, and every launch goes on torch's current
CUDA stream, so kernels order correctly with the surrounding PyTorch work.
"""
from __future__ import annotations

import contextlib
import functools
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from workbench.resources import resource_dir

# NVRTC options shared by every module. No include path: kernel_source pastes the shared headers in.
COMPILE_OPTIONS: tuple[str, ...] = ("-std=c++17",)

_modules: dict[tuple[str, str, str, int], Any] = {}
_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _import_cupy() -> tuple[Any, str | None]:
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc}); install workbench[gpu]"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy finds no usable CUDA device ({type(exc).__name__}: {exc})"
    if count == 0:
        return None, "CuPy finds no CUDA device"
    return cupy, None


def cupy_unavailable_reason() -> str | None:
    """Why the CuPy backend cannot run here, or None when it can (CuPy imports and sees a CUDA device)."""
    return _import_cupy()[1]


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return cupy_unavailable_reason() is None


def _cupy() -> Any:
    cupy, reason = _import_cupy()
    if cupy is None:
        raise RuntimeError(reason)
    return cupy


def source_path(op: str) -> Path:
    """The `.cu` file of an op family: `kernels_cu/<op>.cu`."""
    path = resource_dir("kernels_cu") / f"{op}.cu"
    if not path.is_file():
        raise FileNotFoundError(f"no CUDA source for op {op!r}: {path} is missing")
    return path


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([\w.]+\.cuh)"[ \t]*$', flags=re.MULTILINE)


def kernel_source(op: str) -> str:
    """The source NVRTC compiles for `op`: `kernels_cu/<op>.cu` with each `#include "<name>.cuh"` line replaced
    by that header from kernels_cu/ (headers include nothing themselves; any other #include is an error)."""
    source = source_path(op)
    text = source.read_text()

    def paste(match: re.Match) -> str:
        header = source.parent / match.group(1)
        if not header.is_file():
            raise FileNotFoundError(f"{source.name} includes {match.group(1)!r}, which kernels_cu/ lacks")
        body = header.read_text()
        if re.search(r"^\s*#\s*include\b", body, flags=re.MULTILINE):
            raise ValueError(f"kernels_cu/{match.group(1)} includes another file; shared headers must include nothing")
        return body

    text = _INCLUDE.sub(paste, text)
    if re.search(r"^\s*#\s*include\b", text, flags=re.MULTILINE):
        raise ValueError(f"{source.name} has an #include other than a kernels_cu/*.cuh header")
    return text


def dtype_name(dtype: torch.dtype) -> str:
    """'float32', 'float16', 'bfloat16', ...: the dtype part of a cache key."""
    return str(dtype).removeprefix("torch.")


def compute_capability(device: torch.device) -> str:
    """The device's compute capability as NVRTC spells it, e.g. '90' for an H100."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}{minor}"


def get_kernel(op: str, dtype: torch.dtype, name_expressions: Sequence[str], name: str,
               device: torch.device) -> Any:
    """The compiled kernel `name` (one of `name_expressions`) of op `op` for `dtype` on `device`.

    The module holding all of `name_expressions` is compiled once per (op, dtype, compute capability) and
    loaded once per device; later calls are a dictionary look-up.
    """
    if name not in name_expressions:
        raise ValueError(f"kernel {name!r} is not among the name expressions of {op!r}: {list(name_expressions)}")
    key = (op, dtype_name(dtype), compute_capability(device), device.index or 0)
    module = _modules.get(key)
    if module is None:
        with _lock:
            module = _modules.get(key)
            if module is None:
                cupy = _cupy()
                with cupy.cuda.Device(key[3]):
                    module = cupy.RawModule(code=kernel_source(op), options=COMPILE_OPTIONS,
                                            name_expressions=list(name_expressions))
                    module.compile()  # compile now, so an error surfaces here and not mid-launch
                _modules[key] = module
    return module.get_function(name)


def compiled_modules() -> list[tuple[str, str, str, int]]:
    """Keys (op, dtype, compute capability, device index) of the modules compiled in this process."""
    return sorted(_modules)


def clear_cache() -> None:
    """Forget the compiled modules of this process (CuPy's on-disk cache is left alone)."""
    with _lock:
        _modules.clear()


@contextlib.contextmanager
def torch_stream(device: torch.device) -> Iterator[Any]:
    """Make torch's current CUDA stream on `device` CuPy's current stream (and `device` current)."""
    cupy = _cupy()
    stream = torch.cuda.current_stream(device)
    with cupy.cuda.Device(device.index or 0):
        if hasattr(cupy.cuda.Stream, "from_external"):  # CuPy >= 14
            external = cupy.cuda.Stream.from_external(stream)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                external = cupy.cuda.ExternalStream(stream.cuda_stream, device.index or 0)
        with external:
            yield external


def to_cupy(tensor: torch.Tensor) -> Any:
    """A CuPy view of a CUDA tensor (no copy, via DLPack). bfloat16, which CuPy lacks, is viewed as int16.

    Call inside `torch_stream(...)` so that DLPack's stream hand-off sees one stream and adds no sync.
    """
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return _cupy().from_dlpack(tensor)


def to_torch(array: Any) -> torch.Tensor:
    """A torch view of a CuPy array (no copy, via DLPack)."""
    return torch.from_dlpack(array)
