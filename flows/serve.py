"""``callaudit serve``: the audit flow on a cron schedule.

Schedules need a real Prefect server: the temporary server Prefect starts on demand
never creates scheduled runs.  With no ``PREFECT_API_URL`` we start ``prefect server
start`` on loopback ourselves, point this process and the flow-run subprocesses at
it, and stop it again when ``serve`` ends (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from flows.env import prepare_prefect_env

prepare_prefect_env()

from prefect.schedules import Cron  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from flows.audit_flow import audit_inbox  # noqa: E402

DEPLOYMENT_NAME = "nightly"


def wait_for_health(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"Prefect server at {url} did not become healthy in {timeout_s:.0f} s")


def start_local_server(port: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    """``prefect server start`` on 127.0.0.1; returns the process and its API URL."""
    prefect_exe = Path(sys.executable).with_name("prefect")
    log = open(log_path, "ab")  # noqa: SIM115 - kept open for the server's lifetime
    proc = subprocess.Popen(
        [str(prefect_exe), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # our Ctrl-C reaches it only through stop_server
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_health(url)
    except RuntimeError:
        stop_server(proc)
        raise
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(
    cron: str,
    timezone: str,
    port: int = 4200,
    name: str = DEPLOYMENT_NAME,
    **params: Any,
) -> None:
    """Register the deployment with its schedule and run it until stopped."""
    # SIGTERM becomes KeyboardInterrupt so the finally below stops our server too.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    server = None
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        log_path = Path(os.environ["PREFECT_HOME"]) / "server.log"
        server, url = start_local_server(port, log_path)
        os.environ["PREFECT_API_URL"] = url  # flow-run subprocesses inherit it
        print(
            f"Started a local Prefect server; UI at {url.removesuffix('/api')} (log: {log_path})",
            flush=True,
        )
    prefect_exe = Path(sys.executable).with_name("prefect")
    print(
        f"Prefect API: {url}\n"
        f"Run the audit now from another shell:\n"
        f"  PREFECT_API_URL={url} {shlex.quote(str(prefect_exe))} deployment run "
        f"{shlex.quote('audit-inbox/' + name)}",
        flush=True,
    )
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            audit_inbox.serve(
                name=name,
                schedule=Cron(cron, timezone=timezone),
                parameters=params,
                description="Nightly audit of new call recordings",
                pause_on_shutdown=False,
            )
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            stop_server(server)
            print("Stopped the local Prefect server", flush=True)
