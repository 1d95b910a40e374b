"""`workbench assets list|fetch|verify|path` through the top-level CLI."""
from __future__ import annotations

import pytest

from workbench.cli import main


def test_list_shows_every_asset_and_cache_state(fake_tok, wb_home, capsys):
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    header, *lines = out.strip().splitlines()
    assert header.split() == ["name", "kind", "format", "cached", "size"]
    rows = {line.split()[0]: line.split() for line in lines if not line.startswith("cache:")}
    assert rows["smollm2-135m"][1:4] == ["model", "hf", "no"]
    assert rows["fake-tok"][3] == "no"
    main(["assets", "fetch", "fake-tok"])
    capsys.readouterr()
    main(["assets", "list", "--kind", "tokenizer"])
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["fake-tok"][3] == "yes" and "udhr" not in rows


def test_fetch_path_verify(fake_tok, wb_home, capsys):
    assert main(["assets", "path", "fake-tok", "--no-fetch"]) == 2
    assert "not fetched" in capsys.readouterr().err
    assert main(["assets", "fetch", "fake-tok"]) == 0
    assert str(wb_home / "assets" / "fake-tok") in capsys.readouterr().out
    assert main(["assets", "path", "fake-tok"]) == 0
    assert capsys.readouterr().out.strip() == str(wb_home / "assets" / "fake-tok")
    assert main(["assets", "verify"]) == 0
    assert "fake-tok: ok" in capsys.readouterr().out
    (wb_home / "assets" / "fake-tok" / "tokenizer.json").write_bytes(b"x")
    assert main(["assets", "verify", "fake-tok"]) == 1
    assert "DAMAGED" in capsys.readouterr().out


def test_errors_are_one_line(wb_home, capsys):
    assert main(["assets", "fetch", "no-such-asset"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown asset 'no-such-asset'" in err and "smollm2-135m" in err
    assert main(["assets", "fetch"]) == 2
    assert "--all" in capsys.readouterr().err
    assert not (wb_home / "assets").exists()


def test_fetch_needs_a_subcommand():
    with pytest.raises(SystemExit):
        main(["assets"])
