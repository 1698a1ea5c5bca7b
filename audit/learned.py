"""The learned stage: what the rules cannot enumerate, caught by a classifier.

The rule catalogue is precise and explains itself, but it only knows the phrasing it was
written against: open-ended abuse, veiled threats, polite disclosure and letter templates
slip past it.  This stage scores each agent (or mono) utterance per category with a
linear classifier trained on the labelled corpus that ships inside the package
(``audit/data/corpus/*.jsonl``, see ``eval/README.md``):

* features: character 1–3-grams of the canonical text, and 1–3-grams of its toneless,
  *fuzzy* pinyin (zh=z, ch=c, sh=s, n=l, -ng=-n) so that Whisper's homophones
  (预期 for 逾期, 环款 for 还款, 做劳 for 坐牢) share the features of the words meant;
  plus a marker when the call record (or the conversation) says the callee is a third
  party.  Rows are L2-normalised; n-grams seen fewer than ``min_count`` times are dropped;
* training rows: each corpus row, and ``courtesy_copies`` copies of it inside generic
  service courtesy ("您好，…，请您理解。"), so that politeness, common to most lawful
  rows, does not become evidence of lawfulness (a veiled threat said politely);
* classifier: one L2-regularised logistic regression per category, trained jointly
  (full-batch Adam over a scipy sparse matrix);
* thresholds: per category, from k-fold cross-validation on the corpus: the lowest score
  whose out-of-fold precision is still >= ``target_precision`` (a category that cannot
  reach it is switched off), so the stage holds precision on the compliant hard negatives.

An utterance is scored whole and sentence by sentence (Whisper merges turns into long
utterances); the best sentence is the finding's span and its score is kept on the
finding.  The fitted model is cached under ``<cache>/learned/`` keyed by the corpus and
the recipe, and its version joins the catalogue's in ``rules_version`` so a new corpus or
recipe makes ``reaudit`` re-detect.

``cross_validated`` scoring (used by ``callaudit eval``) scores a text that is itself in
the corpus with the model fitted without its fold, so in-sample figures are out-of-fold.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix

from audit.categories import CATEGORIES as ALL_CATEGORIES
from audit.corpus import Example, load_examples
from audit.model import cache_root
from audit.normalize import normalize
from audit.phonetic import TELEPHONE_INITIALS, fuzzy_syllable
from audit.pinyin import Style, lazy_pinyin

CORPUS_DIR = Path(__file__).resolve().parent / "data" / "corpus"
# What wording alone can show.  pii_exposure (validated numbers), missing_disclosure (a
# whole-call check) and the contact categories (call records) stay with the rules; conduct
# is measured from the audio (audit/conduct.py).
_RULE_ONLY = (
    "pii_exposure",
    "missing_disclosure",
    "contact_time",
    "contact_frequency",
    "conduct",
)
CATEGORIES: tuple[str, ...] = tuple(c for c in ALL_CATEGORIES if c not in _RULE_ONLY)
SPEAKERS = frozenset({"agent", "unknown"})
RECIPE = "ml-5"  # bump when featurisation or fitting changes: cached models are keyed by it
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;\n]*")
_NOT_TEXT = re.compile(r"[\s，,。！？!?；;：:、“”\"'‘’（）()《》【】\[\]…—\-~]+")
# The classifier also folds r into l (日/立 on a noisy line).
_FUZZY_INITIALS = (*TELEPHONE_INITIALS, ("r", "l"))
THIRD_PARTY_FEATURE = "@callee=third_party"
# Words after a negation, up to a word that starts a new predicate, are features of their
# own: 我们不会去你家 is not 我们会去你家.  The breakers keep 不还钱就让你坐牢 a threat
# (its 不 negates the debtor's 还钱, not the 坐牢).
NEGATION_CUES = (
    "不会",
    "不要",
    "千万别",
    "别",
    "没有",
    "没",
    "不",
    "勿",
    "避免",
    "不能",
    "不得",
    "绝不",
    "决不",
    "不用",
    "无需",
    "不必",
    "并非",
    "不是",
    "谁说",
    "吓唬",
    "不该",
    "禁止",
    "严禁",
)
SCOPE_BREAKERS = (
    "就",
    "否则",
    "不然",
    "的话",
    "才",
    "那",
    "但",
    "可是",
    "还钱",
    "还款",
    "还清",
    "还上",
)
_NEGATION = re.compile("|".join(sorted(NEGATION_CUES, key=len, reverse=True)))
_BREAKER = re.compile("|".join(sorted(SCOPE_BREAKERS, key=len, reverse=True)))


# Generic service courtesy, written for this recipe (no corpus row).  Most compliant rows
# are polite and most violating rows are not, so a classifier learns "polite means
# lawful" and misses a veiled threat said politely.  Every row also trains inside one
# of these frames, so courtesy carries no weight either way.
COURTESY_PREFIXES = (
    "您好，",
    "不好意思打扰您了，",
    "跟您说一下，",
    "麻烦您听我说完，",
    "请您理解，",
    "先生您好，",
    "女士您好，",
    "打扰您一下，",
    "跟您商量个事，",
    "您先别着急，",
    "",
)
COURTESY_SUFFIXES = (
    "，谢谢您的配合。",
    "，请您理解。",
    "，您看可以吗？",
    "，辛苦您了。",
    "，麻烦您了。",
    "，祝您生活愉快。",
    "，感谢您的支持。",
    "",
)


def courtesy_frame(text: str, copy: int = 0) -> str:
    """``text`` inside a courtesy frame chosen by a hash of the text (stable)."""
    h = int(hashlib.md5(f"{copy}|{text}".encode()).hexdigest()[:8], 16)
    prefix = COURTESY_PREFIXES[h % len(COURTESY_PREFIXES)]
    suffix = COURTESY_SUFFIXES[(h // 97) % len(COURTESY_SUFFIXES)]
    if not prefix and not suffix:
        prefix = COURTESY_PREFIXES[0]
    return f"{prefix}{text.rstrip('。.！!')}{suffix}"


class LearnedError(RuntimeError):
    """The learned stage can't be built; the message says what is missing."""


