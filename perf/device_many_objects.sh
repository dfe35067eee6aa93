#!/usr/bin/env bash
# Issue 22's GPU rows in one prepared run on a lent GPU machine (python3 with torch; no FiftyOne, no network).
#
#   here:   make device-wheels                    # .whl/: the wheels such a machine lacks (OpenCV, segment-anything)
#   there:  bash perf/device_many_objects.sh      # (the device tool: carry [".whl"]; results under $OUT)
#
# What it runs: perf/speed.py's object curve with ViT-H (random weights) on CUDA, `full` and `adaptive` at 1 / 10 /
# 30 / 100 objects, decoder in float32 (the encodings are cached, so the encoder's precision does not enter these
# rows), with the workers' malloc settings (sampd_plugin.ops.threads.MALLOC_ENV). Random weights make `adaptive`'s
# doubt tests fire on every frame (it then decodes as many prompts as `full`): its row measures the cost of its
# bookkeeping, not what it saves with a real SAM. Takes a few minutes (most of it building ViT-H on the CPU).
#
# Environment: OUT (results folder; default: a new temporary one), PYTHON (default python3), DEVICE (default cuda),
# MODEL (default vit_h; tiny for a smoke run), OBJECTS (default "1 10 30 100"), FRAMES (default 4: the prompt
# frame + 3 timed).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OBJECTS=${OBJECTS:-1 10 30 100}
FRAMES=${FRAMES:-4}
MODEL=${MODEL:-vit_h}
mkdir -p "$OUT"

if ! "$PY" -c "import cv2, segment_anything" 2>/dev/null; then
    if [ ! -d .whl ]; then
        echo "this python lacks OpenCV / segment-anything and no .whl/ was carried: run 'make device-wheels' here" >&2
        exit 2
    fi
    SITE=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --find-links .whl --target "$SITE" \
        opencv-python-headless segment-anything
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1099511627776 MALLOC_TOP_PAD_=1073741824
{
    date -u +"%F %T UTC"
    git log -1 --format="tree at %h %s" 2>/dev/null || true
    "$PY" -c "import torch, cv2, numpy; print('torch', torch.__version__, '| cuda', torch.cuda.is_available() and \
torch.cuda.get_device_name(0), '| cv2', cv2.__version__, '| numpy', numpy.__version__)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
} | tee "$OUT/device.txt"

# shellcheck disable=SC2086
"$PY" perf/speed.py --device "$DEVICE" --model "$MODEL" --encoders "$MODEL" --objects $OBJECTS --presets full adaptive \
    --frames "$FRAMES" --threads 4 --no-baselines --no-e2e --json "$OUT/many_objects_gpu.json" \
    | tee "$OUT/many_objects_gpu.txt"
