"""The ``audit_inbox`` flow: discover → audit each call as a task → one writer → summary.

Workers (threads here, Dask processes when scaled out) only transcribe and detect;
the flow's own process is the single DuckDB writer and stores each call as soon as
its task finishes, so a crash loses at most the calls in flight.
"""

from __future__ import annotations

from flows.env import prepare_prefect_env

prepare_prefect_env()

from pathlib import Path  # noqa: E402

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from audit import batch, store  # noqa: E402
from audit.model import resolve_model  # noqa: E402
from audit.pipeline import AuditOptions, CallInput, CallResult, audit_call, discover  # noqa: E402
from audit.transcribe import TranscribeOptions  # noqa: E402


@task(name="audit-call", task_run_name="audit {call.call_id}", cache_policy=NO_CACHE)
def audit_call_task(call: CallInput, options: AuditOptions) -> CallResult:
    return audit_call(call, options)


def build_options(
    model: str | None = None,
    device: str = "cpu",
    compute_type: str = "int8",
    rules: str = "cn",
    pii: str = "mask",
    beam_size: int = 5,
    channel_roles: str = "agent,customer",
    workers: int = 1,
) -> AuditOptions:
    roles = tuple(r.strip() for r in channel_roles.split(","))
    return AuditOptions(
        transcribe=TranscribeOptions(
            model=model,
            device=device,
            compute_type=compute_type,
            beam_size=beam_size,
            channel_roles=roles,
            concurrency=max(1, workers),
        ),
        rules=rules,
        pii=pii,
    )


@flow(name="audit-inbox", task_runner=ThreadPoolTaskRunner(max_workers=1))
def audit_inbox(
    inbox: str,
    db: str,
    model: str | None = None,
    device: str = "cpu",
    compute_type: str = "int8",
    rules: str = "cn",
    pii: str = "mask",
    beam_size: int = 5,
    channel_roles: str = "agent,customer",
    workers: int = 1,
    force: bool = False,
) -> dict:
    """Audit every new recording in ``inbox`` into the DuckDB file ``db``."""
    logger = get_run_logger()
    options = build_options(
        model, device, compute_type, rules, pii, beam_size, channel_roles, workers
    )
    resolve_model(model)  # fail the run early and clearly if the model is missing
    con = store.connect(db)
    try:
        plan = batch.plan_batch(discover(Path(inbox)), con, options, force=force)
        logger.info(
            "inbox %s: %d recordings, %d to audit, %d already audited",
            inbox,
            plan.discovered,
            len(plan.todo),
            len(plan.skipped),
        )
        progress = batch.Progress(total=len(plan.todo))
        futures = [audit_call_task.submit(call, options) for call in plan.todo]
        for future in as_completed(futures):
            result = future.result()
            store.write_call(con, result)
            logger.info(progress.update(result))
        summary = batch.summarize(con, db, plan, progress).as_dict()
    finally:
        con.close()
    logger.info(
        "done: %d audited, %d skipped, %d failed; findings by category: %s",
        summary["audited"],
        summary["skipped"],
        summary["failed"],
        summary["findings_by_category"],
    )
    return summary