@dataclass(frozen=True)
class LearnedOptions:
    char_ngrams: tuple[int, int] = (1, 3)
    pinyin_ngrams: tuple[int, int] = (1, 3)
    min_count: int = 2
    l2: float = 1e-4
    iterations: int = 200
    learning_rate: float = 0.08
    folds: int = 5
    target_precision: float = 0.90
    # Per-category exceptions to target_precision, as (category, precision) pairs.
    # Threats are the most open-ended wording and the gravest finding: at 0.85 their
    # out-of-fold recall rises 0.65 -> 0.73 (transcripts 0.60 -> 0.68) while no more
    # lawful look-alikes are flagged (18 of 703 either way).
    precision_by_category: tuple[tuple[str, float], ...] = (("threat", 0.85),)
    min_threshold: float = 0.35
    min_predicted: int = 5  # a threshold must keep at least this many out-of-fold hits
    hard_negative_weight: float = 4.0  # loss weight of compliant hard_negative rows
    # Extra copies of each row inside a courtesy frame (COURTESY_PREFIXES): 2 took
    # polite_violating's left-out recall 0.59 -> 0.63 and lawful look-alikes flagged
    # 18 -> 13 of 703.
    courtesy_copies: int = 2
    # One more column, any violation at all, fitted on every category's positives pooled.
    # Where no category reaches its threshold but this column reaches its own (the lowest
    # whose out-of-fold precision, on the rows no category catches, is still >= this; the
    # product's any-violation precision goal), the category closest to its threshold is
    # reported.  0: off.  At 0.95 cross-validated recall 0.867 -> 0.884, transcripts
    # 0.803 -> 0.823 (precision 0.934 both), lawful look-alikes flagged unchanged.
    any_fallback_precision: float = 0.95


