"""The README's printed outputs, regenerated from a demo database so they cannot drift.

    python scripts/readme_outputs.py --write [--db demo/callaudit.duckdb]
    python scripts/readme_outputs.py --check [--db demo/callaudit.duckdb]

Each output in README.md sits between markers::

    <!-- generated: NAME (transcripts 3f2a9c1d0b7e) -->
    ```sql                       (query blocks: the SQL shown is the SQL run)
    SELECT ...
    ```
    ```
    ...what the database gives...
    ```
    <!-- /generated -->

``--write`` replaces every block's output (and its transcript fingerprint) with what the
database gives: the demo summary, each query's result (for the ``VIEWS`` blocks after the
three reviews the README describes, applied to a copy), the ``review`` command's output.

``--check`` compares.  Whisper's int8 output differs between CPUs (an AVX-512 machine
hears a syllable differently), so exact figures hold only for the transcripts they were
made from, recorded as a fingerprint (sha256 of every audited utterance's Whisper text and
times).  Same fingerprint: every block must be exactly what the database gives (exit 1
with a diff otherwise).  Another fingerprint: only what the product promises on any CPU is
checked (the same calls, each call's labelled categories found, the compliant sample
calls without findings), against samples/labels.csv and the facts recorded with the
README; a category beyond a call's labels that the README and the database disagree on is
printed as a note, and the check says that its exact figures come from other transcripts.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import hashlib
import io
import json
import re
import shutil
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

README = ROOT / "README.md"
DEMO_DB = ROOT / "demo" / "callaudit.duckdb"
MANIFEST = "samples/calls.csv"  # as scripts/demo.sh gives it (relative to the clone)
SHOWN_ROOT = "/path/to/callaudit"  # the clone's folder as the README shows it

START = re.compile(
    r"^<!-- generated: (?P<name>[a-z0-9-]+) \(transcripts (?P<fp>[0-9a-f]+|none)\) -->$"
)
END = "<!-- /generated -->"
FACTS = "facts"  # the block holding what --check verifies on transcripts of another CPU

# Blocks shown "after three reviews" (README, Views): run on a copy with these verdicts.
REVIEWED = {"review-output", "rule-stats", "agent-scorecard"}
REVIEW_COMMAND = ("call_03_threat", "CN-CT-QUIET-HOURS", "confirmed", "dialler log shows 22:30")
MORE_REVIEWS = [
    ("call_04_insult", "CN-CT-QUIET-HOURS", "false_positive"),
    ("call_07_false_legal", "CN-CF-CONNECTED-PER-DAY", "confirmed"),
]
REVIEWER = "qa-li"
# Columns wider than this (terminal cells) are cut with "…", as the duckdb shell does.
MAX_CELLS = {"critical-findings": 30}


@dataclass
class Block:
    name: str
    fingerprint: str
    start: int  # line index of the opening marker
    end: int  # line index of the closing marker
    body: list[str]


def parse(lines: list[str]) -> list[Block]:
    blocks, i = [], 0
    while i < len(lines):
        m = START.match(lines[i])
        if m:
            try:
                j = lines.index(END, i + 1)
            except ValueError:
                raise SystemExit(f"README.md line {i + 1}: {m['name']} has no {END}") from None
            blocks.append(Block(m["name"], m["fp"], i, j, lines[i + 1 : j]))
            i = j
        i += 1
    return blocks


def fences(body: list[str]) -> list[tuple[str, list[str]]]:
    """The fenced code blocks of a block's body: (info string, lines)."""
    out, i = [], 0
    while i < len(body):
        if body[i].startswith("```"):
            j = body.index("```", i + 1)
            out.append((body[i][3:].strip(), body[i + 1 : j]))
            i = j
        i += 1
    return out


# --- what the database gives ------------------------------------------------------------


def transcript_fingerprint(con) -> str:
    rows = con.execute(
        "SELECT u.call_id, u.idx, u.speaker, round(u.start_s, 2), round(u.end_s, 2), u.raw_text "
        "FROM utterances u JOIN calls c USING (call_id) WHERE c.status = 'ok' ORDER BY ALL"
    ).fetchall()
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:12]


