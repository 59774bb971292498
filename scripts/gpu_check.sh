#!/usr/bin/env bash
# ONNX Runtime on CUDA, checked on a bare GPU machine that has python3 with torch (CUDA 13 build) but none of
# this project's environment (the device machine lent to some development sessions; it has no network).
# It installs the staged wheels to /tmp/site, maps the package folders, and runs the CUDA parity tests
# (tiny models: every graph on CUDAExecutionProvider with I/O binding, the CUDA-graph beat step) and
# `rhythmicnet bench models --device cuda` on the shipped weights. Outputs go to $OUT (default ./gpu_check).
#
# Stage first, on a machine with pip (the files must reach the GPU machine beside the checkout):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d WHEELS onnxruntime-gpu==1.31.1 mido mir_eval decorator pretty_midi python-osc
# onnxruntime-gpu 1.31.1 is built for CUDA 13 (255.6 MB): it uses the CUDA 13 libraries that torch's cu130 build
# installs under site-packages/nvidia. The transfer limits of the lent machine (64 MiB a call, the checkout
# included; the checkout alone is ~67 MB with the weights) mean sending it in parts: split -b 60M, then
#   cat PARTS > onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl   (into WHEELS) there.
# Usage: [PARITY_K=EXPR] [BENCH=0] scripts/gpu_check.sh WHEELS   (PARITY_K: a pytest -k expression, to run only
# some parity tests; BENCH=0: no bench models)
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:?usage: scripts/gpu_check.sh WHEELS_DIR}
OUT=${OUT:-$PWD/gpu_check}
mkdir -p "$OUT" /tmp/site
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$WHEELS"/*.whl || exit 4
export PYTHONPATH=/tmp/site:$PWD
NVLIBS=$(python3 -c "import nvidia, glob; p = list(nvidia.__path__)[0]; print(':'.join(sorted(set(glob.glob(p + '/*/lib') + glob.glob(p + '/*/*/lib')))))")
export LD_LIBRARY_PATH=$NVLIBS:${LD_LIBRARY_PATH:-}
# without `pip install -e .`: the top-level folders as rhythmicnet's sub-packages (pyproject's package-dir)
for d in models offline realtime export; do [ -e rhythmicnet/$d ] || ln -s ../$d rhythmicnet/$d; done
export RHYTHMICNET_ONNX_CACHE=/tmp/rhythmicnet_onnx
nvidia-smi -L
python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, torch.cuda.is_available()); print('onnxruntime', o.__version__, o.get_available_providers()); from rhythmicnet.export.runtime import cuda_usable, provider_note; print('cuda_usable', cuda_usable(), '-', provider_note())" 2>&1 | tee "$OUT/providers.txt"
timeout 300 python3 -m pytest -p no:cacheprovider -o addopts="--import-mode=importlib" -q -rs ${PARITY_K:+-k "$PARITY_K"} tests/export/test_onnx_parity.py 2>&1 | tee "$OUT/pytest.log" | tail -25
[ "${BENCH:-1}" = 0 ] || timeout 400 python3 -m rhythmicnet bench models --device cuda --seconds 1.5 --json "$OUT/models.json" > "$OUT/bench.txt" 2> "$OUT/bench.err"
echo "bench models: exit $?"; cat "$OUT/bench.txt"; tail -5 "$OUT/bench.err"
for d in models offline realtime export; do [ -L rhythmicnet/$d ] && rm rhythmicnet/$d; done
