"""Kernel registry and backend choice: every op has a PyTorch reference and, optionally, a CuPy launcher.

`decide(...)` says which backend a call would use and why; `dispatch(...)` validates the arguments, decides
and runs. The backend is "auto" (the kernel when the tensors are on a CUDA device and CuPy sees it, else
the reference), "reference", or "cupy". The default can be set with the environment variable
WORKBENCH_KERNEL_BACKEND.

Rules, in order:
- backend "reference" always runs the reference.
- The tensors are on the CPU, or CuPy / a CUDA device is missing: "auto" runs the reference; "cupy" raises
  BackendUnavailableError (a forced kernel never silently becomes the reference, so tests comparing the
  two cannot compare the reference with itself).
- The kernel lacks what the call needs (a dtype, a head size, ...): the reference runs with a
  KernelFallbackWarning naming the reason, for "auto" and "cupy" alike. Never silently wrong, never a crash
  for an input the reference handles.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from workbench.kernels.cupy_module import cupy_unavailable_reason

BACKENDS: tuple[str, ...] = ("auto", "reference", "cupy")
ENV_VAR = "WORKBENCH_KERNEL_BACKEND"


class BackendUnavailableError(RuntimeError):
    """backend="cupy" was forced where the kernel cannot run (CPU tensors, no CuPy, no CUDA device)."""


class KernelFallbackWarning(UserWarning):
    """The kernel does not cover this call (dtype, shape, ...), so the PyTorch reference ran instead."""


@dataclass(frozen=True)
class KernelOp:
    """One op: `reference(*args, **kw)` defines the result; `launcher` computes the same on CUDA tensors.

    `validate(*args, **kw)` raises ValueError for bad input before any work; `supports(*args, **kw)` returns
    None when the launcher handles the call, else the reason it does not. The CUDA source is
    `kernels_cu/<source>.cu`; `instantiations` lists every kernel name expression the launcher may compile
    from it (the PTX test compiles exactly these).
    """

    name: str
    reference: Callable[..., Any]
    validate: Callable[..., None]
    launcher: Callable[..., Any] | None = None
    supports: Callable[..., str | None] = lambda *args, **kwargs: None
    source: str | None = None
    instantiations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Which backend runs a call ("reference" or "cupy") and why."""

    op: str
    backend: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_REGISTRY: dict[str, KernelOp] = {}


def register(op: KernelOp) -> KernelOp:
    """Add an op to the registry (a second registration under the same name replaces the first)."""
    _REGISTRY[op.name] = op
    return op


def get_op(name: str) -> KernelOp:
    if name not in _REGISTRY:
        raise ValueError(f"unknown kernel op {name!r}; registered ops: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def list_ops() -> list[str]:
    return sorted(_REGISTRY)


def resolve_backend(backend: str | None) -> str:
    """`backend`, or WORKBENCH_KERNEL_BACKEND when None, or "auto"; ValueError for anything not in BACKENDS."""
    source = "backend"
    if backend is None:
        backend, source = os.environ.get(ENV_VAR) or "auto", ENV_VAR
    if backend not in BACKENDS:
        raise ValueError(f"{source} must be one of {list(BACKENDS)}, got {backend!r}")
    return backend


def _on_cuda(args: tuple, kwargs: dict) -> bool:
    """True when any tensor argument lives on a CUDA device."""
    return any(isinstance(a, torch.Tensor) and a.is_cuda for a in (*args, *kwargs.values()))


def decide(name: str, *args: Any, backend: str | None = None, **kwargs: Any) -> Decision:
    """The backend `dispatch` would use for these (already valid) arguments; see the module docstring."""
    backend = resolve_backend(backend)
    op = get_op(name)
    if backend == "reference":
        return Decision(name, "reference", "backend='reference' was requested")
    if op.launcher is None:
        reason = f"op {name!r} has no CuPy kernel"
    elif not _on_cuda(args, kwargs):
        reason = "the tensors are on the CPU"
    else:
        reason = cupy_unavailable_reason()
    if reason is not None:
        if backend == "cupy":
            raise BackendUnavailableError(f"backend='cupy' cannot run {name!r}: {reason}")
        return Decision(name, "reference", reason)
    lacking = op.supports(*args, **kwargs)
    if lacking is not None:
        warnings.warn(f"{name}: the CuPy kernel does not cover this call ({lacking}); "
                      "running the PyTorch reference instead", KernelFallbackWarning, stacklevel=3)
        return Decision(name, "reference", lacking)
    return Decision(name, "cupy", "CUDA tensors and CuPy are available")


def dispatch(name: str, *args: Any, backend: str | None = None, **kwargs: Any) -> Any:
    """Validate the arguments of op `name`, choose the backend (`decide`) and run it."""
    resolve_backend(backend)
    op = get_op(name)
    op.validate(*args, **kwargs)
    decision = decide(name, *args, backend=backend, **kwargs)
    if decision.backend == "cupy":
        return op.launcher(*args, **kwargs)
    return op.reference(*args, **kwargs)