def facts(con) -> dict[str, list[str]]:
    """Every call of the database with the categories of its findings."""
    rows = con.execute(
        "SELECT c.call_id, list(DISTINCT f.category ORDER BY f.category) "
        "FILTER (WHERE f.category IS NOT NULL) "
        "FROM calls c LEFT JOIN findings f USING (call_id) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {call_id: categories or [] for call_id, categories in rows}


def facts_lines(found: dict[str, list[str]]) -> list[str]:
    """One call a line, so a change shows as a one-line diff."""
    items = [f"  {json.dumps(c)}: {json.dumps(cats)}" for c, cats in found.items()]
    return ["{", *[f"{x}," for x in items[:-1]], *items[-1:], "}"]


def cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    if isinstance(value, datetime | date):
        return value.isoformat(" ")
    return str(value)


def box(columns: list[str], rows: list[tuple], max_cells: int = 120) -> list[str]:
    """A result drawn as the duckdb shell draws it (numbers right, text left)."""
    from rich.cells import cell_len

    def cut(text: str) -> str:
        if cell_len(text) <= max_cells:
            return text
        kept = ""
        for ch in text:
            if cell_len(kept + ch) > max_cells - 1:
                break
            kept += ch
        return kept + "…"

    number = int | float | Decimal
    numeric = [
        bool(rows) and all(isinstance(r[i], number) for r in rows if r[i] is not None)
        for i in range(len(columns))
    ]
    table = [[cut(cell(v)) for v in r] for r in rows]
    widths = [
        max([cell_len(columns[i])] + [cell_len(r[i]) for r in table]) for i in range(len(columns))
    ]

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def pad(text: str, width: int, align: str) -> str:
        gap = width - cell_len(text)
        if align == "right":
            return " " * gap + text
        if align == "center":
            return " " * (gap // 2) + text + " " * (gap - gap // 2)
        return text + " " * gap

    out = [line("┌", "┬", "┐")]
    out.append(
        "│"
        + "│".join(f" {pad(c, w, 'center')} " for c, w in zip(columns, widths, strict=True))
        + "│"
    )
    out.append(line("├", "┼", "┤"))
    for r in table:
        out.append(
            "│"
            + "│".join(
                f" {pad(v, w, 'right' if num else 'left')} "
                for v, w, num in zip(r, widths, numeric, strict=True)
            )
            + "│"
        )
    out.append(line("└", "┴", "┘"))
    return out


def demo_summary(con) -> list[str]:
    """What ``bash scripts/demo.sh`` prints at the end on a fresh clone, from its database:
    the closing summary of ``callaudit audit`` (the same formatting code) and the report
    line."""
    from audit import store
    from audit.batch import format_summary
    from audit.contact import format_checks
    from audit.manifest import load_manifest
    from audit.policy import load_policy

    recorded, failures, audio_s = con.execute(
        "SELECT count(*), list([call_id, error] ORDER BY call_id) FILTER (WHERE status = 'failed'),"
        " coalesce(sum(duration_s) FILTER (WHERE status = 'ok'), 0) "
        "FROM calls WHERE status IN ('ok', 'failed')"
    ).fetchone()
    failures = failures or []
    counts = store.table_counts(con)
    policy = load_policy("cn")
    contact = {
        rule.id: con.execute(
            "SELECT count(*) FROM findings WHERE rule_id = ? AND via = 'sql'", [rule.id]
        ).fetchone()[0]
        for rule in policy.rules
    }
    manifest = load_manifest(ROOT / MANIFEST, ROOT / "samples" / "inbox").summary()
    summary = {
        "db": f"{SHOWN_ROOT}/demo/callaudit.duckdb",
        "discovered": recorded,
        "audited": recorded - len(failures),
        "skipped": 0,
        "failed": len(failures),
        "audio_minutes": audio_s / 60,
        "db_calls": counts["calls"],
        "db_findings": counts["findings"],
        "findings_by_category": store.findings_by_category(con),
        "failures": failures,
        "manifest": {**manifest, "file": MANIFEST},
        "contact": {"policy": policy.pack, "version": policy.version, "findings": contact},
    }
    text = format_summary(summary).strip("\n") + "\n" + format_checks(summary)
    return [*text.splitlines(), f"report: {SHOWN_ROOT}/demo/report.html"]


def with_reviews(db: Path, work: Path) -> tuple[Path, list[str]]:
    """A copy of the database with the README's three reviews, and what the README's
    ``callaudit review`` command printed for the first."""
    from audit import store
    from audit.cli import main
    from audit.review import record_review

    copy = work / "reviewed.duckdb"
    shutil.copy(db, copy)

    def finding(con, call_id: str, rule_id: str) -> str:
        row = con.execute(
            "SELECT min(finding_id) FROM findings WHERE call_id = ? AND rule_id = ?",
            [call_id, rule_id],
        ).fetchone()
        if row[0] is None:
            raise SystemExit(f"the database has no {rule_id} finding on {call_id}")
        return row[0]

    con = store.connect(copy)
    try:
        first = finding(con, *REVIEW_COMMAND[:2])
        others = [(finding(con, c, r), v) for c, r, v in MORE_REVIEWS]
    finally:
        con.close()
    args = ["review", first, "--db", str(copy), "--verdict", REVIEW_COMMAND[2]]
    args += ["--note", REVIEW_COMMAND[3], "--reviewer", REVIEWER]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(args)
    if code != 0:
        raise SystemExit(f"callaudit {' '.join(args)}: exit {code}: {err.getvalue()}")
    con = store.connect(copy)
    try:
        for finding_id, verdict in others:
            record_review(con, finding_id, verdict, reviewer=REVIEWER)
    finally:
        con.close()
    return copy, out.getvalue().splitlines()


def render(blocks: list[Block], db: Path) -> dict[str, list[str]]:
    """Each block's new body."""
    import duckdb

    work = Path(tempfile.mkdtemp(prefix="readme-outputs-"))
    try:
        plain = work / "demo.duckdb"
        shutil.copy(db, plain)  # read-only work on a copy: the demo's file stays untouched
        reviewed, review_output = with_reviews(plain, work)
        bodies = {}
        for b in blocks:
            if b.name == FACTS:
                with duckdb.connect(str(plain), read_only=True) as con:
                    bodies[b.name] = facts_lines(facts(con))
                continue
            if b.name == "demo-summary":
                with duckdb.connect(str(plain), read_only=True) as con:
                    output = demo_summary(con)
            elif b.name == "review-output":
                output = review_output
            else:
                sql = [f for f in fences(b.body) if f[0] == "sql"]
                if len(sql) != 1:
                    raise SystemExit(f"README block {b.name}: expected one ```sql fence")
                query = "\n".join(sql[0][1])
                path = reviewed if b.name in REVIEWED else plain
                with duckdb.connect(str(path), read_only=True) as con:
                    cur = con.execute(query)
                    columns = [d[0] for d in cur.description]
                    output = box(columns, cur.fetchall(), MAX_CELLS.get(b.name, 120))
            bodies[b.name] = replace_output(b, output)
        return bodies
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_output(block: Block, output: list[str]) -> list[str]:
    """The block's body with its last plain ``` fence (the output) holding ``output``."""
    body, pairs, i = list(block.body), [], 0
    while i < len(body):
        if body[i].startswith("```"):
            j = body.index("```", i + 1)
            pairs.append((i, j, body[i][3:].strip()))
            i = j
        i += 1
    plain = [(i, j) for i, j, info in pairs if not info]
    if not plain:
        return [*body, "```", *output, "```"]
    i, j = plain[-1]
    return [*body[: i + 1], *output, *body[j:]]


# --- write and check --------------------------------------------------------------------


def rebuild(lines: list[str], blocks: list[Block], bodies: dict, fp: str) -> list[str]:
    out, last = [], 0
    for b in blocks:
        out += lines[last : b.start]
        out.append(f"<!-- generated: {b.name} (transcripts {fp}) -->")
        out += bodies[b.name] if b.name != FACTS else wrap_facts(bodies[b.name])
        out.append(END)
        last = b.end + 1
    return out + lines[last:]


def wrap_facts(body: list[str]) -> list[str]:
    # Hidden in the rendered README: a comment holding JSON.
    return ["<!--", *"\n".join(body).splitlines(), "-->"]


def recorded_facts(block: Block) -> dict:
    text = "\n".join(block.body).strip()
    return json.loads(text.removeprefix("<!--").removesuffix("-->"))


def labelled_categories() -> dict[str, set[str]]:
    """Each sample call's labelled categories (samples/labels.csv; empty: compliant)."""
    with open(ROOT / "samples" / "labels.csv", encoding="utf-8") as f:
        return {
            r["call_id"]: {c for c in r["expected_categories"].split(";") if c.strip()}
            for r in csv.DictReader(f)
        }


def check_promises(blocks: list[Block], db: Path) -> tuple[list[str], list[str]]:
    """What holds on any CPU: the same calls, every labelled category of each call found
    (in the database and in the README's record), compliant calls clean.  A category
    beyond a call's labels may come and go with what Whisper heard (call_05's 你得管管她
    reads as an insult on one CPU's transcript and not on another's): a note, not a
    problem.  Returns (problems, notes)."""
    import duckdb

    [block] = [b for b in blocks if b.name == FACTS] or [None]
    if block is None:
        return [f"README.md has no '{FACTS}' block to check against"], []
    want = recorded_facts(block)
    with duckdb.connect(str(db), read_only=True) as con:
        got = facts(con)
    problems, notes = [], []
    if list(got) != list(want):
        problems.append(f"calls differ: README {list(want)}, database {list(got)}")
    labels = labelled_categories()
    for call in sorted(set(want) & set(got)):
        labelled = labels.get(call, set())
        if not labelled:
            if got[call]:
                problems.append(f"compliant {call} has findings: {got[call]}")
            if want[call]:
                problems.append(f"the README shows findings on compliant {call}")
            continue
        if not labelled <= set(got[call]):
            problems.append(f"{call}: labelled {sorted(labelled)}, database {got[call]}")
        if not labelled <= set(want[call]):
            problems.append(f"{call}: README categories {want[call]} lack {sorted(labelled)}")
        if want[call] != got[call]:
            notes.append(f"{call}: README categories {want[call]}, database {got[call]}")
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the README's blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 if they differ (with a diff)")
    parser.add_argument("--db", type=Path, default=DEMO_DB, help="(default demo/callaudit.duckdb)")
    parser.add_argument("--readme", type=Path, default=README, help="(default README.md)")
    args = parser.parse_args(argv)
    import duckdb

    if not args.db.is_file():
        print(f"no demo database at {args.db}: run bash scripts/demo.sh first", file=sys.stderr)
        return 2
    lines = args.readme.read_text(encoding="utf-8").splitlines()
    blocks = parse(lines)
    if not blocks:
        print(f"{args.readme}: no <!-- generated: ... --> blocks", file=sys.stderr)
        return 2
    with duckdb.connect(str(args.db), read_only=True) as con:
        fp = transcript_fingerprint(con)
    bodies = render(blocks, args.db)
    new = rebuild(lines, blocks, bodies, fp)
    if args.write:
        args.readme.write_text("\n".join(new) + "\n", encoding="utf-8")
        print(f"{args.readme.name}: {len(blocks)} blocks written from transcripts {fp}")
        return 0
    recorded = {b.fingerprint for b in blocks}
    if recorded == {fp}:
        if new == lines:
            print(f"{args.readme.name}: {len(blocks)} blocks match the database (transcripts {fp})")
            return 0
        diff = difflib.unified_diff(lines, new, "README.md", "from the database", lineterm="")
        print("\n".join(diff))
        print(
            f"{args.readme.name}: outputs differ from the database (same transcripts {fp}): "
            "run python scripts/readme_outputs.py --write",
            file=sys.stderr,
        )
        return 1
    problems, notes = check_promises(blocks, args.db)
    print(
        f"{args.readme.name}: its exact figures were made from transcripts "
        f"{', '.join(sorted(recorded))}; this database holds transcripts {fp} (Whisper heard "
        "something differently, e.g. on another CPU): checked only the same calls, every "
        "labelled category found per call and compliant calls without findings"
    )
    for n in notes:
        print(f"  beyond the labels: {n}")
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
