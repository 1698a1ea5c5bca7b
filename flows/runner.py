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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flows.env import prepare_prefect_env

prepare_prefect_env()

import httpx  # noqa: E402
import prefect  # noqa: E402
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


class _NotServerNews(logging.Filter):
    """Prefect's "Starting/Stopping temporary server" lines: the server now starts while
    the command still checks its input, and a failed check must stay one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Starting temporary server", "Stopping temporary"))


logging.getLogger("prefect").addFilter(_NotServerNews())  # the logger Prefect uses for them

SERVE_PORT = 4200  # callaudit serve's Prefect server, when it started one (flows.serve)


def running_local_api(port: int = SERVE_PORT) -> str | None:
    """The API of a Prefect server of this version already listening here (the one
    ``callaudit serve`` starts), so a one-off run need not start its own."""
    url = f"http://127.0.0.1:{port}/api"
    try:
        with httpx.Client(timeout=0.5) as client:
            answer = client.get(f"{url}/admin/version")
            if answer.status_code == 200 and answer.json() == prefect.__version__:
                return url
    except (httpx.HTTPError, ValueError):
        pass
    return None


class PrefectApi:
    """The Prefect API every process of one run uses: the configured one, else a server
    already running on this machine, else a temporary server of our own.

    The temporary server starts in the background as soon as this is made, so it comes
    up while the caller loads the model and opens the database (it takes seconds, in a
    process of its own); ``url()`` waits for it.  ``stop()`` stops only a server we
    started.
    """

    def __init__(self) -> None:
        self.server: _OwnedServer | None = None
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        # Prefect reads its settings at import; a server named in the environment since
        # then (a caller that started one) must still be used, not a temporary server.
        self._url = (
            os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or running_local_api()
        )
        if not self._url:
            self.server = _OwnedServer()
            # Its address is known at once (start() would choose it in the thread).
            self.server.port = self.server.port or self.server.find_available_port()
            self._thread = threading.Thread(target=self._serve, name="prefect-server")
            self._thread.daemon = True
            self._thread.start()

    def _serve(self) -> None:
        try:
            self.server.start()
        except BaseException as exc:  # noqa: BLE001 - raised again by url()
            self._failed = exc
        finally:
            self._ready.set()
        # The server dies with the *thread* that started it (PR_SET_PDEATHSIG is per
        # thread on Linux), so this thread lives until the server is stopped.
        self._stopped.wait()

    @property
    def temporary(self) -> bool:
        return self.server is not None

    def url(self) -> str:
        """The API's address, once it answers."""
        if self.server is not None:
            self._ready.wait()
            if self._failed is not None:
                raise self._failed
            self._url = self.server.api_url
        return self._url

    def stop(self) -> None:
        if self.server is None:
            return
        self._ready.wait()
        APILogWorker.drain_all(timeout=5)  # the run's last log lines, before the API goes
        os.environ.pop("PREFECT_API_URL", None)
        self.server.stop()
        self.server = None
        self._stopped.set()

    def __enter__(self) -> PrefectApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    api: PrefectApi | None = None,
    **params: Any,
) -> dict:
    """Run the flow with the right task runner; ``params`` are ``audit_inbox``'s.

    ``progress_sink`` (``audit.progress``) shows the batch's progress, else the flow's
    log lines do.  ``api``: the run's Prefect API, made (``PrefectApi()``) by a caller
    that wants the temporary server starting while it prepares, and then stopped by it;
    else one is found or started here and stopped after the run, also on Ctrl-C
    (KeyboardInterrupt propagates once the flow run is marked as ended).
    ``ClusterError``: workers of the cluster at ``dask_address`` cannot reach that server.
    """
    runner = make_task_runner(processes, dask_address)
    own = api is None
    api = api or PrefectApi()
    crashed: list[Any] = []
    flow = audit_inbox.with_options(
        task_runner=runner, on_crashed=[lambda _flow, run, _state: crashed.append(run.id)]
    )
    try:
        url = api.url()
        os.environ["PREFECT_API_URL"] = url  # inherited by Dask worker processes
        if dask_address:
            problem = workers_api_problem(dask_address, url, temporary=api.temporary)
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
        if own:
            api.stop()


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
