#!/usr/bin/env bash
# GPU benchmark: the same tables as tools/bench.py, on CUDA, in under 5 minutes.
#
# The GPU machine has torch/torchvision, numpy, OpenCV, scikit-image, msgpack, PyYAML and
# prometheus-client but cannot download. Fetch the rest as wheels here first (x86-64, CPython 3.12):
#     tools/fetch_gpu_wheels.sh            # → .whl/  (listed in .git/info/exclude)
# then, on the GPU machine, from the repository root:
#     bash tools/bench_gpu.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-out/gpu}}"
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu checks the script itself on a machine without a GPU
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
# Model stages on CUDA (fp16, channels-last; SAM vit_b with random weights: timing does not depend on them)
timeout 120 python3 tools/bench_deeplab.py --device "$DEVICE" --no-compile --json "$OUT/deeplab.json" | tee "$OUT/deeplab.txt"
# torch.compile compiles for about a minute per model: one backbone only
timeout 150 python3 tools/bench_deeplab.py --device "$DEVICE" --backbones mobilenet_v3_large --no-onnx \
    --json "$OUT/deeplab_compile.json" | tee "$OUT/deeplab_compile.txt" || echo "torch.compile run did not finish"
timeout 150 python3 tools/bench_partition.py --device "$DEVICE" --json "$OUT/partition.json" | tee "$OUT/partition.txt"
timeout 60 python3 tools/bench_vote.py --json "$OUT/vote.json" | tee "$OUT/vote.txt"
echo "results in $OUT"
