#!/usr/bin/env bash
# GPU benchmark: the model stages of tools/bench.py on CUDA, plus whole SAM partitions per frame,
# in about 15 minutes (a device call runs 10 at most: pick steps with STEPS).
#
# The GPU machine has torch/torchvision, numpy, OpenCV, scikit-image, msgpack, PyYAML and
# prometheus-client but cannot download. Fetch the rest as wheels here first (x86-64, CPython 3.12):
#     tools/fetch_gpu_wheels.sh            # → .whl/  (listed in .git/info/exclude)
# then, on the GPU machine, from the repository root:
#     bash tools/bench_gpu.sh [OUT_DIR]
# Each step has its own time limit and a failed step does not stop the others; the slowest
# (torch.compile) runs last. Each step writes OUT_DIR/<step>.json; everything printed also goes to
# OUT_DIR/bench_gpu.log (10 files in all).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-out/gpu}}"
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu checks the script itself on a machine without a GPU
QUICK="${QUICK:-0}"       # QUICK=1: tiny SAM and a 6×6 grid, to check the script on a CPU
STEPS="${STEPS:-}"        # e.g. STEPS="amg_paper amg_100": run only these steps (in the script's order)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/bench_gpu.log") 2>&1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 - <<'PY'
import os, platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"torch {torch.__version__}, {gpu}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
PY

failed=()
step() {  # step NAME SECONDS command...: run with a time limit, note failures
    local name=$1 limit=$2
    shift 2
    if [ -n "$STEPS" ] && [[ " $STEPS " != *" $name "* ]]; then return; fi
    echo "== $name (limit ${limit}s)"
    local t0=$SECONDS
    if ! timeout "$limit" "$@"; then
        failed+=("$name")
        echo "!! $name failed or ran out of time"
    fi
    echo "== $name took $((SECONDS - t0)) s"
}

if [ "$QUICK" = 1 ]; then sam=(--model tiny --side 6 --repeats 1); reps=2; else sam=(--model vit_b --repeats 2); reps=20; fi
if [ "$QUICK" = 1 ]; then amg=(--model tiny --side 6); else amg=(--model vit_b --side 40); fi
# Coarse model: eager fp32 vs channels-last vs fp16 channels-last, paper and lite heads
step deeplab 120 python3 tools/bench_deeplab.py --device "$DEVICE" --no-compile --no-onnx --repeats "$reps" \
    --heads standard lite --json "$OUT/deeplab.json"
# Whole SAM partitions, measured: upstream generator vs SDPA, bf16, bigger batches, ROI, guided
step sam_frames 240 python3 tools/bench_sam_frames.py --device "$DEVICE" "${sam[@]}" --filters paper --json "$OUT/sam_frames.json"
# AMG per frame, ours (sam.amg: fast) vs segment-anything's generator, 40×40 vit_b, same embedding:
# the paper's filters and NMS (random weights: ~no mask survives), every mask kept (NMS merges the
# near-identical random masks), then NMS off so that ~100 masks survive
# (+ ours with the factored decoder, sam.decoder_arithmetic: factored; label agreement vs the reference)
step amg_paper 150 python3 tools/bench_amg.py --device "$DEVICE" "${amg[@]}" --levels none paper --repeats 3 \
    --arithmetic factored --json "$OUT/amg_paper.json"
step amg_100 150 python3 tools/bench_amg.py --device "$DEVICE" "${amg[@]}" --nms 1.0 --counts 100 --levels ~100 \
    --repeats 2 --json "$OUT/amg_100.json"
step amg_all 240 python3 tools/bench_amg.py --device "$DEVICE" "${amg[@]}" --levels all --json "$OUT/amg_all.json"
# Open questions of #13 on CUDA: is "identical: False" cuBLAS kernels (the reference against itself at
# another points_per_batch)? And paper-filter frames with TF32 / a bf16 mask decoder
if [ "$QUICK" = 1 ]; then probe=(--quick); else probe=(); fi
step amg_probe 300 python3 tools/probe_amg_cuda.py --device "$DEVICE" "${probe[@]}" --json "$OUT/amg_probe.json"
# The CPU table's extrapolation (encoder + one 64-prompt batch) and superpixels, for comparison
step partition 90 python3 tools/bench_partition.py --device "$DEVICE" --no-agreement --json "$OUT/partition.json"
step vote 40 python3 tools/bench_vote.py --json "$OUT/vote.json"
# torch.compile compiles for about a minute per model: one backbone only, last
step deeplab_compile 120 python3 tools/bench_deeplab.py --device "$DEVICE" --backbones mobilenet_v3_large \
    --no-onnx --repeats "$reps" --json "$OUT/deeplab_compile.json"
echo "results in $OUT; failed: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
