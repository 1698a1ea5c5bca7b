"""Choose where ``audit_inbox``'s tasks run: threads, a local Dask cluster, or a remote one.

Dask workers run Prefect tasks, so they need a Prefect API.  Without a server each
worker would start its own temporary one (measured: 38 s instead of 13 s for a small
batch), so we start the temporary server once, here, and hand its address to the
workers through ``PREFECT_API_URL`` before they are spawned.  We start it ourselves in
any case, in a session of its own: Prefect's own temporary server shares the terminal's
process group, so Ctrl-C killed it first and the flow run could never be marked ended.
Workers of an existing cluster (``dask_address``) are not our children: a task takes
the flow's Prefect settings with it, so they report to this run's API, which they must
be able to reach (checked before the flow starts, ``flows.cluster``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flows.env import prepare_prefect_env

prepare_prefect_env()

from prefect.logging.handlers import APILogWorker, PrefectConsoleHandler  # noqa: E402
from prefect.server.api.server import SubprocessASGIServer  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
from prefect.task_runners import TaskRunner  # noqa: E402

from audit import progress  # noqa: E402
from audit.progress import ProgressSink  # noqa: E402
from flows.audit_flow import audit_inbox  # noqa: E402
from flows.cluster import ClusterError, workers_api_problem  # noqa: E402


class _OwnedServer(SubprocessASGIServer):
    """Prefect's temporary server, in its own session and tied to this process: a
    Ctrl-C in the terminal reaches the audit, not the server (which must record that
    the run ended), and the server dies with this process even after ``kill -9``."""

    _instances: dict = {}  # not the base class's: never hand back Prefect's own server

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        real_popen = subprocess.Popen
        hook = _die_with_parent_hook()  # libc is loaded here, not between fork and exec

        def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
            return real_popen(*args, **kwargs, start_new_session=True, preexec_fn=hook)

        subprocess.Popen = popen  # type: ignore[misc]  # only for this one call
        try:
            return super()._run_uvicorn_command()
        finally:
            subprocess.Popen = real_popen  # type: ignore[misc]


def _die_with_parent_hook() -> Any:
    """What the child runs before exec: SIGTERM when the parent dies (Linux prctl)."""
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the server is still stopped at a normal exit
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def shared_api_url() -> tuple[str, SubprocessASGIServer | None]:
    """The Prefect API every process of this run should use, starting one if needed
    (returned, to be stopped by the caller)."""
    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if url:
        return url, None
    server = _OwnedServer()
    server.start()
    return server.api_url, server


def make_task_runner(processes: int = 0, dask_address: str | None = None) -> TaskRunner | None:
    """Dask worker processes when asked (each loads the model once); else None: the flow
    runs the calls in as many threads as its ``workers`` parameter says."""
    if dask_address or processes > 0:
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": processes,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                # Whisper base peaks near 850 MB while decoding; leave Dask's default
                # per-worker memory limit out of the way.
                "memory_limit": 0,
            }
        )
    return None


class _NotProgress(logging.Filter):
    """Leaves out the flow's per-call progress records (the sink shows them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "callaudit_progress", False)


@contextmanager
def _showing(sink: ProgressSink | None) -> Iterator[None]:
    """While the flow runs, ``sink`` shows its progress, and Prefect's console log
    leaves out the per-call lines the sink shows (its API log keeps them).  A live bar
    draws on its own console: Prefect's console lines are printed through it, above the
    bar, instead of over it."""
    if sink is None:
        yield
        return
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    quiet = _NotProgress()
    consoles = [(h, h.console) for h in handlers]
    for handler in handlers:
        handler.addFilter(quiet)
        if sink.console is not None:
            handler.console = sink.console
    try:
        with progress.showing(sink):
            yield
    finally:
        for handler, console in consoles:
            handler.removeFilter(quiet)
            handler.console = console


def run_audit(
    processes: int = 0,
    dask_address: str | None = None,
    progress_sink: ProgressSink | None = None,
    **params: Any,
) -> dict:
    """Run the flow with the right task runner; ``params`` are ``audit_inbox``'s.

    ``progress_sink`` (``audit.progress``) shows the batch's progress, else the flow's
    log lines do.  Without a Prefect server in the environment, one is started for this
    run and stopped after it, also on Ctrl-C (KeyboardInterrupt propagates once the flow
    run is marked as ended).  ``ClusterError``: workers of the cluster at
    ``dask_address`` cannot reach that server.
    """
    runner = make_task_runner(processes, dask_address)
    # Prefect reads its settings at import; a server named in the environment since
    # then (a caller that started one) must still be used, not a temporary server.
    url, server = shared_api_url()
    os.environ["PREFECT_API_URL"] = url  # inherited by Dask worker processes
    crashed: list[Any] = []
    flow = audit_inbox.with_options(
        task_runner=runner, on_crashed=[lambda _flow, run, _state: crashed.append(run.id)]
    )
    try:
        if dask_address:
            problem = workers_api_problem(dask_address, url, temporary=server is not None)
            if problem:
                raise ClusterError(problem)
        with temporary_settings(updates={PREFECT_API_URL: url}), _showing(progress_sink):
            try:
                return flow(**params)
            except KeyboardInterrupt:
                # Prefect records an interrupted run as Crashed; it was stopped on purpose.
                for run_id in crashed:
                    _mark_cancelled(run_id)
                raise
    finally:
        if server is not None:
            APILogWorker.drain_all(timeout=5)  # the run's last log lines, before the API goes
            os.environ.pop("PREFECT_API_URL", None)
            server.stop()


def _mark_cancelled(run_id: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                run_id, Cancelled(message="interrupted (Ctrl-C or SIGINT)"), force=True
            )
    except Exception:  # noqa: BLE001 - best effort: the run is already marked Crashed
        pass
