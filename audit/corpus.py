"""Labelled utterances: the JSON Lines files the detector is trained and scored on.

One object per line: ``text``, ``labels`` (categories a reviewer assigns; ``[]`` =
compliant), optional ``id``, ``speaker``, ``callee_relation``, ``register`` (the kind of
language: live_call, sms_template, ...), and ``call_id`` / ``start_s`` grouping the turns of
one call.  Both the evaluator and the learned stage read them through this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from audit.categories import CATEGORIES, SPEAKERS


class LabelledFileError(ValueError):
    """A line of the labelled file is malformed; the message names the line."""


@dataclass(frozen=True)
class Example:
    id: object
    text: str
    speaker: str = "unknown"
    callee: str = "unknown"
    labels: frozenset[str] = frozenset()
    call_id: str | None = None
    start_s: float | None = None
    register: str = ""
    # ASR-in-the-loop rows: the reference text Whisper heard this from (cross-validation
    # keeps a sentence and its transcripts in one fold) and that text's register.
    source_text: str | None = None
    source_register: str | None = None

    @property
    def group(self) -> str:
        """What must stay together in one cross-validation fold."""
        return self.source_text or self.text


def parse_examples(lines: Iterable[str], origin: str = "<input>") -> list[Example]:
    """Parse labelled JSON Lines; raises LabelledFileError naming the bad line."""
    examples: list[Example] = []
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        where = f"{origin} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledFileError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise LabelledFileError(f"{where}: expected an object with a string 'text'")
        labels = obj.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise LabelledFileError(f"{where}: 'labels' must be a list of categories")
        unknown = [x for x in labels if x not in CATEGORIES]
        if unknown:
            raise LabelledFileError(f"{where}: unknown categories {unknown}")
        speaker = obj.get("speaker") or "unknown"
        if speaker not in SPEAKERS:
            raise LabelledFileError(f"{where}: unknown speaker {speaker!r}")
        start = obj.get("start_s")
        examples.append(
            Example(
                id=obj.get("id", lineno),
                text=obj["text"],
                speaker=speaker,
                callee=obj.get("callee_relation") or "unknown",
                labels=frozenset(labels),
                call_id=None if obj.get("call_id") is None else str(obj["call_id"]),
                start_s=None if start is None else float(start),
                register=str(obj.get("register") or ""),
                source_text=obj.get("source_text") or None,
                source_register=obj.get("source_register") or None,
            )
        )
    return examples


def load_examples(path: str | Path) -> list[Example]:
    p = Path(path)
    with open(p, encoding="utf-8") as f:
        return parse_examples(f, origin=p.name)