# -- features ------------------------------------------------------------------------------
def _pinyin(text: str) -> list[str]:
    out = []
    for token in lazy_pinyin(text, style=Style.NORMAL, errors=lambda s: list(s)):
        out.append(
            fuzzy_syllable(token, _FUZZY_INITIALS) if token.isascii() and token.isalpha() else token
        )
    return out


def features(
    text: str, callee: str = "unknown", options: LearnedOptions | None = None
) -> list[str]:
    """The feature names of one text (with repeats: counts matter)."""
    options = options or LearnedOptions()
    core = _NOT_TEXT.sub(" ", normalize(text)).strip()
    out: list[str] = []
    for chunk in core.split(" "):
        if not chunk:
            continue
        padded = f"^{chunk}$"
        negated = _negated(padded)
        lo, hi = options.char_ngrams
        for n in range(lo, hi + 1):
            out.extend(
                ("n" if negated[i] else "c") + padded[i : i + n] for i in range(len(padded) - n + 1)
            )
        syllables = ["^", *_pinyin(chunk), "$"]
        if len(syllables) != len(padded):
            negated = [False] * len(syllables)
        lo, hi = options.pinyin_ngrams
        for n in range(lo, hi + 1):
            out.extend(
                ("q" if negated[i] else "p") + " ".join(syllables[i : i + n])
                for i in range(len(syllables) - n + 1)
            )
    if callee == "third_party":
        out.append(THIRD_PARTY_FEATURE)
    return out


def _negated(text: str) -> list[bool]:
    """Per character: inside the scope of a negation (after the cue, before a breaker)."""
    marks = [False] * len(text)
    for m in _NEGATION.finditer(text):
        end = len(text)
        b = _BREAKER.search(text, m.end())
        if b:
            end = b.start()
        for i in range(m.end(), end):
            marks[i] = True
    return marks


class _Sparse:
    """Rows of (feature index, weight), L2-normalised: the only matrix shape needed."""

    def __init__(self, rows: Sequence[dict[int, float]], n_features: int):
        self.n_rows = len(rows)
        self.n_features = n_features
        lengths = [len(r) for r in rows]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=int(indptr[-1]))
        values = np.fromiter(
            (v for r in rows for v in r.values()), dtype=np.float32, count=int(indptr[-1])
        )
        row_of = np.repeat(np.arange(self.n_rows), lengths)
        norms = np.sqrt(np.bincount(row_of, weights=values**2, minlength=self.n_rows))
        values = (values / np.maximum(norms, 1e-12)[row_of]).astype(np.float32)
        self.matrix = csr_matrix((values, indices, indptr), shape=(self.n_rows, n_features))
        self._transposed: csr_matrix | None = None  # built when fitting needs it

    def dot(self, W: np.ndarray) -> np.ndarray:
        """(rows x features) @ W, W: (features x C)."""
        return np.asarray(self.matrix @ W, dtype=np.float32)

    def tdot(self, R: np.ndarray) -> np.ndarray:
        """(rows x features).T @ R, R: (rows x C)."""
        if self._transposed is None:
            self._transposed = self.matrix.T.tocsr()
        return np.asarray(self._transposed @ R, dtype=np.float32)


class Vocabulary:
    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}

    @classmethod
    def fit(cls, featurised: Sequence[list[str]], min_count: int) -> Vocabulary:
        counts: dict[str, int] = {}
        for feats in featurised:
            for f in set(feats):
                counts[f] = counts.get(f, 0) + 1
        return cls(sorted(f for f, k in counts.items() if k >= min_count))

    def matrix(self, featurised: Sequence[list[str]]) -> _Sparse:
        rows = []
        for feats in featurised:
            row: dict[int, float] = {}
            for f in feats:
                i = self.index.get(f)
                if i is not None:
                    row[i] = row.get(i, 0.0) + 1.0
            rows.append({i: float(np.log1p(v)) for i, v in row.items()})
        return _Sparse(rows, len(self.names))


