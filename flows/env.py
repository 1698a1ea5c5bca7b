"""Prefect settings that must be in place before ``import prefect``."""

from __future__ import annotations

import os

from audit.model import cache_root


def prepare_prefect_env() -> None:
    """Keep Prefect's files out of ~/.prefect unless told otherwise, and stay offline."""
    if "PREFECT_HOME" not in os.environ:
        home = cache_root() / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The library logs progress of long recordings on "callaudit"; show it in runs.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "callaudit")
