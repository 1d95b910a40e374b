"""Validation of load-time options (dtype, device), done before any work starts."""
from __future__ import annotations

import re

import torch

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map "float32" | "float16" | "bfloat16" (or the torch dtype itself) to a torch dtype; else ValueError."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")


def parse_device(device: str | torch.device) -> torch.device:
    """Accept "cpu", "cuda" or "cuda:N" (N an existing GPU); else ValueError naming what is allowed."""
    text = str(device)
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {text!r} was requested but no CUDA GPU is available here; use device='cpu'")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"device {text!r} does not exist: {torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
            f"cuda:{torch.cuda.device_count() - 1})"
        )
    return torch.device("cuda", index)
