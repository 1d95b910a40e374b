"""The `workbench` command line. Each family registers its own subcommands in a `cli.py` of its package."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

# (module, function) pairs; each function takes the argparse subparsers object and adds its commands.
_REGISTRARS = [
    ("workbench.assets.cli", "register"),
    ("workbench.experiments.cli", "register"),
    ("workbench.experiments.sweep_cli", "register"),
]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module, fn in _REGISTRARS:
        getattr(importlib.import_module(module), fn)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Input errors: one clear line, no traceback.
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
