"""Contact rules: the SQL files in ``sql/contact/`` run over ``calls`` with a policy's numbers.

Each file is a SELECT that yields ``(call_id, text, match)``: which calls break the rule
and the evidence in words.  The policy supplies its ``$parameters`` (limits, window), and
``_AS_FINDINGS`` below turns the rows into findings of that rule (id, severity, citation).
Running the rules replaces every earlier contact finding in one transaction, so a re-run,
or a switch of policy, leaves exactly the findings of the current policy.  Finding ids
are md5(call_id|rule_id), stable across runs, so reviews stay attached.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from audit import batch, store
from audit.manifest import Manifest, format_report, store_records
from audit.policy import ContactRule, Policy, PolicyError

CONTACT_CATEGORIES = ("contact_time", "contact_frequency")
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")
_COMMENT = re.compile(r"--[^\n]*")
# The finding shape, in one place for every rule file.
_AS_FINDINGS = """
SELECT
    substr(md5(call_id || '|' || $rule_id), 1, 20) AS finding_id,
    call_id,
    $rule_id AS rule_id,
    $category AS category,
    $severity AS severity,
    'agent' AS speaker,
    text,
    match,
    'sql' AS via,
    $citation AS citation,
    $rules_version AS rules_version
FROM ({rule_sql})
"""


def contact_dir() -> Path:
    return store.SQL_DIR / "contact"


def rule_sql(rule: ContactRule) -> str:
    """The rule's file wrapped into finding rows."""
    path = contact_dir() / rule.sql
    if not path.is_file():
        raise PolicyError(f"rule {rule.id}: SQL file {path} not found")
    body = _COMMENT.sub("", path.read_text(encoding="utf-8")).strip().rstrip(";")
    return _AS_FINDINGS.format(rule_sql=body)


def rule_params(rule: ContactRule, policy: Policy, sql: str) -> dict[str, Any]:
    """The parameters the SQL uses, from the rule; a missing one is a policy error."""
    given: dict[str, Any] = {
        "rule_id": rule.id,
        "category": rule.category,
        "severity": rule.severity,
        "citation": rule.citation,
        "rules_version": policy.rules_version,
        **rule.params,
    }
    # DuckDB rejects unused named parameters, so pass exactly those the code names.
    used = set(_PARAM.findall(_COMMENT.sub("", sql)))
    missing = sorted(used - set(given))
    if missing:
        raise PolicyError(f"rule {rule.id}: {rule.sql} needs {', '.join(missing)}")
    return {k: given[k] for k in used}


def run_contact_rules(con: duckdb.DuckDBPyConnection, policy: Policy) -> dict[str, int]:
    """Replace all contact findings with the policy's; returns findings per rule id."""
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        # Every finding the SQL rules made, whatever category a policy gives them.
        con.execute("DELETE FROM findings WHERE via = 'sql'")
        for rule in policy.rules:
            counts[rule.id] = _insert_rule(con, rule, policy)
        con.execute("COMMIT")
    except Exception:
        store.rollback_quietly(con)
        raise
    return counts


def _insert_rule(con: duckdb.DuckDBPyConnection, rule: ContactRule, policy: Policy) -> int:
    sql = rule_sql(rule)
    params = rule_params(rule, policy, sql)
    before = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    # ON CONFLICT: two rules of one pack sharing an id would otherwise abort the run.
    con.execute(f"INSERT INTO findings BY NAME ({sql}) ON CONFLICT DO NOTHING", params)
    return con.execute("SELECT count(*) FROM findings").fetchone()[0] - before


def check_calls(
    con: duckdb.DuckDBPyConnection,
    manifest: Manifest | None,
    plan: batch.Plan,
    policy: Policy,
) -> dict[str, Any]:
    """After the audio: store the manifest's call records, then run the contact rules.

    The rules run even without a manifest: records stored by earlier runs are judged
    by the policy given now.  Returns the summary's ``manifest`` and ``contact`` parts.
    """
    if manifest is not None:
        store_records(con, manifest, plan)
    counts = run_contact_rules(con, policy)
    return {
        "manifest": manifest.summary() if manifest else None,
        "contact": {"policy": policy.pack, "version": policy.version, "findings": counts},
    }


def format_checks(summary: dict) -> str:
    """Summary lines for the manifest (every rejected row) and the contact rules."""
    lines = []
    if summary.get("manifest"):
        lines.append(format_report(summary["manifest"]))
    contact = summary.get("contact")
    if contact:
        hits = ", ".join(f"{rule} {n}" for rule, n in contact["findings"].items())
        lines.append(f"  contact policy   : {contact['policy']} {contact['version']} ({hits})")
    return "\n".join(lines)
