"""Prefect flows: thin orchestration around the ``audit`` library."""
