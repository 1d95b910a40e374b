"""`workbench sweep`: run a notebook over a parameter grid (local processes or Dask), resumably."""
from __future__ import annotations

import argparse
import sys

from .cli import add_parameter_option, parameter_pairs
from .parameters import RawValue


def _grid(options: list[str]) -> dict[str, list[RawValue]]:
    from .sweep_grid import parse_grid_option

    if not options:
        raise ValueError("give at least one --grid KEY=V1,V2,...")
    grid: dict[str, list[RawValue]] = {}
    for option in options:
        key, values = parse_grid_option(option)
        if key in grid:
            raise ValueError(f"--grid {key} given twice; list all its values in one --grid {key}=V1,V2,...")
        grid[key] = [RawValue(v) for v in values]
    return grid


def _metrics(text: str | None) -> list[str]:
    if text is None:
        return []
    names = [m.strip() for m in text.split(",")]
    if any(not m for m in names):
        raise ValueError(f"--metrics expects comma-separated scrap names, got {text!r}")
    return names


def _sweep(args: argparse.Namespace) -> int:
    import warnings

    from .sweep import sweep

    with warnings.catch_warnings():  # missing metrics are reported below, one line each
        warnings.simplefilter("ignore", UserWarning)
        result = sweep(args.notebook, _grid(args.grid), parameter_pairs(args.parameters), out_dir=args.out,
                       workers=args.workers,
                       dask_address=args.dask, metrics=_metrics(args.metrics), runs_dir=args.runs_dir,
                       kernel_name=args.kernel, retry_failed=args.retry_failed, dask_timeout=args.dask_timeout,
                       progress=not args.quiet)
    print(f"{len(result.records)} runs ({len(result.executed)} run now, {len(result.reused)} reused from "
          f"earlier): {len(result.records) - len(result.failed)} ok, {len(result.failed)} failed")
    print(f"sweep folder: {result.out_dir}")
    print(f"table: {result.parquet_path} and {result.csv_path}")
    for metric, path in result.plots.items():
        print(f"plot {metric}: {path}")
    for metric in result.missing_metrics:
        print(f"metric {metric!r}: no successful run recorded it as a number; nothing plotted", file=sys.stderr)
    for record in result.failed:
        print(f"failed {record['run_id']} {record['parameters']}: {record['error']}", file=sys.stderr)
    return 0 if result.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `sweep` to the `workbench` command."""
    p = subparsers.add_parser(
        "sweep", help="run a notebook over a grid of parameters (parallel, resumable) and tabulate its scraps",
        description="Run NOTEBOOK once per combination of the --grid values (plus the -p values) through "
                    "papermill, in parallel local processes or on a Dask cluster (--dask). Rerunning the same "
                    "command resumes: finished runs are kept, the others run. Writes the sweep folder with "
                    "results.parquet, results.csv and plot_<metric>.png.")
    p.add_argument("notebook", help="the .ipynb to run (must have a cell tagged 'parameters')")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="values of one parameter to sweep (repeatable; the runs are all combinations); values "
                        "are read as YAML/JSON literals unless the default is a string")
    add_parameter_option(p)  # parameters fixed for every run
    p.add_argument("--workers", type=int, default=None, help="local runs at a time (default: CPU count)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run on this Dask scheduler (e.g. tcp://host:8786) instead of local processes")
    p.add_argument("--dask-timeout", type=float, default=5.0, help="seconds to wait for the scheduler (default 5)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="sweep folder (default: RUNS_DIR/sweeps/<notebook>-<grid hash>); resumes if it exists")
    p.add_argument("--runs-dir", default="runs", help="base folder for the default sweep folder (default: runs)")
    p.add_argument("--metrics", default=None, metavar="M1,M2", help="scraps to plot against the first grid key")
    p.add_argument("--retry-failed", action="store_true", help="also rerun runs recorded as failed")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: one running this Python)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)