# -- fitting -------------------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def fit_logistic(
    X: _Sparse, Y: np.ndarray, options: LearnedOptions, row_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (features x C) and biases (C) of one logistic regression per column of Y.

    Positives are up-weighted to balance each category (most rows are negatives for any
    one category), so scores are comparable across categories before thresholds;
    ``row_weight`` weighs whole rows (lawful look-alikes count more).
    """
    n, C = Y.shape
    pos = Y.sum(0)
    w_pos = np.where(pos > 0, (n - pos) / np.maximum(pos, 1), 1.0) ** 0.5
    sample_w = np.where(Y > 0, w_pos, 1.0) / n
    if row_weight is not None:
        sample_w = sample_w * row_weight[:, None]
    W = np.zeros((X.n_features, C), dtype=np.float32)
    b = np.log(np.maximum(pos, 1) / np.maximum(n - pos, 1))
    mW, vW = np.zeros_like(W), np.zeros_like(W)
    mb, vb = np.zeros(C), np.zeros(C)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, options.iterations + 1):
        P = _sigmoid(X.dot(W) + b)
        R = ((P - Y) * sample_w).astype(np.float32)
        gW = X.tdot(R) + options.l2 * W
        gb = R.sum(0)
        mW = beta1 * mW + (1 - beta1) * gW
        vW = beta2 * vW + (1 - beta2) * gW**2
        mb = beta1 * mb + (1 - beta1) * gb
        vb = beta2 * vb + (1 - beta2) * gb**2
        lr = options.learning_rate * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        W -= (lr * mW / (np.sqrt(vW) + eps)).astype(np.float32)
        b -= lr * mb / (np.sqrt(vb) + eps)
    return W, b


def choose_threshold(
    scores: np.ndarray,
    y: np.ndarray,
    options: LearnedOptions,
    category: str = "",
    target: float | None = None,
) -> float:
    """Lowest score whose out-of-fold precision is still >= the target (> 1: off)."""
    if target is None:
        target = dict(options.precision_by_category).get(category, options.target_precision)
    order = np.argsort(-scores, kind="stable")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    ok = [k for k in range(options.min_predicted - 1, len(hits)) if precision[k] >= target]
    if not ok:
        return 2.0
    return max(options.min_threshold, float(scores[order][max(ok)]))


@dataclass
class Model:
    vocabulary: Vocabulary
    W: np.ndarray
    b: np.ndarray
    thresholds: np.ndarray  # per category; > 1 = off

    def scores(self, featurised: Sequence[list[str]]) -> np.ndarray:
        if not featurised:
            return np.zeros((0, len(CATEGORIES)))
        return _sigmoid(self.vocabulary.matrix(featurised).dot(self.W) + self.b)

    def save(self, path: Path) -> None:
        def write(f) -> None:
            np.savez_compressed(
                f,
                names=np.array(self.vocabulary.names, dtype=object),
                W=self.W.astype(np.float32),
                b=self.b,
                thresholds=self.thresholds,
            )

        _atomic_save(path, write)

    @classmethod
    def load(cls, path: Path) -> Model:
        with np.load(path, allow_pickle=True) as z:
            return cls(
                Vocabulary(list(z["names"])),
                z["W"].astype(np.float64),
                z["b"],
                z["thresholds"],
            )


@dataclass(frozen=True)
class TrainingSet:
    examples: tuple[Example, ...]
    labels: np.ndarray  # (n, C)
    digest: str
    options: LearnedOptions

    # Featurised only when a model must be fitted: a cached model needs neither (their
    # strings would cost hundreds of MB in every audit process).
    @cached_property
    def featurised(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(features(e.text, e.callee, self.options)) for e in self.examples)

    @cached_property
    def framed(self) -> tuple[tuple[tuple[str, ...], ...], ...]:
        """Per courtesy copy, per row: the features of the row inside a courtesy frame."""
        return tuple(
            tuple(
                tuple(features(courtesy_frame(e.text, k), e.callee, self.options))
                for e in self.examples
            )
            for k in range(self.options.courtesy_copies)
        )


def training_set(
    paths: Sequence[Path] | None = None,
    options: LearnedOptions | None = None,
    keep: Callable[[Example], bool] | None = None,
) -> TrainingSet:
    """The agent/unknown rows of the shipped corpus (or of ``paths``); ``keep`` selects
    rows (leave-one-register-out benchmarks train without one register)."""
    options = options or LearnedOptions()
    paths = sorted(CORPUS_DIR.glob("*.jsonl")) if paths is None else list(paths)
    if not paths:
        raise LearnedError(f"no training data: {CORPUS_DIR} has no *.jsonl files")
    examples: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for p in paths:
        for e in load_examples(p):
            key = (e.text, e.callee)
            if e.speaker in SPEAKERS and key not in seen and (keep is None or keep(e)):
                seen.add(key)
                examples.append(e)
    labels = np.array([[float(c in e.labels) for c in CATEGORIES] for e in examples])
    payload = json.dumps(
        [[e.text, e.callee, sorted(e.labels)] for e in examples] + [asdict(options), RECIPE],
        ensure_ascii=False,
    )
    return TrainingSet(
        examples=tuple(examples),
        labels=labels,
        digest=hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12],
        options=options,
    )


def fold_of(text: str, folds: int) -> int:
    """A text's cross-validation fold: stable, and the same for every copy of the text."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16) % folds


