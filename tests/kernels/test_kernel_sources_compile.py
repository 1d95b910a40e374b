"""Every CUDA source in kernels_cu/ compiles, with the instantiations the launchers use at run time.

nvcc --ptx runs wherever nvcc is installed (the CI machines have it, no GPU needed); the NVRTC check runs
where CuPy and its NVRTC library are installed (also no GPU needed), with the options CuPy's RawModule
passes. Each is skipped, with the reason, where its compiler is absent.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from workbench.kernels import get_op, list_ops
from workbench.kernels import cupy_module
from workbench.kernels.cupy_module import COMPILE_OPTIONS, kernel_source
from workbench.resources import resource_dir

SOURCES = sorted(resource_dir("kernels_cu").glob("*.cu"))
ARCHS = ["80", "90"]


def _instantiations(source: Path) -> list[str]:
    return [name for op in list_ops() if get_op(op).source == source.stem for name in get_op(op).instantiations]


def _find_nvcc() -> str | None:
    candidates = [shutil.which("nvcc"), "/usr/local/bin/nvcc"]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(str(Path(home) / "bin" / "nvcc"))
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


def test_there_are_sources_and_each_op_with_a_kernel_has_one():
    assert SOURCES, "kernels_cu/ holds no .cu file"
    for op in list_ops():
        if get_op(op).launcher is not None:
            assert get_op(op).source in {s.stem for s in SOURCES}
            assert get_op(op).instantiations, f"{op} lists no kernel instantiations"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_compiled_text_includes_no_headers(source):
    # NVRTC compiles them with no include path: a host or toolkit header would fail on some machines, and the
    # shared kernels_cu/*.cuh headers are pasted in by kernel_source.
    text = kernel_source(source.stem)
    assert [line for line in text.splitlines() if re.match(r"\s*#\s*include\b", line)] == []
    for header in re.findall(r'#include "([\w.]+)"', source.read_text()):
        assert (resource_dir("kernels_cu") / header).read_text() in text


def test_kernel_source_rejects_missing_and_foreign_includes(tmp_path, monkeypatch):
    (tmp_path / "a.cu").write_text('#include "missing.cuh"\n')
    (tmp_path / "b.cu").write_text("#include <cuda_fp16.h>\n")
    (tmp_path / "nested.cuh").write_text('#include "other.cuh"\n')
    (tmp_path / "c.cu").write_text('#include "nested.cuh"\n')
    monkeypatch.setattr(cupy_module, "resource_dir", lambda name: tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.cuh"):
        cupy_module.kernel_source("a")
    with pytest.raises(ValueError, match="b.cu has an #include"):
        cupy_module.kernel_source("b")
    with pytest.raises(ValueError, match="nested.cuh includes another file"):
        cupy_module.kernel_source("c")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_nvcc_compiles_to_ptx(source, arch, tmp_path):
    nvcc = _find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, /usr/local/bin, $CUDA_HOME/bin): the PTX compile check needs it")
    names = _instantiations(source)
    # Taking each kernel's address instantiates exactly the templates that NVRTC gets as name expressions.
    keep = "".join(f"    (void*)&{name},\n" for name in names)
    wrapper = tmp_path / f"{source.stem}_instances.cu"  # exactly the text NVRTC gets, plus the instances
    wrapper.write_text(kernel_source(source.stem) + "\n" + (f"void* wb_keep[] = {{\n{keep}}};\n" if names else ""))
    ptx = tmp_path / f"{source.stem}.ptx"
    cmd = [nvcc, "--ptx", f"-arch=sm_{arch}", *COMPILE_OPTIONS, "-Werror", "all-warnings", str(wrapper), "-o", str(ptx)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    entries = re.findall(r"^\.(?:visible )?\.entry\s+(\w+)", ptx.read_text(), flags=re.MULTILINE)
    assert len(entries) >= len(names) and len(set(entries)) == len(entries)


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # CuPy missing, or its NVRTC library missing
        pytest.skip(f"CuPy's NVRTC is not usable here ({type(exc).__name__}: {exc})")
    return nvrtc


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_nvrtc_compiles_with_the_runtime_options(source, arch):
    nvrtc = _nvrtc()
    names = _instantiations(source)
    # What cupy.RawModule adds to our options: the architecture and device-by-default.
    options = (*COMPILE_OPTIONS, f"--gpu-architecture=compute_{arch}", "--device-as-default-execution-space")
    program = nvrtc.createProgram(kernel_source(source.stem), source.name, (), ())
    try:
        for name in names:
            nvrtc.addNameExpression(program, name)
        try:
            nvrtc.compileProgram(program, options)
        except nvrtc.NVRTCError as exc:
            pytest.fail(f"NVRTC failed on {source.name} with {options}: {exc}\n{nvrtc.getProgramLog(program)}")
        lowered = [nvrtc.getLoweredName(program, name) for name in names]
        assert len(set(lowered)) == len(names)
        ptx = nvrtc.getPTX(program)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        assert all(f".entry {mangled}" in ptx for mangled in lowered)
    finally:
        nvrtc.destroyProgram(program)
