"""`workbench assets list|fetch|verify|path`: the asset registry from the command line."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from workbench.assets import cache
from workbench.assets.fetchers import DownloadError
from workbench.assets.pipeline import fetch, is_cached, path, verify
from workbench.assets.registry import get, list_assets


def _size(name: str) -> str:
    if is_cached(name):
        return f"{cache.folder_size(cache.ready_dir(name)) / 1e6:,.1f} MB"
    mb = get(name).download_mb
    return f"~{mb:,.1f} MB dl" if mb else "-"


def cmd_list(args: argparse.Namespace) -> int:
    rows = [("name", "kind", "format", "cached", "size")]
    for asset in list_assets(args.kind):
        rows.append((asset.name, asset.kind, asset.format, "yes" if is_cached(asset.name) else "no",
                     _size(asset.name)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"cache: {cache.assets_root()}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    names = [a.name for a in list_assets()] if args.all else args.names
    if not names:
        raise ValueError("name: give one or more asset names, or --all")
    for name in names:  # all names checked before any work starts
        get(name)
    for name in names:
        start = time.perf_counter()
        try:
            folder = fetch(name, force=args.force)
        except DownloadError as exc:
            print(f"workbench assets fetch: error: {name}: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: {folder} ({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    names = args.names or [a.name for a in list_assets() if is_cached(a.name)]
    for name in names:
        get(name)
    failed = 0
    for name in names:
        result = verify(name)
        print(result)
        failed += result.status == "damaged" or (bool(args.names) and result.status == "missing")
    if not names:
        print(f"no fetched assets in {cache.assets_root()}")
    return 1 if failed else 0


def cmd_path(args: argparse.Namespace) -> int:
    try:
        print(path(args.name, fetch=not args.no_fetch))
    except DownloadError as exc:
        print(f"workbench assets path: error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add `workbench assets ...` to the top-level CLI."""
    parser = subparsers.add_parser("assets", help="named models, tokenizers and corpora (fetch, verify, path)",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="assets_command", required=True)

    p = sub.add_parser("list", help="the registry: name, kind, format, cached?, size")
    p.add_argument("--kind", choices=["model", "tokenizer", "corpus"], default=None)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("fetch", help="download, check, convert and cache assets (a no-op when cached)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every asset in the registry")
    p.add_argument("--force", action="store_true", help="fetch again even if cached (replaces the folder)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("verify", help="re-hash cached assets (default: every fetched one)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("path", help="print an asset's ready folder (fetching it first if needed)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--no-fetch", action="store_true", help="fail instead of fetching a missing asset")
    p.set_defaults(func=cmd_path)
