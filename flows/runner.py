"""Choose where ``audit_inbox``'s tasks run: threads, a local Dask cluster, or a remote one.

Dask workers run Prefect tasks, so they need a Prefect API.  Without a server each
worker would start its own temporary one (measured: 38 s instead of 13 s for a small
batch), so for a local cluster we start the temporary server once, here, and hand its
address to the workers through ``PREFECT_API_URL`` before they are spawned.
"""

from __future__ import annotations

import os
from typing import Any

from flows.env import prepare_prefect_env

prepare_prefect_env()

from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows.audit_flow import audit_inbox  # noqa: E402


def shared_api_url() -> str:
    """The Prefect API every process of this run should use, starting one if needed."""
    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if url:
        return url
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def make_task_runner(workers: int = 1, processes: int = 0, dask_address: str | None = None):
    """Threads by default; Dask worker processes when asked (each loads the model once)."""
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
    return ThreadPoolTaskRunner(max_workers=max(1, workers))


def run_audit(processes: int = 0, dask_address: str | None = None, **params: Any) -> dict:
    """Run the flow with the right task runner; ``params`` are ``audit_inbox``'s."""
    runner = make_task_runner(params.get("workers", 1), processes, dask_address)
    if processes > 0 and not dask_address:
        url: str | None = shared_api_url()
        os.environ["PREFECT_API_URL"] = url  # inherited by the Dask worker processes
    else:
        # Prefect reads its settings at import; a server named in the environment since
        # then (a caller that started one) must still be used, not a temporary server.
        url = os.environ.get("PREFECT_API_URL")
    if url:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            return audit_inbox.with_options(task_runner=runner)(**params)
    return audit_inbox.with_options(task_runner=runner)(**params)
