#!/usr/bin/env bash
# One GPU session's checks, in one run: the CUDA paths that a CPU machine cannot exercise.
#
#     bash benchmarks/gpu_session.sh                 # on a CUDA machine, writes gpu_session.log
#     DEVICE=cpu QUICK=1 bash benchmarks/gpu_session.sh   # a dry run of every command on a CPU
#
# Sections (each under its own time limit, so that one hang cannot eat the others' time):
#   1. phase 3 throughput: animate's batched path against the published one-frame loop
#      (bf16 + channels_last at several batch sizes, fp16, and fp32 batched for comparison);
#   2. phase 4 ("wav2lip"): end-to-end throughput on a 10 s 720p clip (decode, detect, generate, paste,
#      encode), with the detector on every frame and on every 3rd, then benchmarks/writer_scaling.py
#      (why marking + encoding together scale worse than either alone on 16 cores);
#   3. bf16 training steps of every phase's trainer on the GPU, then a resume;
#   4. ("fp16") fp16 training with the loss scaler (the path `--precision auto` takes on pre-Ampere
#      GPUs): phase 3 and the phase-4 expert a few steps, a resume, the saved scale printed.
# BASELINE=DIR also runs the wav2lip section's end-to-end benchmark from DIR, an older commit's tree.
# Set LOG to choose where the log goes (default gpu_session.log); PY for the interpreter; SECTIONS to
# run only some of "throughput wav2lip training fp16" (default all four; phase 3's target is met and
# the training checks only need rerunning when the trainers change: SECTIONS="wav2lip fp16" is the next
# session's; fp16 training has never run on a GPU).
#
# On a machine that has PyTorch but not our media/provenance packages, bring them as py3.12 wheels:
# av, c2pa-python, cryptography, cffi, pycparser, dlib-bin, platformdirs (about 61 MB; stripping the
# debug symbols from av's *.so files brings av from 36 to 28 MB), installed with
# `pip install --no-deps --target DIR` and DIR on PYTHONPATH. Phase 1 needs aligned faces: make them
# here with phase1_face_swap/extract.py into .gpu/faces1 and .gpu/faces2 (skipped when absent).
# Measured on an NVIDIA H100 (IMPLEMENTATION_GUIDE.md, phases 3 and 4): the whole script ran in 193 s
# the first time; the throughput section alone in 310 s the second (it profiles and compiles more);
# SECTIONS=wav2lip in 206 s the third (the machine started in under a minute; the tree plus the wheels
# must stay under the 64 MiB a call carries: send the wheels and run from the tree itself when no
# helper is editing it).
set -u
if [ $# -gt 0 ]; then  # settings come from the environment only: print the header above and stop
    sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
fi
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
LOG=${LOG:-gpu_session.log}
SECTIONS=${SECTIONS:-throughput wav2lip training fp16}
WORK=$(mktemp -d)
export DEEPFAKE_DATA_DIR=$WORK/data DEEPFAKE_CONFIG_DIR=$WORK/config PYTHONUNBUFFERED=1
if [ "$QUICK" = 1 ]; then
    FRAMES=4; SECONDS_CLIP=1; STEPS=2; SIZE_ARGS="--config tiny"
else
    FRAMES=256; SECONDS_CLIP=10; STEPS=30; SIZE_ARGS="--config vox-256"
fi

section() { echo; echo "=== $* ($(date +%T))"; }
run() {  # run LIMIT_SECONDS CMD...: one command under a time limit, its exit status reported
    local limit=$1; shift
    local start=$SECONDS
    timeout "$limit" "$@"
    echo "--- exit $? after $((SECONDS - start)) s: $*"
}

{
section "machine"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
echo "cores: $(nproc)"
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"

if [[ " $SECTIONS " == *" throughput "* ]]; then
section "phase 3 throughput (vox-256, $FRAMES driving frames)"
# first without compiling, with a profile of one batch (which kernels take the time), then compiled:
# plain, with inductor's freezing (weights as constants: BatchNorm folded into the convolutions), and
# with a larger batch
# shellcheck disable=SC2086
run 120 $PY benchmarks/fomm_throughput.py $SIZE_ARGS --device "$DEVICE" --frames "$FRAMES" \
    --precision bf16 --channels-last --batch-size 64 --profile 30
for args in "--precision bf16 --channels-last --batch-size 64 --compile" \
            "--precision bf16 --channels-last --batch-size 128 --compile"; do
    # shellcheck disable=SC2086
    run 150 $PY benchmarks/fomm_throughput.py $SIZE_ARGS --device "$DEVICE" --frames "$FRAMES" $args
done
# shellcheck disable=SC2086
run 150 env TORCHINDUCTOR_FREEZING=1 $PY benchmarks/fomm_throughput.py $SIZE_ARGS --device "$DEVICE" \
    --frames "$FRAMES" --precision bf16 --channels-last --batch-size 64 --compile

fi

if [[ " $SECTIONS " == *" wav2lip "* ]]; then
section "phase 4 end-to-end throughput (720p, $SECONDS_CLIP s)"
# every frame detected (as published), then the detector on every 3rd frame; --marginal separates
# the per-run costs (model load, worker start, audio, signing) from the per-frame rate
for every in 1 3; do
    run 180 $PY benchmarks/wav2lip_throughput.py --device "$DEVICE" --seconds "$SECONDS_CLIP" \
        --batch-size 32 --runs 2 --marginal --detect-every "$every"
done
# x264's own threads stopped near 265 fps on 16 cores: the same with 4 independent encoders (runs of 48
# frames, each opening with an IDR frame; encode.encode_mp4 segments)
run 180 env DEEPFAKE_ENCODE_SEGMENTS=4 $PY benchmarks/wav2lip_throughput.py --device "$DEVICE" \
    --seconds "$SECONDS_CLIP" --batch-size 32 --runs 2 --marginal --detect-every 3
if [ -n "${BASELINE:-}" ]; then
    # the same run from an older commit's tree (`git archive COMMIT | tar -x -C DIR`, an ignored folder
    # named in carry): machines differ by up to 2x between calls, so a comparison needs the same call
    section "the same end-to-end run from $BASELINE, for comparison on this machine"
    (cd "$BASELINE" && run 180 $PY benchmarks/wav2lip_throughput.py --device "$DEVICE" \
        --seconds "$SECONDS_CLIP" --batch-size 32 --runs 2 --marginal --detect-every 3)
fi
section "the writer on many cores: marking and encoding apart and together"
# with glibc keeping freed memory (the default, common/memory.py) and without, to see what it buys
for keep in 1 0; do
    run 240 env DEEPFAKE_KEEP_MEMORY=$keep $PY benchmarks/writer_scaling.py --frames "$((FRAMES < 250 ? FRAMES : 250))"
done
fi

if [[ " $SECTIONS " == *" training "* ]]; then
section "phase 3 training, bf16 ($SIZE_ARGS), then resume"
p3=(--data synthetic $SIZE_ARGS --run-dir "$WORK/p3" --batch-size 8 --synthetic-videos 8
    --synthetic-frames 16 --device "$DEVICE" --precision bf16 --no-progress --preview-every "$STEPS"
    --checkpoint-every "$STEPS")
run 120 $PY phase3_first_order_motion/train.py "${p3[@]}" --steps "$STEPS"
run 60 $PY phase3_first_order_motion/train.py "${p3[@]}" --steps $((STEPS + 2)) --adversarial
tail -n 3 "$WORK/p3/metrics.csv" 2>/dev/null

section "phase 4 training, bf16 (published width), then resume"
p4=(--identities 4 --frames 40 --cache "$WORK/clips.npz" --no-progress --device "$DEVICE" --precision bf16)
run 90 $PY phase4_audio_driven/train_syncnet.py "${p4[@]}" --run-dir "$WORK/expert" --batch-size 32 \
    --steps "$STEPS" --eval-identities 1
run 60 $PY phase4_audio_driven/train_syncnet.py "${p4[@]}" --run-dir "$WORK/expert" --batch-size 32 \
    --steps $((STEPS + 2)) --eval-identities 0
run 90 $PY phase4_audio_driven/train.py "${p4[@]}" --run-dir "$WORK/gen" --batch-size 16 --steps "$STEPS" \
    --expert "$WORK/expert/lipsync_expert.pth" --disc --eval-every "$STEPS" --preview-every "$STEPS"
tail -n 2 "$WORK/expert/metrics.csv" "$WORK/gen/metrics.csv" 2>/dev/null

if [ -d .gpu/faces1 ]; then
    section "phase 1 training, gpu128 preset, bf16 GAN"
    # the face sets are synthetic people: records for them (training a swap model needs both)
    ids=($($PY -c "from consent_and_watermark.consent import register_synthetic_identity as r
print(r('synthetic-gpu-faces1', 'Synthetic GPU faces 1'), r('synthetic-gpu-faces2', 'Synthetic GPU faces 2'))"))
    run 90 $PY phase1_face_swap/train.py --source .gpu/faces1 --target .gpu/faces2 --preset gpu128 \
        --epochs 2 --gan --device "$DEVICE" --precision bf16 --no-progress --run-dir "$WORK/p1" \
        --consent "${ids[0]}" --consent "${ids[1]}"
    tail -n 2 "$WORK/p1/metrics.csv" 2>/dev/null
fi
fi

if [[ " $SECTIONS " == *" fp16 "* ]]; then
section "fp16 training with the loss scaler, then resume"
scale() {  # the loss scale and clean-step count an fp16 run saved in its newest checkpoint
    $PY -c "import sys, torch; from common.training import Checkpointer
latest = Checkpointer(sys.argv[1], {}).latest()
print('scaler', torch.load(latest, weights_only=True).get('scaler') if latest else 'no checkpoint')" "$1"
}
HALF=fp16; [ "$DEVICE" = cpu ] && HALF=fp32  # a CPU dry run checks the commands (fp16 needs a GPU)
f3=(--data synthetic --config tiny --run-dir "$WORK/f3" --batch-size 8 --synthetic-videos 4
    --synthetic-frames 8 --device "$DEVICE" --precision "$HALF" --no-progress --checkpoint-every 10)
run 90 $PY phase3_first_order_motion/train.py "${f3[@]}" --steps 20 --adversarial
run 60 $PY phase3_first_order_motion/train.py "${f3[@]}" --steps 30 --adversarial
tail -n 2 "$WORK/f3/metrics.csv" 2>/dev/null; scale "$WORK/f3/checkpoints"
f4=(--identities 2 --frames 30 --cache "$WORK/fclips.npz" --no-progress --device "$DEVICE" --precision "$HALF"
    --run-dir "$WORK/fexpert" --batch-size 16 --eval-identities 0 --checkpoint-every 10)
run 90 $PY phase4_audio_driven/train_syncnet.py "${f4[@]}" --steps 20
run 60 $PY phase4_audio_driven/train_syncnet.py "${f4[@]}" --steps 30
tail -n 2 "$WORK/fexpert/metrics.csv" 2>/dev/null; scale "$WORK/fexpert/checkpoints"
fi
section "done"
} 2>&1 | tee "$LOG"
rm -rf "$WORK"
