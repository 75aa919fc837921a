# shellcheck shell=sh
# Shared logic of the runners (run_asp_oc.sh, run_base_oc.sh, scripts/run_pyramid_oc.sh,
# scripts/run_baseline.sh; scripts/run_ocrnet.sh and scripts/test.sh use the helpers).
# Sourced (POSIX sh) after the runner has set ROOT and its settings block:
#   NETWORK METHOD GPU_IDS LEARNING_RATE WEIGHT_DECAY BATCH_SIZE NUM_STEPS INPUT_SIZE USE_OHEM OHEM_SINGLE
#   OHEMTHRES OHEMKEEP START_ITERS DATA_DIR PRETRAINED EVAL_BATCH_SIZE USE_FLIP USE_MS
# Every setting, of the runner and below, can be overridden from the environment under its own name:
#   NUM_STEPS=2 INPUT_SIZE=65,65 EVAL_SIZE=128,256 sh run_asp_oc.sh
# Other knobs: PYTHON (use this interpreter, install nothing), NNODES / NODE_RANK / MASTER_ADDR /
# MASTER_PORT (multi-node torchrun), DEMO_* (the CPU demo schedule below).

# ---- CPU demo (used when $DATA_DIR does not exist) ----------------------------------------------------
DEMO_DATA_DIR=${DEMO_DATA_DIR:-./dataset/synthetic_cityscapes}
DEMO_N_TRAIN=${DEMO_N_TRAIN:-40}
DEMO_N_VAL=${DEMO_N_VAL:-8}
DEMO_N_TEST=${DEMO_N_TEST:-4}
DEMO_IMAGE_SIZE=${DEMO_IMAGE_SIZE:-96,192}
DEMO_INPUT_SIZE=${DEMO_INPUT_SIZE:-64,64}
DEMO_BATCH_SIZE=${DEMO_BATCH_SIZE:-4}
DEMO_NUM_STEPS=${DEMO_NUM_STEPS:-250}
DEMO_LEARNING_RATE=${DEMO_LEARNING_RATE:-1e-2}
# Random init needs help to learn in a few hundred CPU steps: zero-init of each bottleneck's last BN
# (not in the paper; with ImageNet weights, as in paper mode, it is off).
DEMO_ZERO_INIT_RESIDUAL=${DEMO_ZERO_INIT_RESIDUAL:-True}

