"""Pick the Jupyter kernel that runs notebooks: the current interpreter, so its installed packages are seen.

jupyter_client starts the kernelspec `python3` with this interpreter when the spec's command is a bare
`python`/`python3` (that is what ipykernel ships) or when no `python3` spec is installed at all (its
native-kernel fallback). A `python3` spec that names another interpreter's absolute path (e.g. one made
by `ipykernel install --user` from a different environment) would run notebooks without workbench; in
that case a kernelspec for `sys.executable` is installed for the user under its own name and used.
"""
from __future__ import annotations

import hashlib
import os
import sys

_GENERIC = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}


def _runs_this_interpreter(argv: list[str]) -> bool:
    if not argv:
        return False
    exe = argv[0]
    if exe in _GENERIC:
        return True  # jupyter_client substitutes sys.executable for these
    return os.path.normcase(os.path.abspath(exe)) == os.path.normcase(os.path.abspath(sys.executable))


def own_kernel_name() -> str:
    """Name of the kernelspec made for this interpreter when `python3` points elsewhere."""
    digest = hashlib.sha1(os.path.abspath(sys.executable).encode()).hexdigest()[:8]
    return f"workbench-py{sys.version_info[0]}{sys.version_info[1]}-{digest}"


def ensure_kernel(kernel_name: str | None = None) -> str:
    """Return a kernel name that exists; with None, one that runs the current interpreter.

    An explicit `kernel_name` must be installed (ValueError lists the installed ones otherwise).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    if kernel_name is not None:
        try:
            manager.get_kernel_spec(kernel_name)
        except NoSuchKernel:
            known = sorted(manager.find_kernel_specs())
            raise ValueError(f"kernel_name {kernel_name!r} is not installed; installed kernels: {known}") from None
        return kernel_name
    try:
        if _runs_this_interpreter(manager.get_kernel_spec("python3").argv):
            return "python3"
    except NoSuchKernel:
        pass  # only if ipykernel is missing; installing below needs it anyway
    name = own_kernel_name()
    try:
        if _runs_this_interpreter(manager.get_kernel_spec(name).argv):
            return name
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(user=True, kernel_name=name, display_name=f"Python {sys.version_info[0]}.{sys.version_info[1]} (workbench)")
    return name
