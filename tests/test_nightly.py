"""Nightly operation, end to end with the real model: resume after kill -9, Dask, serve."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.e2e

CALLS = ["call_03_threat", "call_04_insult", "call_06_impersonation", "call_08_inducement"]


def make_inbox(root: Path, calls: list[str]) -> Path:
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    for call in calls:
        [src] = SAMPLES.glob(f"inbox/{call}.*")
        shutil.copy(src, inbox / src.name)
    return inbox


def findings(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT finding_id, call_id, rule_id, category, match FROM findings ORDER BY 1"
        ).fetchall()


def turns_per_call(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT call_id, count(*), string_agg(speaker, ',' ORDER BY idx) FROM utterances "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, cli):
    """Kill -9 an audit after its first stored call, then run it again."""
    work = tmp_path_factory.mktemp("resume")
    inbox = make_inbox(work, CALLS)
    db = work / "a.duckdb"
    proc = subprocess.Popen(
        [*cli, "audit", str(inbox), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the kill takes Prefect's server subprocess too
    )
    seen = []
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        seen.append(line)
        if "[1/4]" in line or time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    rerun = subprocess.run(
        [*cli, "audit", str(inbox), "--db", str(db)], capture_output=True, text=True, timeout=900
    )
    return {"inbox": inbox, "db": db, "first": "".join(seen), "rerun": rerun}


def test_rerun_after_kill_completes_without_duplicates(resumed):
    assert "[1/4]" in resumed["first"], resumed["first"][-2000:]
    rerun = resumed["rerun"]
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    # the call stored before the kill is not redone; the rest are
    skipped = int(rerun.stdout.split("skipped, already audited: ")[1].split(";")[0])
    assert skipped >= 1
    with duckdb.connect(str(resumed["db"]), read_only=True) as con:
        calls = con.execute("SELECT call_id, status FROM calls ORDER BY 1").fetchall()
        # every call's turns are numbered 0..n-1 with none missing or doubled
        gaps = con.execute(
            "SELECT call_id FROM utterances GROUP BY 1 "
            "HAVING count(*) <> max(idx) + 1 OR count(DISTINCT idx) <> count(*)"
        ).fetchall()
        orphans = con.execute(
            "SELECT count(*) FROM utterances WHERE call_id NOT IN (SELECT call_id FROM calls)"
        ).fetchone()[0]
    assert calls == [(c, "ok") for c in CALLS]
    assert gaps == [] and orphans == 0


def test_dask_cluster_gives_the_same_findings_as_a_sequential_run(resumed, cli, tmp_path):
    db = tmp_path / "dask.duckdb"
    proc = subprocess.run(
        [*cli, "audit", str(resumed["inbox"]), "--db", str(db), "--processes", "2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    pids = set(re.findall(r"worker pid (\d+)", proc.stdout + proc.stderr))
    assert len(pids) == 2, proc.stderr[-3000:]  # two worker processes shared the calls
    # The resumed run must hold exactly what a clean run holds: same findings, same
    # number of turns per call (a duplicated or half-written call would differ).
    assert findings(db) == findings(resumed["db"])
    assert len(findings(db)) >= 4
    assert turns_per_call(db) == turns_per_call(resumed["db"])


@dataclass
class DaskCluster:
    address: str
    worker_pids: set[int]  # the worker processes, as the scheduler knows them
    logs: list[Path]  # each worker's stdout and stderr


def _stop_session(proc: subprocess.Popen) -> None:
    """SIGTERM to the process's whole session (a nanny and its worker), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            pass