ocnet_log() { printf '[%s] %s\n' "$(basename "$0")" "$*"; }
ocnet_die() { printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Pick the interpreter: $PYTHON as given, else ./.venv (created and filled from requirements*.txt when
# the packages are missing or requirements changed).
ocnet_python() {
    if [ -n "${PYTHON:-}" ]; then
        ocnet_log "using PYTHON=$PYTHON (no installation)"
        return 0
    fi
    venv="$ROOT/.venv"
    if [ ! -x "$venv/bin/python" ]; then
        command -v python3 >/dev/null 2>&1 || ocnet_die "python3 not found; install Python 3.10+ or set PYTHON"
        ocnet_log "creating $venv"
        python3 -m venv "$venv" || ocnet_die "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv), or set PYTHON=/path/to/python"
    fi
    PYTHON="$venv/bin/python"
    stamp="$venv/.ocnet-requirements"
    want=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-nodeps.txt" | cksum)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$PYTHON" -c "import torch, torchvision, numpy, PIL, scipy, tqdm, cityscapesscripts" >/dev/null 2>&1; then
        ocnet_log "installing requirements into $venv (first run: a few minutes)"
        "$PYTHON" -m pip install --disable-pip-version-check -q -r "$ROOT/requirements.txt" || ocnet_die "pip install -r requirements.txt failed"
        "$PYTHON" -m pip install --disable-pip-version-check -q --no-deps -r "$ROOT/requirements-nodeps.txt" || ocnet_die "pip install -r requirements-nodeps.txt failed"
        printf '%s\n' "$want" > "$stamp"
    fi
}

# Number of processes: one per id in GPU_IDS when CUDA sees GPUs, else 1 (CPU).
ocnet_nproc() {
    ngpu=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
    listed=$(echo "$GPU_IDS" | awk -F, '{print NF}')
    if [ "$ngpu" -le 0 ]; then
        echo 1
    elif [ "$ngpu" -lt "$listed" ]; then
        printf '[%s] GPU_IDS=%s lists %s GPUs but CUDA sees %s: starting %s processes\n' \
            "$(basename "$0")" "$GPU_IDS" "$listed" "$ngpu" "$ngpu" >&2
        echo "$ngpu"
    else
        echo "$listed"
    fi
}

# ocnet_launch SCRIPT ARGS...: torchrun with one process per GPU, or plain python.
ocnet_launch() {
    if [ "$NPROC" -gt 1 ]; then
        "$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROC" --nnodes="${NNODES:-1}" \
            --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
            --master_port="${MASTER_PORT:-29500}" "$@"
    else
        "$PYTHON" "$@"
    fi
}

# Ctrl-C / SIGTERM reach the running stage (the whole process group gets them); the runner itself
# keeps going until that stage has stopped, so that it can report how, and then stops.
ocnet_traps() {
    trap 'OCNET_SIGNAL=INT' INT
    trap 'OCNET_SIGNAL=TERM' TERM
}

# ocnet_stage NAME COMMAND...: run one stage; stop the runner with its status when it fails.
ocnet_stage() {
    stage=$1
    shift
    status=0
    [ -z "${OCNET_SIGNAL:-}" ] || stage="$stage (not started: SIG$OCNET_SIGNAL received before it)"
    [ -n "${OCNET_SIGNAL:-}" ] || "$@" || status=$?
    if [ "$status" -eq 0 ] && [ -n "${OCNET_SIGNAL:-}" ]; then
        status=130
        [ "$OCNET_SIGNAL" = TERM ] && status=143
    fi
    [ "$status" -eq 0 ] && return 0
    if [ "$stage" = train ] && { [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; }; then
        ocnet_log "training was interrupted (exit status $status); its state is in ${SNAPSHOT_DIR%/}/resume.pth."
        ocnet_log "To resume, run the same command again: it passes --resume auto and continues from there."
    fi
    printf '[%s] ERROR: stage "%s" failed (exit status %s); the later stages were not run\n' \
        "$(basename "$0")" "$stage" "$status" >&2
    exit "$status"
}

# ocnet_lists: make the Cityscapes list files that are missing from the official layout
# (python -m dataset.cityscapes make-lists); lists that exist are used as they are.
ocnet_lists() {
    splits=""
    for pair in "train:$TRAIN_LIST" "val:$VAL_LIST" "test:$TEST_LIST"; do
        split=${pair%%:*}
        list=${pair#*:}
        if [ -n "$list" ] && [ ! -f "$list" ]; then
            [ "$list" = "$LIST_DIR/$split.lst" ] || ocnet_die "list file $list does not exist"
            splits="$splits${splits:+,}$split"
        fi
    done
    [ -z "$splits" ] && return 0
    ocnet_log "making the missing list files ($splits) in $LIST_DIR from $DATA_DIR"
    ocnet_stage lists "$PYTHON" -m dataset.cityscapes_lists make-lists --data-dir "$DATA_DIR" \
        --list-dir "$LIST_DIR" --splits "$splits"
}

# ocnet_show VAR...: print the values a runner uses, one line.
ocnet_show() {
    line=""
    for var in "$@"; do
        eval "value=\${$var-}"
        # shellcheck disable=SC2154  # value is set by the eval above
        line="$line $var=$value"
    done
    ocnet_log "settings:$line"
}

ocnet_demo_settings() {
    ocnet_log "No Cityscapes dataset at $DATA_DIR."
    ocnet_log "Running the CPU DEMO instead: a generated synthetic street dataset in the Cityscapes layout,"
    ocnet_log "the same model (${NETWORK}_${METHOD}) with a CPU-sized schedule. Put Cityscapes (leftImg8bit/, gtFine/)"
    ocnet_log "at $DATA_DIR to run the paper's schedule with the same command."
    ocnet_stage demo-data "$PYTHON" -m scripts.demo_data "$DEMO_DATA_DIR" --n-train "$DEMO_N_TRAIN" \
        --n-val "$DEMO_N_VAL" --n-test "$DEMO_N_TEST" --size "$DEMO_IMAGE_SIZE"
    DATA_DIR=$DEMO_DATA_DIR
    TRAIN_LIST=$DATA_DIR/train.lst
    VAL_LIST=$DATA_DIR/val.lst
    TEST_LIST=$DATA_DIR/test.lst
    INPUT_SIZE=$DEMO_INPUT_SIZE
    EVAL_SIZE=$DEMO_IMAGE_SIZE
    BATCH_SIZE=$DEMO_BATCH_SIZE
    EVAL_BATCH_SIZE=2
    NUM_STEPS=$DEMO_NUM_STEPS
    LEARNING_RATE=$DEMO_LEARNING_RATE
    SAVE_EVERY=$DEMO_NUM_STEPS
    ZERO_INIT_RESIDUAL=$DEMO_ZERO_INIT_RESIDUAL
    NUM_WORKERS=1
    ALLOW_RANDOM_INIT=True
    TAG=demo_${NETWORK}_${METHOD}
}

ocnet_main() {
    cd "$ROOT" || exit 1
    ocnet_traps
    ocnet_python
    NPROC=$(ocnet_nproc)
    # shared settings (paper mode), each overridable from the environment
    LIST_DIR=${LIST_DIR:-./dataset/list/cityscapes}
    TRAIN_LIST=${TRAIN_LIST:-$LIST_DIR/train.lst}
    VAL_LIST=${VAL_LIST:-$LIST_DIR/val.lst}
    TEST_LIST=${TEST_LIST:-$LIST_DIR/test.lst}
    EVAL_SIZE=${EVAL_SIZE:-1024,2048}
    SAVE_EVERY=${SAVE_EVERY:-5000}
    NUM_WORKERS=${NUM_WORKERS:-4}
    ALLOW_RANDOM_INIT=${ALLOW_RANDOM_INIT:-False}
    ZERO_INIT_RESIDUAL=${ZERO_INIT_RESIDUAL:-False}
    LOG_DIR=${LOG_DIR:-./log}
    OUTPUT_DIR=${OUTPUT_DIR:-./visualize}
    TAG=${NETWORK}_${METHOD}_${LEARNING_RATE}_${WEIGHT_DECAY}_${BATCH_SIZE}_${NUM_STEPS}
    DEMO=0
    if [ ! -d "$DATA_DIR" ]; then
        DEMO=1
        ocnet_demo_settings
    else
        ocnet_lists
    fi
    SNAPSHOT_DIR=${SNAPSHOT_DIR:-./checkpoint/snapshots_$TAG/}
    case $SNAPSHOT_DIR in */) ;; *) SNAPSHOT_DIR=$SNAPSHOT_DIR/ ;; esac
    mkdir -p "$LOG_DIR/log_train" "$LOG_DIR/log_test" "$SNAPSHOT_DIR" "$OUTPUT_DIR"
    ocnet_log "python: $PYTHON, processes: $NPROC, mode: $([ "$DEMO" -eq 1 ] && echo demo || echo paper)"
    ocnet_show NETWORK METHOD GPU_IDS LEARNING_RATE WEIGHT_DECAY BATCH_SIZE NUM_STEPS INPUT_SIZE \
        USE_OHEM OHEM_SINGLE OHEMTHRES OHEMKEEP START_ITERS DATA_DIR PRETRAINED EVAL_BATCH_SIZE \
        EVAL_SIZE USE_FLIP USE_MS SAVE_EVERY NUM_WORKERS TRAIN_LIST VAL_LIST TEST_LIST \
        SNAPSHOT_DIR LOG_DIR OUTPUT_DIR ALLOW_RANDOM_INIT ZERO_INIT_RESIDUAL

    ocnet_log "1/4 train -> $SNAPSHOT_DIR (log $LOG_DIR/log_train/log_$TAG)"
    ocnet_stage train ocnet_launch train.py --network "$NETWORK" --method "$METHOD" --random-mirror \
        --random-scale --gpu "$GPU_IDS" --batch-size "$BATCH_SIZE" --snapshot-dir "$SNAPSHOT_DIR" \
        --num-steps "$NUM_STEPS" --ohem "$USE_OHEM" --ohem-single "$OHEM_SINGLE" --data-list "$TRAIN_LIST" \
        --weight-decay "$WEIGHT_DECAY" --input-size "$INPUT_SIZE" --ohem-thres "$OHEMTHRES" \
        --ohem-keep "$OHEMKEEP" --use-val False --use-weight True --restore-from "$PRETRAINED" \
        --start-iters "$START_ITERS" --learning-rate "$LEARNING_RATE" --use-extra False \
        --dataset cityscapes_train --data-dir "$DATA_DIR" --save-pred-every "$SAVE_EVERY" \
        --num-workers "$NUM_WORKERS" --allow-random-init "$ALLOW_RANDOM_INIT" \
        --zero-init-residual "$ZERO_INIT_RESIDUAL" --resume auto --log-file "$LOG_DIR/log_train/log_$TAG"
    CKPT=${SNAPSHOT_DIR}CS_scenes_${NUM_STEPS}.pth
    [ -f "$CKPT" ] || ocnet_die "training ended without writing $CKPT"

    ocnet_log "2/4 eval on val (log $LOG_DIR/log_test/log_${TAG}_val)"
    ocnet_stage eval-val ocnet_eval "$VAL_LIST" val
    if [ "$DEMO" -eq 0 ]; then
        ocnet_log "3/4 eval on train (log $LOG_DIR/log_test/log_${TAG}_train)"
        ocnet_stage eval-train ocnet_eval "$TRAIN_LIST" train
    else
        ocnet_log "3/4 eval on train: skipped in the demo"
    fi

    ocnet_log "4/4 test-server submission -> $OUTPUT_DIR/${TAG}_test.zip"
    ocnet_stage submit ocnet_launch generate_submit.py --network "$NETWORK" --method "$METHOD" \
        --restore-from "$CKPT" --gpu "$GPU_IDS" --batch-size "$EVAL_BATCH_SIZE" --use-flip "$USE_FLIP" \
        --use-ms "$USE_MS" --data-dir "$DATA_DIR" --data-list "$TEST_LIST" --dataset cityscapes_test \
        --input-size "$EVAL_SIZE" --num-workers "$NUM_WORKERS" \
        --output-path "$OUTPUT_DIR/${TAG}_test" --store-output True --predict-choice whole \
        --whole-scale 1 --log-file "$LOG_DIR/log_test/log_${TAG}_test"

    "$PYTHON" -c "import json, sys; r = json.load(open(sys.argv[1])); print('[%s] final val mIoU over the %d classes present: %.4f (all 19 classes: %.4f)' % (sys.argv[2], len(r['present']), r['mIoU_present'], r['mIoU']))" \
        "$OUTPUT_DIR/${TAG}_val/results.json" "$(basename "$0")"
    if [ "$DEMO" -eq 1 ]; then ocnet_demo_infer; fi
}

# ocnet_eval LIST NAME: eval.py on a labelled list (the original's eval calls, plus the missing --data-dir).
ocnet_eval() {
    ocnet_launch eval.py --network "$NETWORK" --method "$METHOD" --restore-from "$CKPT" \
        --gpu "$GPU_IDS" --batch-size "$EVAL_BATCH_SIZE" --use-flip "$USE_FLIP" --use-ms "$USE_MS" \
        --data-dir "$DATA_DIR" --data-list "$1" --dataset cityscapes_train --input-size "$EVAL_SIZE" \
        --num-workers "$NUM_WORKERS" --output-path "$OUTPUT_DIR/${TAG}_$2" --store-output False \
        --predict-choice whole --whole-scale 1 --log-file "$LOG_DIR/log_test/log_${TAG}_$2"
}

# ocnet_demo_infer: infer.py on the first two demo test images with the demo checkpoint; prints where
# the overlays are (README, "Inference, attention maps and export").
ocnet_demo_infer() {
    out=$OUTPUT_DIR/${TAG}_infer
    images=$(grep -v '^[[:space:]]*$' "$TEST_LIST" | head -n 2 | cut -f1)
    [ -n "$images" ] || { ocnet_log "infer.py: no test images in $TEST_LIST, skipped"; return 0; }
    set --
    for image in $images; do set -- "$@" "$DATA_DIR/$image"; done
    ocnet_log "infer.py on $# demo image(s) -> $out"
    ocnet_stage infer "$PYTHON" infer.py "$@" --network "$NETWORK" --method "$METHOD" \
        --restore-from "$CKPT" --output-path "$out" --device cpu
    for image in $images; do
        ocnet_log "overlay: $out/$(basename "$image" .png)_overlay.png"
    done
}
