"""Contact policy packs: when and how often a debtor may be called, as data.

A pack (``audit/policies/cn.yaml``, ``us.yaml`` or any YAML file in that shape) lists
rules; each names the SQL file in ``sql/contact/`` that enforces it and the numbers
that file reads as ``$parameters``.  The numbers can be overridden per run, so an
officer changes a limit without touching code.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any

import yaml

from audit.categories import CATEGORIES, SEVERITIES

POLICY_DIR = Path(__file__).resolve().parent / "policies"

# Command-line override → (SQL file of the rule it changes, parameter name).
OVERRIDES: dict[str, tuple[str, str]] = {
    "max_connected_per_day": ("connected_per_day.sql", "max_connected_per_day"),
    "max_attempts_per_day": ("attempts_per_day.sql", "max_attempts_per_day"),
    "max_attempts_in_7_days": ("attempts_in_days.sql", "max_attempts"),
    "quiet_days_after_conversation": ("after_conversation.sql", "quiet_days"),
}

# Conduct overrides (``--overtalk-s 2`` ...) → (check of the rule, parameter name).
CONDUCT_OVERRIDES: dict[str, tuple[str, str]] = {
    "overtalk_s": ("overtalk", "min_overlap_s"),
    "max_interruptions": ("interruptions", "max_per_call"),
    "shout_db": ("shouting", "above_median_db"),
    "dead_air_s": ("dead_air", "max_silence_s"),
    "max_pace_cps": ("pace", "max_chars_per_s"),
}
# The conduct checks (audit/conduct.py) and the numbers each rule must give.
CONDUCT_CHECKS: dict[str, tuple[str, ...]] = {
    "overtalk": ("min_overlap_s",),
    "interruptions": ("min_overlap_s", "max_per_call"),
    "shouting": ("above_median_db", "min_s"),
    "dead_air": ("max_silence_s",),
    "pace": ("max_chars_per_s", "min_chars", "min_s"),
}

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class PolicyError(ValueError):
    """A policy pack or override is unusable; the message says which and why."""


@dataclass(frozen=True)
class ContactRule:
    id: str
    sql: str  # file name in sql/contact/
    category: str
    severity: str
    title: str
    citation: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConductRule:
    """How a call was conducted, judged from its audio (audit/conduct.py)."""

    id: str
    check: str  # a key of CONDUCT_CHECKS
    severity: str
    title: str
    citation: str
    rationale: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    pack: str
    version: str
    rules: tuple[ContactRule, ...]
    conduct: tuple[ConductRule, ...] = ()

    @property
    def rules_version(self) -> str:
        return f"policy-{self.pack}-{self.version}"

    @property
    def conduct_version(self) -> str:
        """The pack's version and a digest of its conduct numbers: an override changes
        it, so calls judged with other thresholds are due again."""
        return conduct_version(self.pack, self.version, self.conduct)

    def rule_for(self, sql: str) -> ContactRule | None:
        return next((r for r in self.rules if r.sql == sql), None)

    def describe(self) -> str:
        """One line per rule with its numbers, for logs and the summary."""
        lines = [f"policy {self.pack} {self.version}:"]
        for r in self.rules:
            nums = ", ".join(f"{k}={_show(v)}" for k, v in r.params.items())
            lines.append(f"  {r.id:<26} {r.category:<18} {nums}  [{r.citation}]")
        for r in self.conduct:
            nums = ", ".join(f"{k}={_show(v)}" for k, v in r.params.items())
            lines.append(f"  {r.id:<26} {'conduct':<18} {nums}  [{r.citation}]")
        return "\n".join(lines)


def conduct_version(pack: str, version: str, rules: tuple[ConductRule, ...]) -> str:
    numbers = json.dumps(
        [[r.id, r.check, r.severity, sorted(r.params.items())] for r in rules], default=str
    )
    digest = hashlib.sha256(numbers.encode("utf-8")).hexdigest()[:8]
    return f"conduct-{pack}-{version}-{digest}"


def _show(value: Any) -> str:
    return value.strftime("%H:%M") if isinstance(value, time) else str(value)


def parse_hhmm(text: str, what: str) -> time:
    m = _HHMM.match(str(text).strip())
    if not m:
        raise PolicyError(f"{what}: expected HH:MM (24-hour), got {text!r}")
    return time(int(m.group(1)), int(m.group(2)))


def parse_window(text: str) -> tuple[time, time]:
    """``08:00-22:00`` → (08:00, 22:00); the end is the first forbidden minute."""
    parts = re.split(r"\s*[-–~]\s*", str(text).strip())
    if len(parts) != 2:
        raise PolicyError(f"--window: expected START-END such as 08:00-22:00, got {text!r}")
    start, end = parse_hhmm(parts[0], "--window start"), parse_hhmm(parts[1], "--window end")
    if start >= end:
        raise PolicyError(f"--window: start {parts[0]} must be before end {parts[1]}")
    return start, end


def _rule_from_yaml(raw: dict[str, Any], source: str) -> ContactRule:
    missing = [k for k in ("id", "sql", "category", "severity", "citation") if not raw.get(k)]
    if missing:
        raise PolicyError(f"{source}: rule {raw.get('id', '?')} lacks {', '.join(missing)}")
    if raw["category"] not in CATEGORIES or raw["severity"] not in SEVERITIES:
        raise PolicyError(f"{source}: rule {raw['id']}: unknown category or severity")
    params = dict(raw.get("params") or {})
    for key in ("window_start", "window_end"):
        if key in params:
            params[key] = parse_hhmm(params[key], f"{source}: {raw['id']}.{key}")
    return ContactRule(
        id=str(raw["id"]),
        sql=str(raw["sql"]),
        category=raw["category"],
        severity=raw["severity"],
        title=str(raw.get("title", "")),
        citation=str(raw["citation"]),
        params=params,
    )


def _conduct_rule_from_yaml(raw: dict[str, Any], source: str) -> ConductRule:
    missing = [k for k in ("id", "check", "severity", "citation") if not raw.get(k)]
    if missing:
        raise PolicyError(f"{source}: conduct rule {raw.get('id', '?')} lacks {', '.join(missing)}")
    rule_id = str(raw["id"])
    if raw["check"] not in CONDUCT_CHECKS:
        known = ", ".join(CONDUCT_CHECKS)
        raise PolicyError(f"{source}: conduct rule {rule_id}: unknown check (known: {known})")
    if raw["severity"] not in SEVERITIES or raw.get("category", "conduct") != "conduct":
        raise PolicyError(f"{source}: conduct rule {rule_id}: unknown severity or category")
    params = dict(raw.get("params") or {})
    lacking = [p for p in CONDUCT_CHECKS[raw["check"]] if p not in params]
    if lacking:
        raise PolicyError(f"{source}: conduct rule {rule_id} needs {', '.join(lacking)}")
    for key, value in params.items():  # levels in dBFS are negative; the rest are not
        _check_number(value, f"{source}: {rule_id}.{key}", negative=key.endswith("_dbfs"))
    return ConductRule(
        id=rule_id,
        check=str(raw["check"]),
        severity=raw["severity"],
        title=str(raw.get("title", "")),
        citation=str(raw["citation"]),
        rationale=" ".join(str(raw.get("rationale", "")).split()),
        params=params,
    )


def _check_number(value: Any, what: str, negative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise PolicyError(f"{what}: expected a number, got {value!r}")
    if value < 0 and not negative:
        raise PolicyError(f"{what} must not be negative")
    return float(value)


def _pack_path(name: str) -> Path:
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    path = POLICY_DIR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in POLICY_DIR.glob("*.yaml")))
        raise PolicyError(f"unknown policy {name!r} (known: {known}; or a YAML file)")
    return path


def load_policy(name: str = "cn", **overrides: Any) -> Policy:
    """Load a pack by name (``cn``, ``us``) or path, then apply non-None overrides.

    Overrides: ``window`` ("08:00-22:00") and the keys of ``OVERRIDES``.  An override
    for a rule the pack doesn't have is an error, not silently ignored.
    """
    path = _pack_path(name)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from exc
    rules = [_rule_from_yaml(r, path.name) for r in raw.get("rules") or []]
    conduct = [_conduct_rule_from_yaml(r, path.name) for r in raw.get("conduct") or []]
    policy = Policy(
        pack=str(raw.get("pack", path.stem)),
        version=str(raw.get("version", "0")),
        rules=tuple(rules),
        conduct=tuple(conduct),
    )
    return apply_overrides(policy, **overrides)


def apply_overrides(policy: Policy, **overrides: Any) -> Policy:
    """Replace the numbers named by non-None overrides (see ``load_policy``)."""
    changes: dict[tuple[str, str], Any] = {}
    conduct_changes: dict[tuple[str, str], Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in CONDUCT_OVERRIDES:
            number = _check_number(value, f"--{key.replace('_', '-')}")
            conduct_changes[CONDUCT_OVERRIDES[key]] = (
                int(number) if key.startswith("max_i") else number
            )
            continue
        if key == "window":
            start, end = parse_window(value)
            changes[("contact_time.sql", "window_start")] = start
            changes[("contact_time.sql", "window_end")] = end
            continue
        if key not in OVERRIDES:
            raise PolicyError(f"unknown policy override {key!r}")
        if int(value) < 0:
            raise PolicyError(f"--{key.replace('_', '-')} must not be negative")
        changes[OVERRIDES[key]] = int(value)
    rules = list(policy.rules)
    for (sql, param), value in changes.items():
        idx = next((i for i, r in enumerate(rules) if r.sql == sql), None)
        if idx is None:
            raise PolicyError(f"policy {policy.pack} has no {sql[:-4]} rule to set {param} on")
        rules[idx] = replace(rules[idx], params={**rules[idx].params, param: value})
    conduct = list(policy.conduct)
    for (check, param), value in conduct_changes.items():
        found = [i for i, r in enumerate(conduct) if r.check == check]
        if not found:
            raise PolicyError(f"policy {policy.pack} has no {check} conduct rule to set {param} on")
        for i in found:
            conduct[i] = replace(conduct[i], params={**conduct[i].params, param: value})
    return replace(policy, rules=tuple(rules), conduct=tuple(conduct))


def overrides_from_args(args: Any) -> dict[str, Any]:
    """The overrides given on the command line (None where not given)."""
    conduct = {k: getattr(args, k, None) for k in CONDUCT_OVERRIDES}
    return {"window": args.window, **{k: getattr(args, k) for k in OVERRIDES}, **conduct}
