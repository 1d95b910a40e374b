"""Find the non-Python files that ship with workbench: CUDA sources and widget front-ends.

In a source checkout they live at the top of the repository (`kernels_cu/`, `widgets/`); in an installed
wheel they are the data packages `workbench/_kernels_cu` and `workbench/_widgets` (see setup.py).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_NAMES = {"kernels_cu": "_kernels_cu", "widgets": "_widgets"}


def resource_dir(name: str) -> Path:
    """Return the folder holding `name` ("kernels_cu" or "widgets") in a checkout or an installed wheel."""
    if name not in _NAMES:
        raise ValueError(f"resource_dir: name must be one of {sorted(_NAMES)}, got {name!r}")
    for candidate in (_PACKAGE_DIR.parent / name, _PACKAGE_DIR / _NAMES[name]):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"workbench resource folder {name!r} not found next to {_PACKAGE_DIR}")
