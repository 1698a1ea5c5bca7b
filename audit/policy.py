"""Contact policy packs: when and how often a debtor may be called, as data.

A pack (``audit/policies/cn.yaml``, ``us.yaml`` or any YAML file in that shape) lists
rules; each names the SQL file in ``sql/contact/`` that enforces it and the numbers
that file reads as ``$parameters``.  The numbers can be overridden per run, so an
officer changes a limit without touching code.
"""

from __future__ import annotations

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
class Policy:
    pack: str
    version: str
    rules: tuple[ContactRule, ...]

    @property
    def rules_version(self) -> str:
        return f"policy-{self.pack}-{self.version}"

    def rule_for(self, sql: str) -> ContactRule | None:
        return next((r for r in self.rules if r.sql == sql), None)

    def describe(self) -> str:
        """One line per rule with its numbers, for logs and the summary."""
        lines = [f"policy {self.pack} {self.version}:"]
        for r in self.rules:
            nums = ", ".join(f"{k}={_show(v)}" for k, v in r.params.items())
            lines.append(f"  {r.id:<26} {r.category:<18} {nums}  [{r.citation}]")
        return "\n".join(lines)


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
    policy = Policy(
        pack=str(raw.get("pack", path.stem)),
        version=str(raw.get("version", "0")),
        rules=tuple(rules),
    )
    return apply_overrides(policy, **overrides)


def apply_overrides(policy: Policy, **overrides: Any) -> Policy:
    """Replace the numbers named by non-None overrides (see ``load_policy``)."""
    changes: dict[tuple[str, str], Any] = {}
    for key, value in overrides.items():
        if value is None:
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
    return replace(policy, rules=tuple(rules))


def overrides_from_args(args: Any) -> dict[str, Any]:
    """The overrides given on the command line (None where not given)."""
    return {"window": args.window, **{k: getattr(args, k) for k in OVERRIDES}}
