"""Local sweep workers: `python -m workbench.experiments.sweep_worker`, one task per line on stdin.

The local engine starts `workers` of these fresh interpreters (so a sweep works the same from a
script, a notebook or the command line, and runs share no Python state) and feeds each one run at a
time: a task is one JSON line, answered by the run's record as one JSON line on stdout. Each run gets
its own kernel (papermill starts one per notebook); `execute_run` stores the output notebook and then
the record in the sweep folder before answering, so a record never depends on the driver surviving.

A watchdog ends the worker when its driver dies (e.g. kill -9), so a killed sweep leaves no runs behind
that could race the restarted one; the run's kernel then ends too (ipykernel watches its parent the
same way).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time


def _watch_parent(interval: float = 0.5) -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="sweep-parent-watch", daemon=True).start()


def serve(tasks, answers) -> None:
    """Answer each task line of `tasks` with the run's record as one line on `answers`."""
    from .sweep import execute_run
    from .sweep_grid import Run

    for line in tasks:
        if not line.strip():
            continue
        task = json.loads(line)
        run = Run(task["run_id"], task["parameters"])
        record = execute_run(task["notebook"], run, task["sweep_dir"], task.get("kernel_name"), task.get("timeout"))
        answers.write(json.dumps(record) + "\n")
        answers.flush()


def main() -> int:
    _watch_parent()
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything else printed goes to the log, not into the answers
    serve(sys.stdin, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
