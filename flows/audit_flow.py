"""The ``audit_inbox`` flow: discover → audit each call as a task → one writer → summary.

Workers (threads here, Dask processes when scaled out) only transcribe and detect;
the flow's own process is the single DuckDB writer and stores each call as soon as
its task finishes, so a crash loses at most the calls in flight.
"""

from __future__ import annotations

from flows.env import prepare_prefect_env

prepare_prefect_env()

import os  # noqa: E402
import uuid  # noqa: E402
from contextlib import AbstractContextManager, nullcontext  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.context import FlowRunContext  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner  # noqa: E402

from audit import progress as shown  # noqa: E402
from audit.model import describe_model  # noqa: E402
from audit.pii import display_name  # noqa: E402
from audit.pipeline import (  # noqa: E402
    AuditOptions,
    CallInput,
    CallResult,
    audit_call,
    detection_version,
    failed_result,
)
from audit.policy import Policy, load_policy  # noqa: E402
from audit.transcribe import TranscribeOptions, get_model  # noqa: E402


def _task_run_name() -> str:
    from prefect.runtime import task_run

    return f"audit {display_name(task_run.parameters['call'].call_id)}"


@task(name="audit-call", task_run_name=_task_run_name, cache_policy=NO_CACHE)
def audit_call_task(call: CallInput, options: AuditOptions) -> CallResult:
    # The worker's pid shows, in the run's logs, which process did the work.
    get_run_logger().info("worker pid %d", os.getpid())
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
    learned: bool = True,
    correct: bool = True,
    policy: Policy | None = None,
    batch_size: int = 0,
) -> AuditOptions:
    roles = tuple(r.strip() for r in channel_roles.split(","))
    return AuditOptions(
        transcribe=TranscribeOptions(
            model=model,
            device=device,
            compute_type=compute_type,
            beam_size=beam_size,
            batch_size=batch_size,
            channel_roles=roles,
            concurrency=max(1, workers),
        ),
        rules=rules,
        pii=pii,
        learned=learned,
        correct=correct,
        policy=policy,
    )


def calls_in_threads() -> bool:
    """Whether this run's calls go to threads of this process (else to Dask workers)."""
    return isinstance(FlowRunContext.get().task_runner, ThreadPoolTaskRunner)


def runner_for_calls(workers: int) -> AbstractContextManager[TaskRunner]:
    """Where the calls' tasks go: the run's Dask runner when it was given one
    (``flows.runner``), else a pool of ``workers`` threads started for them.

    The flow's own thread runner cannot be sized from a parameter: Prefect builds it
    before the parameters are known, and a deployment's run (``serve``, prefect.yaml, a
    run started from the UI with other parameters) uses the flow as decorated.
    """
    if calls_in_threads():
        return ThreadPoolTaskRunner(max_workers=max(1, workers))
    return nullcontext(FlowRunContext.get().task_runner)


def publish_artifacts(summary: dict, top: list[dict]) -> None:
    """The run's summary and top findings as Prefect artifacts, without transcript text
    (data protection: the Prefect server is not the audit database)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from audit import report

    try:
        create_markdown_artifact(
            markdown=report.summary_markdown(summary), key="audit-summary", description="Summary"
        )
        create_table_artifact(table=top, key="top-findings", description="Top findings")
    except Exception as exc:  # the audit is stored; a UI extra must not fail the run
        get_run_logger().warning("could not publish Prefect artifacts: %s", exc)


# Threads by default; the calls get their own pool of ``workers`` threads (runner_for_calls).
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
    manifest: str | None = None,
    policy: str = "cn",
    policy_overrides: dict | None = None,
    encryption_key_env: str | None = None,
    learned: bool = True,
    correct: bool = True,
    default_timezone: str | None = None,
    without_call_records: bool = False,
    batch_size: int = 0,
) -> dict:
    """Audit every new recording in ``inbox`` into the DuckDB file ``db``.

    ``manifest``: call-detail CSV (call ids, callee relation, times); ``policy``: contact
    policy pack (cn, us or a YAML file) with optional ``policy_overrides`` of its numbers;
    ``learned``: the learned stage beside the rules (``audit.learned``); ``correct``: the
    domain corrector of Whisper's homophones (``audit.correct``); both on by default.
    ``default_timezone``: the zone of manifest times written without a UTC offset;
    ``without_call_records``: audit even when the manifest accepted none of its rows;
    ``batch_size``: speech windows decoded together (0: one after another).
    """
    # Here, not at the top: a Dask worker imports this module to run its tasks, and has
    # no use for DuckDB, the planner or the reports (~25 MB a worker; tests/test_flow_imports.py).
    from audit import batch, report, store
    from audit.contact import check_calls
    from audit.manifest import dated_path, plan_inbox

    logger = get_run_logger()
    started_at = datetime.now(UTC)
    # Fail the run early and clearly on a bad policy; its conduct rules judge the audio.
    contact_policy = load_policy(policy, **(policy_overrides or {}))
    options = build_options(
        model,
        device,
        compute_type,
        rules,
        pii,
        beam_size,
        channel_roles,
        # Threads of this process share one model, one replica each; a Dask worker runs
        # one call at a time, where a second replica would cost ~50 MB for nothing.
        workers if calls_in_threads() else 1,
        learned,
        correct,
        contact_policy,
        batch_size,
    )
    # Likewise if the model is missing or damaged (in this process the model is then
    # cached for the thread workers).
    get_model(options.transcribe)
    # The key travels by the *name* of its environment variable: flow parameters are
    # stored by Prefect and shown in its UI.
    con = store.connect(db, encryption_key=store.key_from_env(encryption_key_env))
    try:
        plan, records = plan_inbox(
            con,
            Path(inbox),
            dated_path(manifest) if manifest else None,
            options,
            force,
            default_timezone=default_timezone,
            without_records=without_call_records,
        )
        logger.info(
            "inbox %s: %d recordings, %d to audit, %d already audited",
            inbox,
            plan.discovered,
            len(plan.todo),
            len(plan.skipped),
        )
        # Progress counts task completions here, whichever process ran the task; the
        # command line's sink (a bar on a terminal, plain lines else) shows it.
        with (
            runner_for_calls(workers) as runner,
            batch.Progress(total=len(plan.todo), sink=shown.active()) as progress,
        ):
            futures = {
                runner.submit(audit_call_task, {"call": call, "options": options}): call
                for call in plan.todo
            }
            for future in as_completed(list(futures)):
                try:
                    result = future.result()
                except Exception as exc:  # the worker itself failed: record it, go on
                    result = failed_result(futures[future], options, f"worker failed: {exc!r}")
                store.write_call(con, result)
                logger.info(progress.update(result), extra=shown.LOG_EXTRA)
        checked = check_calls(con, records, plan, contact_policy)
        logger.info("contact rules: %s", contact_policy.describe())
        summary = {**batch.summarize(con, db, plan, progress).as_dict(), **checked}
        store.record_run(
            con,
            run_id=str(flow_run.id or uuid.uuid4()),
            started_at=started_at,
            inbox=inbox,
            summary=summary,
            model=describe_model(model),
            rules_version=detection_version(options),
        )
        top = report.top_findings(con)
    finally:
        con.close()
    publish_artifacts(summary, top)
    logger.info(
        "done: %d audited, %d skipped, %d failed; findings by category: %s",
        summary["audited"],
        summary["skipped"],
        summary["failed"],
        summary["findings_by_category"],
    )
    return summary