@contextmanager
def dask_cluster(root: Path, workers: int, **env: str) -> Iterator[DaskCluster]:
    """A real ``dask scheduler`` on 127.0.0.1 and ``workers`` ``dask worker`` processes of
    one thread each, from this virtualenv, started apart from the command as on a real
    cluster: sessions of their own, no PREFECT_API_URL, a PREFECT_HOME of their own, and
    ``env`` on top.  Every one is gone on the way out, also when the test failed."""
    from distributed import Client

    dask = Path(sys.executable).with_name("dask")
    home = root / "dask-prefect-home"  # also marks the cluster's processes (_processes_with)
    environ = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    environ.update(
        # The code under test, wherever pytest runs; offline, as on a production worker.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), environ.get("PYTHONPATH")) if p),
        HF_HUB_OFFLINE="1",
        PREFECT_HOME=str(home),
        **env,
    )
    started: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> Path:
        log = root / f"{name}.log"
        with open(log, "wb") as out:  # the child keeps its own copy of the handle
            started.append(
                subprocess.Popen(
                    [str(dask), *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environ,
                    cwd=root,
                    start_new_session=True,
                )
            )
        return log

    try:
        port = str(free_port())
        address = f"tcp://127.0.0.1:{port}"
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard")
        logs = [
            start(
                f"worker-{i}",
                "worker",
                address,
                *("--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1"),
                *("--memory-limit", "0", "--no-dashboard", "--name", f"worker-{i}"),
            )
            for i in range(workers)
        ]
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
            pids = set(client.run(os.getpid).values())  # the worker processes, not nannies
        yield DaskCluster(address, pids, logs)
    finally:
        for proc in reversed(started):
            _stop_session(proc)
        deadline = time.monotonic() + 10
        while _processes_with(str(home)) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _processes_with(str(home))
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == [], f"Dask processes outlived the test: {left}"


def test_an_external_dask_cluster_gives_the_same_findings_as_a_sequential_run(
    resumed, cli, tmp_path
):
    """``--dask-address``: each call is audited by one of two worker processes the
    command did not start and that know nothing of its Prefect server, and the result
    is what the sequential run stored."""
    db, home = tmp_path / "external.duckdb", tmp_path / "prefect-home"
    with dask_cluster(tmp_path, workers=2) as cluster:
        proc = subprocess.run(
            [*cli, "audit", str(resumed["inbox"]), "--db", str(db)]
            + ["--dask-address", cluster.address],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "PREFECT_HOME": str(home)},
        )
        worker_output = [log.read_text(errors="replace") for log in cluster.logs]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # Each worker logged its pid for the calls it audited: both took part, and no call
    # ran anywhere else (the command's own process, a cluster of its own).
    pids = [{int(p) for p in re.findall(r"worker pid (\d+)", out)} for out in worker_output]
    assert all(pids) and set().union(*pids) == cluster.worker_pids, (pids, cluster.worker_pids)
    assert len(cluster.worker_pids) == 2
    # The workers reported every task run to the command's Prefect server (read from its
    # database, the server is gone): they found it without PREFECT_API_URL of their own.
    with sqlite3.connect(home / "prefect.db") as con:
        tasks = con.execute("SELECT name, state_type FROM task_run ORDER BY name").fetchall()
    assert tasks == [(f"audit {call}", "COMPLETED") for call in CALLS]
    assert findings(db) == findings(resumed["db"])
    assert turns_per_call(db) == turns_per_call(resumed["db"])


def test_dask_workers_that_cannot_reach_the_prefect_api_stop_the_run_before_any_call(cli, tmp_path):
    """A worker elsewhere cannot reach the temporary Prefect server on 127.0.0.1 (here a
    worker whose HTTP goes through a proxy that is not there): one line, exit 1, no call
    audited and nothing left running, instead of a batch of calls that all fail."""
    inbox = make_inbox(tmp_path, CALLS[:1])
    db, home = tmp_path / "unreached.duckdb", tmp_path / "prefect-home-unreached"
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    with dask_cluster(
        tmp_path, workers=1, http_proxy=dead_proxy, HTTP_PROXY=dead_proxy, no_proxy="", NO_PROXY=""
    ) as cluster:
        started = time.monotonic()
        proc = _start_audit(cli, inbox, db, home, "--dask-address", cluster.address)
        out, _ = proc.communicate(timeout=300)
        took = time.monotonic() - started
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    [line] = [x for x in out.splitlines() if "error:" in x]
    assert "1 of 1 Dask workers cannot reach the Prefect API at http://127.0.0.1:" in line
    assert "listens on 127.0.0.1 only" in line and "PREFECT_API_URL" in line
    assert took < 120, took
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM calls").fetchone() == (0,)
    time.sleep(5)
    assert _processes_with(str(home)) == []  # the temporary server went with the command


