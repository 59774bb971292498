#!/usr/bin/env bash
# Set up RhythmicNet Live on a fresh Debian machine (idempotent; re-running installs nothing new).
#   1. system packages, when missing: ffmpeg, libfluidsynth3, a General MIDI SoundFont (FluidR3_GM, MIT),
#      jackd2 (a real MIDI server for the MIDI tests), python3-venv;
#   2. a virtual environment in .venv (override with RHYTHMICNET_VENV) with the project installed
#      editable, its test and eval (the danceir baseline) extras included. Without an NVIDIA GPU, the CPU
#      build of torch 2.13.0 goes in first (a bare `torch` requirement would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(ffmpeg libfluidsynth3 fluid-soundfont-gm jackd2 python3-venv)
missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # jackd2 asks about realtime priority: answer no, non-interactively.
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV="${RHYTHMICNET_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip setuptools wheel

if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing the default (CUDA) torch build"
    "$VPY" -m pip install -q "torch>=2.4,<2.15"
  else
    echo "setup: no GPU: installing the CPU build of torch 2.13.0"
    "$VPY" -m pip install -q "torch==2.13.0" 2>/dev/null \
      || "$VPY" -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi

echo "setup: installing rhythmicnet and its Python dependencies"
"$VPY" -m pip install -q -e ".[test,eval]"
# The ONNX graphs of the shipped models, into the user cache that --backend onnx reads (skipped when they
# are there and up to date; otherwise they would be exported on first use, ~2 min on 2 cores).
echo "setup: exporting the models to ONNX (rhythmicnet export)"
"$VENV/bin/rhythmicnet" export -q
# Ray, for `rhythmicnet render --ray` (an optional extra; the batch tests run a local Ray instance)
echo "setup: installing the ray extra (rhythmicnet[ray])"
"$VPY" -m pip install -q -e ".[ray]"
# Ableton Link, for `rhythmicnet live --link` (aalink: GPL-3.0-or-later, an optional extra imported only with
# --link; the Link test runs two peers in one process over the loopback interface)
echo "setup: installing the link extra (rhythmicnet[link])"
"$VPY" -m pip install -q -e ".[link]"
"$VPY" - <<'PY'
import importlib.metadata as md
import rhythmicnet
print(f"setup: ready - rhythmicnet {rhythmicnet.__version__}, torch {md.version('torch')}, "
      f"mediapipe {md.version('mediapipe')}, onnxruntime-gpu {md.version('onnxruntime-gpu')}")
PY
