"""Real sweeps: a local sweep killed mid-way (kill -9 of its whole process group) resumes without losing
or repeating a finished run, and a sweep runs on a Dask LocalCluster."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from workbench.experiments.sweep_grid import run_id

# Each run appends "pid time" to a log named by its parameters, sleeps, and records the scrap y = 10 a + len(b).
# The scrap is published with the raw mimetype so the kernel need not import workbench (keeps runs fast).
PARAMETERS = "a = 0\nb = 'x'\nlog_dir = ''\npause = 0.0"
BODY = (
    "import os, time\n"
    "with open(os.path.join(log_dir, f'a={a}-b={b}.log'), 'a') as f:\n"
    "    f.write(f'{os.getpid()} {time.time()}\\n')\n"
    "time.sleep(pause)\n"
    "from IPython.display import display\n"
    "display({'application/vnd.workbench.scrap+json': {'name': 'y', 'kind': 'value', 'value': 10 * a + len(b)},"
    " 'text/plain': 'y'}, raw=True)"
)


def _log_lines(logs: Path, a: int, b: str) -> list[str]:
    path = logs / f"a={a}-b={b}.log"
    return path.read_text().splitlines() if path.exists() else []


def _records(out: Path) -> dict[str, dict]:
    found = {}
    for path in (out / "records").glob("*.json"):
        found[path.stem] = json.loads(path.read_text())
    return found


def test_killed_sweep_resumes_without_losing_or_repeating_runs(notebook_factory, tmp_path):
    nb = notebook_factory("work.ipynb", PARAMETERS, BODY)
    logs, out = tmp_path / "logs", tmp_path / "sweep"
    logs.mkdir()
    combos = [(a, b) for a in (1, 2, 3) for b in ("x", "yy")]
    ids = {run_id({"log_dir": str(logs), "pause": 0.5, "a": a, "b": b}): (a, b) for a, b in combos}
    command = [sys.executable, "-m", "workbench.cli", "sweep", str(nb), "--grid", "a=1,2,3", "--grid", "b=x,yy",
               "-p", "log_dir", str(logs), "-p", "pause", "0.5", "--workers", "2", "--out", str(out),
               "--metrics", "y", "-q"]
    driver = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    try:  # wait until some runs are finished while others are in flight, then kill everything at once
        while True:
            done = _records(out) if (out / "records").exists() else {}
            started = [c for c in combos if _log_lines(logs, *c)]
            if len(done) >= 2 and len(started) > len(done):
                break
            assert driver.poll() is None, f"the sweep ended before it could be killed: {driver.stderr.read()}"
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = _records(out)
    in_flight = [c for c in combos if _log_lines(logs, *c) and c not in {ids[r] for r in before}]
    assert 2 <= len(before) < 6 and in_flight
    assert set(before) <= set(ids)

    resumed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"6 runs ({6 - len(before)} run now, {len(before)} reused from earlier): 6 ok, 0 failed" in resumed.stdout

    after = _records(out)
    assert set(after) == set(ids)  # every run has exactly one record
    for rid, record in before.items():  # runs finished before the kill: not executed again, record untouched
        assert after[rid] == record
        assert len(_log_lines(logs, *ids[rid])) == 1
    for rid, (a, b) in ids.items():
        assert after[rid]["status"] == "ok" and after[rid]["scraps"] == {"y": 10 * a + len(b)}
        assert after[rid]["parameters"] == {"log_dir": str(logs), "pause": 0.5, "a": a, "b": b}
        assert (out / after[rid]["output"]).is_file()
    for combo in in_flight:  # cut off by the kill, then run again to completion
        assert len(_log_lines(logs, *combo)) == 2

    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 6 and sorted(table["run_id"]) == sorted(ids)
    assert sorted(zip(table["a"], table["b"], table["y"])) == sorted((a, b, 10 * a + len(b)) for a, b in combos)
    assert len(pd.read_csv(out / "results.csv")) == 6
    assert (out / "plot_y.png").read_bytes().startswith(b"\x89PNG")
    assert not (out / "partial").exists() or not any((out / "partial").iterdir())  # no scratch left behind


def test_sweep_on_a_dask_local_cluster(notebook_factory, tmp_path):
    distributed = pytest.importorskip("distributed")
    from workbench.experiments.sweep import sweep

    nb = notebook_factory("work.ipynb", PARAMETERS, BODY)
    logs = tmp_path / "logs"
    logs.mkdir()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        result = sweep(nb, {"a": [1, 2]}, {"log_dir": str(logs), "b": "zz"}, out_dir=tmp_path / "sweep",
                       dask_address=cluster.scheduler_address, metrics=["y"], progress=False)
        assert result.ok and len(result.executed) == 2 and result.reused == []
        assert {r["pid"] for r in result.records} <= worker_pids  # the notebooks ran on the Dask workers
        assert [r["scraps"]["y"] for r in result.records] == [12, 22]
        assert result.table["y"].tolist() == [12, 22] and Path(result.plots["y"]).is_file()
        again = sweep(nb, {"a": [1, 2]}, {"log_dir": str(logs), "b": "zz"}, out_dir=tmp_path / "sweep",
                      dask_address=cluster.scheduler_address, progress=False)
    assert again.executed == [] and len(again.reused) == 2
    assert [len(_log_lines(logs, a, "zz")) for a in (1, 2)] == [1, 1]
    for record in result.records:
        assert (tmp_path / "sweep" / record["output"]).is_file()