def test_an_unreachable_dask_scheduler_is_one_line_and_exit_1_in_seconds(cli, tmp_path):
    inbox = make_inbox(tmp_path, CALLS[:1])
    db = tmp_path / "never.duckdb"
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    proc = subprocess.run(
        [*cli, "audit", str(inbox), "--db", str(db), "--dask-address", address],
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"callaudit: error: cannot reach the Dask scheduler at {address}: "
        f"Timed out trying to connect to {address} after 10 s"
    ]
    assert took < 25 and not db.exists()  # Dask alone waits 30 s, then a traceback


def _api(url: str, path: str, body: dict | None = None) -> dict | list:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{url}{path}",
        data=data,
        method="POST" if body is not None else "GET",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_serve_registers_a_cron_deployment_runs_it_and_stops_cleanly(cli, tmp_path):
    """serve with call records and a policy override: the deployment read back from the
    API carries every flow parameter, the command serve prints triggers a run from
    another shell, that run applies the contact rules with the records' agent ids, and
    it audits as many calls at once as --workers says."""
    served = ["call_04_insult", "call_05_third_party"]
    inbox = make_inbox(tmp_path, served)
    lines = (SAMPLES / "calls.csv").read_text(encoding="utf-8").splitlines()
    manifest = tmp_path / "cdr.csv"
    manifest.write_text(
        "\n".join([lines[0], *[x for x in lines if x.split(",")[0] in served]]) + "\n",
        encoding="utf-8",
    )
    db = tmp_path / "served.duckdb"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    serve = subprocess.Popen(
        [
            *cli,
            "serve",
            "--inbox",
            str(inbox),
            "--db",
            str(db),
            "--cron",
            "0 2 * * *",
            "--timezone",
            "Asia/Shanghai",
            "--port",
            str(port),
            "--manifest",
            str(manifest),
            "--policy",
            "cn",
            "--window",
            "08:00-17:00",
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/api"
    printed: list[str] = []
    try:
        for line in serve.stdout:  # serve prints the command before it starts serving
            printed.append(line)
            if "deployment run" in line:
                break
        command = printed[-1].strip()
        assert command.startswith(f"PREFECT_API_URL={url} ") and "audit-inbox/nightly" in command
        deployment = None
        deadline = time.monotonic() + 180
        while deployment is None and time.monotonic() < deadline:
            assert serve.poll() is None, serve.stdout.read()
            try:
                found = _api(url, "/deployments/filter", {})
                deployment = found[0] if found else None
            except OSError:
                pass
            time.sleep(1)
        assert deployment is not None, "deployment never registered"
        assert deployment["name"] == "nightly"
        [schedule] = [s["schedule"] for s in deployment["schedules"]]
        assert schedule["cron"] == "0 2 * * *" and schedule["timezone"] == "Asia/Shanghai"
        params = deployment["parameters"]
        assert params["manifest"] == str(manifest) and params["policy"] == "cn"
        assert params["policy_overrides"] == {"window": "08:00-17:00"}
        assert params["workers"] == 2 and params["learned"] is True
        flow_params = set(deployment["parameter_openapi_schema"]["properties"])
        assert flow_params <= set(params), flow_params - set(params)

        # The printed command, from a shell that knows nothing of this server.
        trigger = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in env.items() if not k.startswith("PREFECT_API")},
        )
        assert trigger.returncode == 0, trigger.stdout[-2000:] + trigger.stderr[-2000:]
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", trigger.stdout).group(1)
        state = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = _api(url, f"/flow_runs/{run_id}")["state_type"]
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(2)
        assert state == "COMPLETED"
        # --workers 2: the two calls' task runs overlapped (one thread: one after the other).
        tasks = _api(url, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
        starts = [datetime.fromisoformat(t["start_time"]) for t in tasks]
        ends = [datetime.fromisoformat(t["end_time"]) for t in tasks]
        assert len(tasks) == 2 and max(starts) < min(ends), (starts, ends)
    finally:
        serve.send_signal(signal.SIGTERM)
        out, _ = serve.communicate(timeout=60)
    out = "".join(printed) + out
    assert serve.returncode == 0, out[-2000:]
    assert "UI at http://127.0.0.1" in out and "Stopped the local Prefect server" in out
    with pytest.raises(OSError):  # the server went with serve
        _api(url, "/health")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT call_id, status, agent_id FROM calls ORDER BY 1").fetchall() == [
            ("call_04_insult", "ok", "A12"),
            ("call_05_third_party", "ok", "A15"),
        ]
        categories = {r[0] for r in con.execute("SELECT category FROM findings").fetchall()}
        assert {"insult", "contact_time"} <= categories


