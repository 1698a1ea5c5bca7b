"""Who answered: a third party recognised from the conversation itself.

A call record may not say who answered (no manifest, or ``callee_relation`` unknown);
the conversation often does: the callee says they are the debtor's mother or colleague
(我是他妈妈, 你打错了), or the agent asks who they are to the debtor and asks them to pass
a message on.  Then the third-party rules apply (any mention of the debt to them is a
disclosure), and the inference is stored on the call with its evidence.

The signs are data (``audit/data/third_party.yaml``).  Mono recordings give no speaker,
so nothing is inferred from them: a guess would put words in the wrong mouth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from audit.normalize import normalize

SIGNS_FILE = Path(__file__).resolve().parent / "data" / "third_party.yaml"


@dataclass(frozen=True)
class Inference:
    relation: str  # third_party
    evidence: str  # who said what, when: shown on the call and in findings' context

    @property
    def note(self) -> str:
        """What ``calls.callee_inferred`` stores."""
        return f"{self.relation}: {self.evidence}"


def resolve_callee(recorded: str | None, utterances: Sequence) -> tuple[str, Inference | None]:
    """The relation detection uses: the call record's when it says who answered, else
    what the conversation shows (with the inference, to store), else ``unknown``."""
    if recorded not in ("unknown", "", None):
        return recorded, None
    inferred = infer_callee(utterances)
    return (inferred.relation, inferred) if inferred else ("unknown", None)


@lru_cache(maxsize=1)
def signs(path: Path = SIGNS_FILE) -> dict[str, tuple[str, ...]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, tuple[str, ...]] = {}
    for key in ("callee_says", "agent_asks"):
        phrases: list[str] = []
        for group in doc.get(key) or ():
            phrases.extend(group if isinstance(group, list) else [group])
        out[key] = tuple(str(p) for p in phrases)
    return out


def _first(phrases: Sequence[str], text: str) -> str | None:
    return next((p for p in phrases if p in text), None)


def infer_callee(utterances: Sequence) -> Inference | None:
    """A third party when the callee says so, or the agent asks twice as one would ask
    a third party; None when nothing in the call says who answered."""
    s = signs()
    asks = []
    for u in utterances:
        if getattr(u, "asr_flag", None) or not u.text:
            continue
        text = normalize(u.text)
        if u.speaker == "customer":
            if _first(s["callee_says"], text):
                return Inference("third_party", _evidence(u, text))
        elif u.speaker == "agent":
            if _first(s["agent_asks"], text):
                asks.append(_evidence(u, text))
    if len(asks) >= 2:
        return Inference("third_party", "; ".join(asks[:2]))
    return None


def _evidence(u, text: str) -> str:
    """Who said it, when, and what (the utterance, as stored: PII is masked later)."""
    return f"{u.speaker} {u.start_s:.1f}-{u.end_s:.1f} s: “{text[:80]}”"
