"""Score the detector against a labelled file: precision, recall and F1 per category.

The input is the JSON Lines of ``callaudit detect`` (``id``, ``text``, optional
``speaker`` and ``callee_relation``) plus ``labels``, the list of categories a
compliance reviewer assigns to the utterance (empty = compliant).  Optional
``call_id`` (and ``start_s``) group consecutive utterances into one call, so the
call-level rules (``missing_disclosure``) are judged too; a call-level finding counts
for the utterance it points at (the agent's first turn).

"Any violation" asks the question a reviewer's queue depends on: does an utterance
with at least one label get at least one finding, and does a compliant one get none?
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from audit.categories import CATEGORIES
from audit.corpus import Example, load_examples
from audit.detect import Detector, UtteranceIn, get_detector

if TYPE_CHECKING:
    from audit.learned import LearnedStage

ANY = "any violation"


@dataclass(frozen=True)
class Score:
    """Counts for one category; the ratios are None where their denominator is 0."""

    name: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def predicted(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float | None:
        return self.tp / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.support if self.support else None

    @property
    def f1(self) -> float | None:
        if not self.support and not self.predicted:
            return None  # nothing labelled, nothing found: no evidence either way
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def as_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
            "precision": r(self.precision),
            "recall": r(self.recall),
            "f1": r(self.f1),
        }


@dataclass
class Report:
    examples: int
    compliant: int
    categories: dict[str, Score]
    any: Score
    mistakes: list[dict[str, object]] = field(default_factory=list)
    note: str | None = None  # how the learned stage was scored, when it was on

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "examples": self.examples,
            "compliant": self.compliant,
            "any_violation": self.any.as_dict(),
            "categories": {name: s.as_dict() for name, s in self.categories.items()},
            "mistakes": self.mistakes,
        }
        if self.note:
            out["note"] = self.note
        return out


def predict(
    detector: Detector, examples: Sequence[Example], learned: LearnedStage | None = None
) -> list[set[str]]:
    """Categories the detector reports per example (utterance rules, the learned stage
    when given, then call rules).

    An example that is itself training data of the learned stage is scored by the model
    fitted without its fold (cross-validated, not memorised).
    """
    if learned is None:
        found = [
            {h.category for h in detector.detect(e.text, e.speaker, e.callee)} for e in examples
        ]
    else:
        extra = learned.hits_batch(
            [e.text for e in examples],
            [e.speaker for e in examples],
            [e.callee for e in examples],
            cross_validated=True,
        )
        found = [
            {h.category for h in detector.detect_with(e.text, more, e.speaker, e.callee)}
            for e, more in zip(examples, extra, strict=True)
        ]
    calls: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        if e.call_id is not None:
            calls.setdefault(e.call_id, []).append(i)
    for members in calls.values():
        utterances = [
            UtteranceIn(
                idx=k,
                speaker=examples[i].speaker,
                # Without times, turns are taken as 5 s apart, in file order.
                start_s=examples[i].start_s if examples[i].start_s is not None else 5.0 * k,
                end_s=(examples[i].start_s if examples[i].start_s is not None else 5.0 * k) + 4,
                text=examples[i].text,
            )
            for k, i in enumerate(members)
        ]
        for hit in detector.detect_call(utterances):
            k = hit.utterance_idx if hit.utterance_idx is not None else 0
            found[members[k]].add(hit.category)
    return found


def score(
    gold: Sequence[Iterable[str]],
    predicted: Sequence[Iterable[str]],
    categories: Iterable[str] = (),
) -> tuple[dict[str, Score], Score]:
    """Per-category and any-violation counts for aligned gold/predicted label sets."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted must have the same length")
    names = set(categories)
    counts: dict[str, list[int]] = {}
    any_counts = [0, 0, 0]
    for g_raw, p_raw in zip(gold, predicted, strict=True):
        g, p = set(g_raw), set(p_raw)
        names |= g | p
        for c in g | p:
            tp_fp_fn = counts.setdefault(c, [0, 0, 0])
            if c in g and c in p:
                tp_fp_fn[0] += 1
            elif c in p:
                tp_fp_fn[1] += 1
            else:
                tp_fp_fn[2] += 1
        if g and p:
            any_counts[0] += 1
        elif p:
            any_counts[1] += 1
        elif g:
            any_counts[2] += 1
    order = {c: i for i, c in enumerate(CATEGORIES)}
    per_category = {
        c: Score(c, *counts.get(c, [0, 0, 0]))
        for c in sorted(names, key=lambda c: (order.get(c, len(order)), c))
    }
    return per_category, Score(ANY, *any_counts)


def evaluate(
    detector: Detector, examples: Sequence[Example], learned: LearnedStage | None = None
) -> Report:
    predicted = predict(detector, examples, learned)
    # Every category the catalogue can report is listed, found or not.
    categories = {r.category for r in (*detector.catalogue.rules, *detector.catalogue.call_rules)}
    per_category, any_score = score([e.labels for e in examples], predicted, categories)
    mistakes = [
        {
            "id": e.id,
            "text": e.text,
            "speaker": e.speaker,
            "labels": sorted(e.labels),
            "found": sorted(p),
        }
        for e, p in zip(examples, predicted, strict=True)
        if set(e.labels) != p
    ]
    return Report(
        examples=len(examples),
        compliant=sum(1 for e in examples if not e.labels),
        categories=per_category,
        any=any_score,
        mistakes=mistakes,
        note=None if learned is None else _learned_note(learned, examples),
    )


def _learned_note(learned: LearnedStage, examples: Sequence[Example]) -> str:
    seen = sum(1 for e in examples if learned.is_training_text(e.text))
    how = (
        f"{seen} of {len(examples)} utterances are training data of the learned stage, "
        f"scored {learned.options.folds}-fold cross-validated (fitted without their fold)"
        if seen
        else "no utterance is training data of the learned stage"
    )
    return f"rules + learned stage {learned.version}; {how}"


def evaluate_file(path: str | Path, rules: str = "cn", learned: bool = True) -> Report:
    """Load a labelled JSONL file and score the catalogue ``rules`` (and, with
    ``learned``, the learned stage) on it."""
    examples = load_examples(path)  # a bad file fails before the detector is built
    stage = None
    if learned:
        from audit.learned import get_learned

        stage = get_learned()
    return evaluate(get_detector(rules), examples, stage)


def format_report(report: Report, show_mistakes: bool = False) -> str:
    def f(x: float | None) -> str:
        return "    -" if x is None else f"{x:5.3f}"

    lines = [
        f"{report.examples} utterances, {report.compliant} compliant "
        f"({report.compliant / max(1, report.examples):.0%})",
        *([report.note] if report.note else []),
        "",
        f"{'category':<24} {'prec':>5} {'rec':>5} {'F1':>5} {'TP':>4} {'FP':>4} {'FN':>4} "
        f"{'support':>7}",
    ]
    for s in (*report.categories.values(), report.any):
        if s is report.any:
            lines.append("-" * 63)
        lines.append(
            f"{s.name:<24} {f(s.precision)} {f(s.recall)} {f(s.f1)} "
            f"{s.tp:>4} {s.fp:>4} {s.fn:>4} {s.support:>7}"
        )
    if show_mistakes and report.mistakes:
        lines += ["", f"{len(report.mistakes)} utterances where findings and labels differ:"]
        for m in report.mistakes:
            lines.append(
                f"  {m['id']} [{m['speaker']}] labels={m['labels']} found={m['found']}: {m['text']}"
            )
    return "\n".join(lines)