def fit_all(ts: TrainingSet, options: LearnedOptions) -> tuple[Model, list[Model]]:
    """The full model and one model per cross-validation fold (fitted without it).

    The fold models' out-of-fold scores choose the thresholds, which all models share:
    one number per category (and one for the pooled any-violation column) is tuned on
    labels the fold model did not train on, so the cross-validated figures of
    ``callaudit eval`` are honest up to those numbers.
    """
    n = len(ts.examples)
    folds = np.array([fold_of(e.group, options.folds) for e in ts.examples])
    targets = _targets(ts.labels, options)
    oof = np.zeros(targets.shape)
    fold_models = []
    for k in range(options.folds):
        model = _fit_rows(ts, np.flatnonzero(folds != k), options)
        held = np.flatnonzero(folds == k)
        oof[held] = model.scores([list(ts.featurised[i]) for i in held])
        fold_models.append(model)
    thresholds = np.array(
        [
            choose_threshold(oof[:, c], ts.labels[:, c], options, CATEGORIES[c])
            for c in range(len(CATEGORIES))
        ]
    )
    if targets.shape[1] > len(CATEGORIES):
        # Judged only where it would speak: rows no category catches out of fold.
        rest = (oof[:, : len(CATEGORIES)] < thresholds).all(axis=1)
        any_threshold = choose_threshold(
            oof[rest, -1], targets[rest, -1], options, target=options.any_fallback_precision
        )
        thresholds = np.append(thresholds, any_threshold)
    full = _fit_rows(ts, np.arange(n), options)
    for model in (full, *fold_models):
        model.thresholds = thresholds
    return full, fold_models


def _fit_rows(ts: TrainingSet, rows: np.ndarray, options: LearnedOptions) -> Model:
    vocabulary = Vocabulary.fit([ts.featurised[i] for i in rows], options.min_count)
    # A lawful look-alike misread costs a reviewer's time on every call that says it.
    weight = np.array(
        [
            options.hard_negative_weight
            if ts.examples[i].register == "hard_negative" and not ts.examples[i].labels
            else 1.0
            for i in rows
        ]
    )
    featurised = [ts.featurised[i] for i in rows]
    targets = _targets(ts.labels, options)[rows]
    labels = targets
    for copy in ts.framed:
        featurised += [copy[i] for i in rows]
        labels = np.vstack([labels, targets])
        weight = np.concatenate([weight, weight[: len(rows)]])
    W, b = fit_logistic(vocabulary.matrix(featurised), labels, options, weight)
    return Model(vocabulary, W, b, np.full(labels.shape[1], 2.0))