def _processes_with(marker: str) -> list[int]:
    """Pids whose environment holds ``marker`` (a PREFECT_HOME unique to one test)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:
            pass  # gone, or not ours to read
    return pids


def _start_audit(cli, inbox: Path, db: Path, home: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home)
    return subprocess.Popen(
        [*cli, "audit", str(inbox), "--db", str(db), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal gives a command
        # A foreground command's Ctrl-C: not ignored, even when this runner was started
        # in the background (where a shell sets SIGINT to ignored for its children).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _read_until(proc: subprocess.Popen, text: str, timeout_s: float = 600) -> str:
    seen = []
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        seen.append(line)
        if text in line or time.monotonic() > deadline:
            break
    return "".join(seen)


def test_ctrl_c_cancels_the_run_exits_130_and_leaves_no_process(cli, tmp_path):
    import sqlite3

    inbox = make_inbox(tmp_path, CALLS[:3])
    db, home = tmp_path / "i.duckdb", tmp_path / "prefect-home-int"
    proc = _start_audit(cli, inbox, db, home)
    first = _read_until(proc, "[1/3]")
    assert "[1/3]" in first, first[-2000:]
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest[-3000:]
    assert "Traceback" not in rest and "interrupted; the calls stored so far are kept" in rest
    time.sleep(5)
    assert _processes_with(str(home)) == []
    with sqlite3.connect(home / "prefect.db") as con:
        states = con.execute("SELECT state_type FROM flow_run").fetchall()
    assert states == [("CANCELLED",)]

    rerun = subprocess.run(
        [*cli, "audit", str(inbox), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PREFECT_HOME": str(home)},
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    skipped = int(rerun.stdout.split("skipped, already audited: ")[1].split(";")[0])
    assert skipped >= 1
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM calls WHERE status = 'ok'").fetchone() == (3,)


@pytest.mark.parametrize("extra", [(), ("--processes", "2")], ids=["threads", "dask"])
def test_kill_9_of_the_command_takes_its_prefect_server_with_it(cli, tmp_path, extra):
    """However the command ends, nothing it started outlives it: its Prefect server (and,
    with --processes, the Dask scheduler, nannies and workers)."""
    inbox = make_inbox(tmp_path, CALLS[:3])
    home = tmp_path / "prefect-home-kill"
    proc = _start_audit(cli, inbox, tmp_path / "k.duckdb", home, *extra)
    first = _read_until(proc, "[1/3]")
    assert "[1/3]" in first, first[-2000:]
    assert len(_processes_with(str(home))) >= 2 + 2 * bool(extra)  # command, server, workers
    os.kill(proc.pid, signal.SIGKILL)  # the command only, not its process group
    proc.wait(timeout=30)
    time.sleep(5)
    assert _processes_with(str(home)) == []
