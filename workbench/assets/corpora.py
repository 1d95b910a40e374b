"""load_corpus: a fetched corpus as a Hugging Face `datasets.Dataset`, read from the local parquet file.

Fully offline: the table is read with pyarrow from the asset folder and wrapped in memory (no hub, no
datasets cache). Schemas (one row per ...):

- udhr (article of one language version): language, code, iso6393, name, direction, stage, article
  (0 = preamble), heading, text. Options: languages=[codes] (BCP-47, udhr code or ISO 639-3), articles=[ints].
- bible-kjv (verse): book, chapter, verse, text. Options: books=[names].
- bible-parallel (verse of one version): version, language, book, chapter, verse, text. Options:
  versions=["kjv", "web", "rv1909"], books=[names], aligned=True (one row per verse in all chosen versions:
  book, chapter, verse, then one text column per version).
- english-prose (document): source, doc, text. Options: sources=["botchan", "lee"].
- cpython-stdlib (file): path, text.
- humaneval (problem): task_id, prompt, canonical_solution, test, entry_point. Options: task_ids=[...].
Every corpus also takes limit=N (the first N rows after filtering).
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workbench.assets.pipeline import path as asset_path
from workbench.assets.registry import Asset, get


def _options(asset: Asset) -> list[str]:
    return sorted([*asset.extra.get("filters", {}), *asset.extra.get("flags", []), "limit"])


def _check_options(asset: Asset, options: dict[str, Any]) -> None:
    allowed = _options(asset)
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(f"load_corpus({asset.name!r}): unknown option {key!r}; allowed: {allowed}")
        if key == "limit" and value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                                     or value < 0):
            raise ValueError(f"limit must be a non-negative int or None, got {value!r}")
        if key in asset.extra.get("flags", []) and not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, got {value!r}")


def _as_list(key: str, value: Any) -> list[Any]:
    if isinstance(value, (str, int)):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)) and value:
        return list(value)
    raise ValueError(f"{key} must be a value or a non-empty list of values, got {value!r}")


def filter_table(asset: Asset, table: pa.Table, options: dict[str, Any]) -> pa.Table:
    """Apply the filter options of `asset` (option -> columns it matches) to `table`."""
    for key, columns in asset.extra.get("filters", {}).items():
        if options.get(key) is None:
            continue
        wanted = _as_list(key, options[key])
        mask = None
        for column in columns:
            try:
                values = pa.array(wanted).cast(table.schema.field(column).type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                raise ValueError(f"{key}: {wanted} must be values of column {column!r} "
                                 f"({table.schema.field(column).type})") from None
            hit = pc.fill_null(pc.is_in(table[column], value_set=values), False)
            mask = hit if mask is None else pc.or_(mask, hit)
        known = set()
        for column in columns:
            known |= {str(v) for v in pc.unique(table[column]).to_pylist()}
        unknown = [w for w in wanted if str(w) not in known]
        if unknown:
            shown = sorted(known)[:20]
            raise ValueError(f"{key}: {unknown} not in corpus {asset.name!r}; values look like {shown}"
                             + (" ..." if len(known) > 20 else ""))
        table = table.filter(mask)
    return table


def _aligned(table: pa.Table, versions: list[str]) -> pa.Table:
    """One row per (book, chapter, verse) present in every version; a text column per version, in the
    canonical order of the first version."""
    keys = ["book", "chapter", "verse"]
    first = table.filter(pc.equal(table["version"], versions[0]))
    books = {b: i for i, b in enumerate(dict.fromkeys(first["book"].to_pylist()))}
    result = None
    for version in versions:
        part = table.filter(pc.equal(table["version"], version)).select(keys + ["text"])
        part = part.rename_columns(keys + [version])
        result = part if result is None else result.join(part, keys=keys, join_type="inner")
    rank = pa.array([books[b] for b in result["book"].to_pylist()], pa.int32())
    result = result.append_column("_book", rank)
    order = pc.sort_indices(result, [("_book", "ascending"), ("chapter", "ascending"), ("verse", "ascending")])
    return result.take(order).drop_columns(["_book"])


def load_corpus(name: str, **options: Any):
    """Load corpus asset `name` (fetched first if needed) as a `datasets.Dataset`; see the module docstring
    for each corpus' columns and options."""
    import datasets

    asset = get(name)
    if asset.kind != "corpus":
        raise ValueError(f"{name!r} is a {asset.kind} asset, not a corpus; corpora: "
                         f"{[a.name for a in _corpus_assets()]}")
    _check_options(asset, options)
    folder = asset_path(name)
    table = pq.read_table(folder / asset.extra["file"])
    table = filter_table(asset, table, options)
    if options.get("aligned"):
        versions = _as_list("versions", options["versions"]) if options.get("versions") else \
            list(dict.fromkeys(table["version"].to_pylist()))
        table = _aligned(table, versions)
    if options.get("limit") is not None:
        table = table.slice(0, options["limit"])
    return datasets.Dataset(table)


def _corpus_assets() -> list[Asset]:
    from workbench.assets.registry import list_assets

    return list_assets("corpus")