def _targets(labels: np.ndarray, options: LearnedOptions) -> np.ndarray:
    """The fitted columns: one per category, then any violation when the fallback is on."""
    if options.any_fallback_precision <= 0:
        return labels
    return np.hstack([labels, labels.max(axis=1, keepdims=True)])


def _atomic_save(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the stage -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LearnedHit:
    category: str
    start: int
    end: int
    score: float
    threshold: float


def sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence, surrounding spaces left out."""
    spans = []
    for m in _SENTENCE.finditer(text):
        s, e = m.start(), m.end()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
    return spans


def units_of(text: str) -> list[tuple[int, int]]:
    """The spans an utterance is scored on: the whole, and each sentence when there are
    several (Whisper merges turns into long utterances)."""
    spans = sentences(text)
    return [(0, len(text)), *(spans if len(spans) > 1 else [])]


class LearnedStage:
    """Fitted once per corpus and recipe (then loaded from the cache); thread-safe."""

    def __init__(
        self,
        paths: Sequence[Path] | None = None,
        options: LearnedOptions | None = None,
        keep: Callable[[Example], bool] | None = None,
    ):
        self.options = options or LearnedOptions()
        self.training = training_set(paths, self.options, keep)
        self.version = f"{RECIPE}-{self.training.digest}"
        self._lock = threading.Lock()
        self._models: dict[int | None, Model] = {}
        # Every text of the corpus, and the reference of every transcript, to its fold.
        self._fold_of = {
            e.text: fold_of(e.group, self.options.folds) for e in self.training.examples
        }
        for e in self.training.examples:
            self._fold_of.setdefault(e.group, fold_of(e.group, self.options.folds))
        self.model = self._model(None)

    def _model(self, fold: int | None) -> Model:
        """The full model (fold None) or the one fitted without fold ``fold``; each is
        loaded from the cache when first needed (an audit needs only the full one)."""
        with self._lock:
            if fold not in self._models:
                try:
                    self._models[fold] = Model.load(self._path(fold))
                except (OSError, ValueError, KeyError):
                    self._models = self._fit_and_save()  # not cached yet, or damaged
            return self._models[fold]

    def _path(self, fold: int | None) -> Path:
        name = "all" if fold is None else f"fold{fold}"
        return cache_root() / "learned" / f"{self.version}-{name}.npz"

    def _fit_and_save(self) -> dict[int | None, Model]:
        full, fold_models = fit_all(self.training, self.options)
        models: dict[int | None, Model] = {None: full, **dict(enumerate(fold_models))}
        for k, model in models.items():
            model.save(self._path(k))
        return models

    def refit_without(self, leave_out: Callable[[Example], bool]) -> LearnedStage:
        """A stage fitted on the corpus minus the rows ``leave_out`` selects, with this
        stage's thresholds (one fit, not six: for leave-one-register-out benchmarks)."""
        stage = object.__new__(LearnedStage)
        stage.options = self.options
        stage.training = training_set(None, self.options, lambda e: not leave_out(e))
        stage.version = f"{self.version}-without-{stage.training.digest}"
        stage._lock = threading.Lock()
        stage._fold_of = {e.text: 0 for e in stage.training.examples}
        model = _fit_rows(stage.training, np.arange(len(stage.training.examples)), self.options)
        model.thresholds = self.model.thresholds
        stage._models = {None: model, **dict.fromkeys(range(self.options.folds), model)}
        stage.model = model
        return stage

    @property
    def thresholds(self) -> dict[str, float]:
        names = (*CATEGORIES, "any")[: len(self.model.thresholds)]
        return dict(zip(names, self.model.thresholds.tolist(), strict=True))

    def is_training_text(self, text: str) -> bool:
        return text in self._fold_of

    def score_with_fold_of(self, text: str, group: str) -> None:
        """Cross-validated scoring of ``text`` uses the model fitted without ``group``'s
        fold: for a rewritten training text (a transcript after correction) in benchmarks."""
        self._fold_of.setdefault(text, fold_of(group, self.options.folds))

    def hits_batch(
        self,
        texts: Sequence[str],
        speakers: Sequence[str],
        callees: Sequence[str] | None = None,
        cross_validated: bool = False,
    ) -> list[list[LearnedHit]]:
        """Per text, the categories scored at or above their threshold, with the best
        sentence as span.  Customer speech is never scored."""
        callees = callees if callees is not None else ["unknown"] * len(texts)
        out: list[list[LearnedHit]] = [[] for _ in texts]
        units: list[tuple[int, int, int]] = []  # (text index, start, end)
        for i, (text, speaker) in enumerate(zip(texts, speakers, strict=True)):
            if speaker not in SPEAKERS or not text.strip():
                continue
            units.extend((i, s, e) for s, e in units_of(text))
        if not units:
            return out
        by_model: dict[int | None, list[int]] = {}
        for u, (i, _, _) in enumerate(units):
            fold = self._fold_of.get(texts[i]) if cross_validated else None
            by_model.setdefault(fold, []).append(u)
        width = len(self.model.thresholds)
        scores = np.zeros((len(units), width))
        thresholds = np.zeros((len(units), width))
        for fold, members in by_model.items():
            model = self._model(fold)
            feats = [
                features(
                    texts[units[u][0]][units[u][1] : units[u][2]],
                    callees[units[u][0]],
                    self.options,
                )
                for u in members
            ]
            scores[members] = model.scores(feats)
            thresholds[members] = model.thresholds
        # (text, category) -> (score, unit, threshold passed) of its best unit
        best: dict[tuple[int, int], tuple[float, int, float]] = {}
        for u, (i, _, _) in enumerate(units):
            for c in range(len(CATEGORIES)):
                score = float(scores[u, c])
                if score >= thresholds[u, c] and ((i, c) not in best or score > best[(i, c)][0]):
                    best[(i, c)] = (score, u, float(thresholds[u, c]))
        if width > len(CATEGORIES):
            best.update(_any_violation_fallback(units, scores, thresholds, {i for i, _ in best}))
        for (i, c), (score, u, threshold) in sorted(best.items()):
            _, s, e = units[u]
            out[i].append(LearnedHit(CATEGORIES[c], s, e, score, threshold))
        return out


def _any_violation_fallback(
    units: Sequence[tuple[int, int, int]],
    scores: np.ndarray,
    thresholds: np.ndarray,
    caught: set[int],
) -> dict[tuple[int, int], tuple[float, int, float]]:
    """Hits for texts no category caught but the any-violation column did.

    Which category is a separate question from whether there is a violation: a veiled
    warning may read as half threat, half harassment and pass neither threshold.  The
    text's unit with the highest any-violation score names the category closest to its
    own threshold; the hit carries the any-violation score and threshold it passed.
    """
    C = len(CATEGORIES)
    strongest: dict[int, int] = {}
    for u, (i, _, _) in enumerate(units):
        if i in caught or scores[u, C] < thresholds[u, C]:
            continue
        if i not in strongest or scores[u, C] > scores[strongest[i], C]:
            strongest[i] = u
    hits = {}
    for i, u in strongest.items():
        c = int(np.argmax(scores[u, :C] / thresholds[u, :C]))
        hits[(i, c)] = (float(scores[u, C]), u, float(thresholds[u, C]))
    return hits


@lru_cache(maxsize=2)
def get_learned() -> LearnedStage:
    """The stage over the shipped corpus, built once per process."""
    return LearnedStage()
