"""Checks of an existing Dask cluster (``callaudit audit --dask-address``) before a run.

Without them an unreachable scheduler failed the flow run after Dask's 30 s connect
timeout with a traceback, and workers that could not reach the Prefect API failed every
call of the batch.  This module imports neither Prefect nor the audit pipeline: the
probe below is sent to each Dask worker by reference, so a worker imports only this.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request


class ClusterError(RuntimeError):
    """The Dask cluster given cannot run the audit's tasks (one line, for the user)."""


def scheduler_problem(address: str, timeout_s: float = 10.0) -> str | None:
    """Why ``address`` is not a Dask scheduler this machine can reach, or None."""
    from distributed.core import rpc

    async def identity() -> dict:
        async with rpc(address, timeout=timeout_s) as scheduler:
            return await scheduler.identity()

    try:
        # The outer limit also covers a server that accepts the connection but never
        # answers (not Dask, or a scheduler that is stuck).
        found = asyncio.run(asyncio.wait_for(identity(), timeout_s + 5))
    except (OSError, ValueError, TimeoutError) as exc:
        return f"cannot reach the Dask scheduler at {address}: {str(exc) or type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - whatever answered did not speak Dask
        return f"no Dask scheduler at {address}: {exc!r}"
    if found.get("type") != "Scheduler":
        return f"{address} is a Dask {found.get('type', 'server')}, not a scheduler"
    return None


def workers_api_problem(address: str, api_url: str, temporary: bool) -> str | None:
    """Why some worker of the scheduler at ``address`` cannot reach the Prefect API at
    ``api_url``, or None.

    A task takes the flow's Prefect settings with it, so a worker reports to the API
    this command uses, whatever its own ``PREFECT_API_URL`` says.  Workers that join
    later are not checked: an adaptive cluster may have none before tasks arrive.
    """
    from distributed import Client

    try:
        with Client(address, timeout=10, set_as_default=False) as client:
            answers = client.run(api_problem, api_url)
    except OSError as exc:  # the scheduler answered a moment ago (scheduler_problem)
        return f"lost the Dask scheduler at {address}: {str(exc) or type(exc).__name__}"
    failing = {worker: problem for worker, problem in sorted(answers.items()) if problem}
    if not failing:
        return None
    worker, problem = next(iter(failing.items()))
    where = (
        "the temporary Prefect server this command started listens on 127.0.0.1 only; "
        if temporary
        else ""
    )
    return (
        f"{len(failing)} of {len(answers)} Dask workers cannot reach the Prefect API at "
        f"{api_url} ({worker}: {problem}): {where}set PREFECT_API_URL to a Prefect server "
        "that this machine and the workers can reach"
    )


def api_problem(api_url: str, timeout_s: float = 5.0) -> str | None:
    """Runs on a Dask worker: why it cannot reach ``api_url``, or None."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # it answered (Prefect Cloud, for one, wants a key for /health)
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except OSError as exc:
        return str(exc) or type(exc).__name__
