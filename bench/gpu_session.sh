#!/usr/bin/env bash
# The prepared device check for a session that is lent a GPU (bench/README.md, "On a GPU").
#
#   here, once:      bash bench/gpu_session.sh --fetch    # the wheels the device image lacks -> .whl/
#   on the device:   bash bench/gpu_session.sh            # the `device` tool's run, carry [".whl"]
#   a dry run here:  DEVICE=cpu MINUTES=0.3 HIDDEN=8 LAYERS=2 OUT=/tmp/gs bash bench/gpu_session.sh
#
# Settings (environment variables, defaults below): PY, DEVICE, MINUTES, ARCH, HIDDEN, LAYERS, BATCH,
# LR, TRAIN_ARGS (more `pixelrnn train` options), SIZE (the benchmarks' image side), LARGE (the sizes of
# the large-image table; default "32 64 128" on a GPU, and the step is skipped on the CPU unless
# LARGE is set), LIMIT (code only the first LIMIT test images), OUT (set by the device tool).
#
# On the device it
#   1. installs the carried wheels (constriction, mlxtend: the device image has neither) in /tmp/site;
#   2. runs the GPU tests (pytest -m gpu)                                  -> $OUT/gpu-tests.txt
#   3. times a training step and sampling on the GPU (bench/train_step.py; bench/efficiency.py: GFLOP,
#      % of an sgemm and the recurrent layers' step against a PixelCNN's; bench/sampling.py), and
#      the large-image table (bench/large_images.py: 32², 64², 128², RGB; peak CUDA memory with and
#      without activation checkpointing; sampling at 32² and 64²)     -> $OUT/bench.txt
#   4. trains a model on mnist for $MINUTES (wall time, final evaluation included)
#                                                                          -> $OUT/train.txt, metrics.jsonl,
#                                                                             config.json, best.safetensors
#   5. codes the mnist test split with it, on the CPU, 8 threads (bench/compression.py; JPEG-XL is n/a
#      there: its figure is in bench/README.md)                            -> $OUT/compression.txt
# Seven files: the tool brings back at most eight. Each step's failure is reported and the next step
# still runs; the exit status is the number of failed steps. Plan about 2 minutes of set-up and tests,
# about 2 minutes for the large-image table (ten fresh processes), $MINUTES and 1 minute of coding,
# inside the tool's 10-minute limit per command.
set -u
if [[ "${1:-}" == "--fetch" ]]; then  # here: the versions requirements.txt pins, for the device's Python 3.12
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
    pins=$(grep -E '^(constriction|mlxtend)==' requirements.txt)
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $pins
fi

PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-3}
ARCH=${ARCH:-row_lstm}
HIDDEN=${HIDDEN:-64}
LAYERS=${LAYERS:-7}
BATCH=${BATCH:-64}
LR=${LR:-1e-3}
TRAIN_ARGS=${TRAIN_ARGS:---head 256 --shift 1 --ema 0.999 --dihedral 0.5 --warmup 200}  # more `pixelrnn train` options
SIZE=${SIZE:-28}  # image side in the two timed benchmarks
LIMIT=${LIMIT:-}  # code only the first LIMIT test images (default: all 1000)
LARGE_SET=${LARGE:+yes}
LARGE=${LARGE:-32 64 128}  # sizes of the large-image table
OUT=${OUT:?OUT must name the folder for the results}
mkdir -p "$OUT"
run_dir=$(mktemp -d)/run
failed=0
step() {  # step NAME LOG COMMAND...: run it, keep its output, count a failure
    local name=$1 log=$2
    shift 2
    echo "== $name: $*" | tee -a "$log"
    local t0=$SECONDS start
    start=$(($(wc -l < "$log") + 1))
    "$@" >> "$log" 2>&1
    local rc=$?
    tail -n "+$start" "$log" | tail -n 25
    echo "== $name: $((SECONDS - t0)) s" | tee -a "$log"
    if (( rc != 0 )); then echo "== $name FAILED (exit $rc)"; failed=$((failed + 1)); fi
}

if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "installing the carried wheels failed"; exit 99; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
$PY -c "import torch, pixelrnn, constriction, mlxtend; print('torch', torch.__version__, '| cuda:',
torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')" ||
    { echo "a module is missing: run 'bash bench/gpu_session.sh --fetch' here and carry .whl"; exit 98; }

step "GPU tests" "$OUT/gpu-tests.txt" $PY -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py tests/test_device.py
step "training step" "$OUT/bench.txt" $PY bench/train_step.py --device "$DEVICE" --batch "$BATCH" --size "$SIZE" \
    --hidden "$HIDDEN" --layers "$LAYERS" --repeats 5
step "training step, bf16" "$OUT/bench.txt" $PY bench/train_step.py --device "$DEVICE" --batch "$BATCH" --size "$SIZE" \
    --hidden "$HIDDEN" --layers "$LAYERS" --repeats 5 --precision bf16
step "efficiency" "$OUT/bench.txt" $PY bench/efficiency.py --device "$DEVICE" --batch "$BATCH" --size "$SIZE" \
    --hidden "$HIDDEN" --layers "$LAYERS" --repeats 5
step "sampling" "$OUT/bench.txt" $PY bench/sampling.py --device "$DEVICE" --size "$SIZE" --hidden "$HIDDEN" \
    --layers "$LAYERS" --batches 1 64 --naive-batch 64 --repeats 3
if [[ $DEVICE == cuda* || -n $LARGE_SET ]]; then
    # shellcheck disable=SC2086  # LARGE is a list of sizes
    step "large images" "$OUT/bench.txt" $PY bench/large_images.py --device "$DEVICE" --sizes $LARGE \
        --sample-sizes 32 64 --repeats 2
else
    echo "== large images: skipped on the CPU (set LARGE to sizes to run it)"
fi
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
step "training" "$OUT/train.txt" $PY -m pixelrnn train --data mnist --arch "$ARCH" --hidden "$HIDDEN" \
    --layers "$LAYERS" --batch-size "$BATCH" --lr "$LR" --lr-schedule cosine $TRAIN_ARGS \
    --max-minutes "$MINUTES" --eval-every 1000 --eval-batch-size 500 --device "$DEVICE" --no-progress \
    --out "$run_dir"
for f in metrics.jsonl config.json best.safetensors; do [[ -f $run_dir/$f ]] && cp "$run_dir/$f" "$OUT/"; done
if [[ -f $run_dir/best.safetensors ]]; then
    step "compression" "$OUT/compression.txt" $PY bench/compression.py --datasets mnist \
        --checkpoint "mnist=$run_dir/best.safetensors" --threads 8 --out "$(dirname "$run_dir")/bench" \
        ${LIMIT:+--limit "$LIMIT"}
fi
echo "== $failed step(s) failed; results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$failed"
