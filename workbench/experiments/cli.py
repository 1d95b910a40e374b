"""`workbench run` and `workbench tour`: the command-line face of the papermill runner."""
from __future__ import annotations

import argparse
import json
import sys

from .parameters import RawValue


def add_parameter_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), dest="parameters",
        help="set a notebook parameter (repeatable); VALUE is read as a YAML/JSON literal (8, 0.5, true, "
             "[1, 2]) unless the parameter's default is a string, else taken as text",
    )


def parameter_pairs(pairs: list[list[str]]) -> dict[str, RawValue]:
    """`-p KEY VALUE` pairs -> {key: RawValue}; a key given twice is an error."""
    out: dict[str, RawValue] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"-p {key} given twice")
        out[key] = RawValue(value)
    return out


def _print_scraps(scraps: dict) -> None:
    width = max((len(k) for k in scraps), default=0)
    for key, value in scraps.items():
        plain = isinstance(value, str) and value == value.strip() and "\n" not in value
        text = value if plain else json.dumps(value, ensure_ascii=False)  # quotes show edge spaces, \n
        if len(text) > 200:
            text = text[:197] + "..."
        print(f"  {key:<{width}}  {text}")


def _run(args: argparse.Namespace) -> int:
    from .runner import run_notebook

    result = run_notebook(args.notebook, parameter_pairs(args.parameters), runs_dir=args.runs_dir, name=args.name,
                          kernel_name=args.kernel, progress=not args.quiet)
    print(f"{result.status} in {result.seconds:.1f} s: {result.output_path}")
    _print_scraps(result.scraps)
    if result.figures:
        print(f"  figures: {', '.join(result.figures)}")
    if not result.ok:
        print(f"workbench run: notebook failed: {result.error}", file=sys.stderr)
        return 1
    return 0


def _tour(args: argparse.Namespace) -> int:
    from .tour import run_tour

    tour = run_tour(args.notebooks, runs_dir=args.runs_dir, out_dir=args.out,
                    parameters=parameter_pairs(args.parameters), kernel_name=args.kernel, progress=not args.quiet)
    for r in tour.results:
        print(f"{r.status:6} {r.seconds:7.1f} s  {r.notebook}" + (f"  ({r.error})" if r.error else ""))
    print(f"tour index written to {tour.index_path}")
    if not tour.ok:
        print(f"workbench tour: {len(tour.failed)} of {len(tour.results)} notebooks failed", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `run` and `tour` to the `workbench` command."""
    run = subparsers.add_parser("run", help="execute one parameterized notebook through papermill",
                                description="Execute NOTEBOOK with papermill into RUNS_DIR/<stem>/ and print "
                                            "the output path and the scraps it recorded.")
    run.add_argument("notebook", help="the .ipynb to execute (must have a cell tagged 'parameters')")
    add_parameter_option(run)
    run.add_argument("--runs-dir", default="runs", help="folder for output notebooks (default: runs)")
    run.add_argument("--name", default=None, help="output file name without .ipynb (default: time + parameter hash)")
    run.add_argument("--kernel", default=None, help="Jupyter kernel name (default: one running this Python)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    tour = subparsers.add_parser("tour", help="run every notebook and write an HTML index of their results",
                                 description="Run each notebook in NOTEBOOKS (sorted by name) and write "
                                             "OUT/index.html with their scraps, figures, status and timings.")
    tour.add_argument("--notebooks", default="notebooks", help="folder of notebooks (default: notebooks)")
    tour.add_argument("--runs-dir", default="runs", help="folder for output notebooks (default: runs)")
    tour.add_argument("--out", default=None, help="folder for index.html (default: the runs folder)")
    add_parameter_option(tour)
    tour.add_argument("--kernel", default=None, help="Jupyter kernel name (default: one running this Python)")
    tour.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    tour.set_defaults(func=_tour)
