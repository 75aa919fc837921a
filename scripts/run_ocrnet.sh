#!/bin/sh
# OCRNet runner: the OCRNet recipe of sssegmentation's seed table (ADE20K, VOC, Cityscapes).
#
#   sh scripts/run_ocrnet.sh DATASET BACKBONE
#     DATASET   voc | ade20k | cityscapes
#     BACKBONE  resnet50 | resnet101 | hrnetv2_w18s | hrnetv2_w18 | hrnetv2_w48
#
# Every setting of the block below can be overridden from the environment under its own name, e.g.
#   NUM_STEPS=2 INPUT_SIZE=64,128 BATCH_SIZE=2 sh scripts/run_ocrnet.sh cityscapes hrnetv2_w18s
# The main ones: DATA_DIR (default ./dataset/VOCdevkit/VOC2012, ./dataset/ADEChallengeData2016,
# ./dataset/cityscapes), PRETRAINED (./pretrained_model/<backbone>_imagenet.pth), SNAPSHOT_DIR,
# GPU_IDS (default 0,1,2,3: one torchrun process per id when CUDA is available; the global batch is
# kept), NUM_STEPS, BATCH_SIZE, INPUT_SIZE, EVAL_SIZE, EVAL_BATCH_SIZE, SAVE_EVERY, NUM_WORKERS,
# LIST_DIR (Cityscapes lists, made from the official layout when absent), LOG_DIR.
# Also: DEMO auto (default: demo when DATA_DIR does not exist) | 1 | 0; PYTHON (interpreter, default
# ./.venv created from requirements*.txt); NNODES / NODE_RANK / MASTER_ADDR / MASTER_PORT.
#
# Recipe: SGD lr 0.01, momentum 0.9, wd 5e-4, poly 0.9 down to 1e-4 per iteration, no warmup;
# CE + 0.4 x aux CE (no class weights, no OHEM); global batch 16 / 16 / 8 (VOC / ADE / CS) for
# 60 / 130 / 440 epochs. Iterations = epochs x iterations per epoch of the seed's 8-GPU loader:
# floor(ceil(N / 8) / (batch / 8)) -> VOC 60 x 661 = 39,660; ADE 130 x 1,263 = 164,190;
# Cityscapes 440 x 372 = 163,680. Evaluation: whole image, single scale, no flip.
# DEMO mode writes a tiny synthetic dataset and runs 4 iterations + eval on CPU.
set -eu

if [ $# -ne 2 ]; then
  sed -n '2,6p' "$0" >&2
  exit 2
fi
DATASET=$1
BACKBONE=$2
case "$BACKBONE" in
  resnet50|resnet101|hrnetv2_w18s|hrnetv2_w18|hrnetv2_w48) ;;
  *) echo "unknown BACKBONE '$BACKBONE' (resnet50 resnet101 hrnetv2_w18s hrnetv2_w18 hrnetv2_w48)" >&2
     exit 2 ;;
esac
# the recipe of each dataset: images N, classes K, global batch, epochs, crop
case "$DATASET" in
  voc)        N=10582; K=21;  BATCH=16; EPOCHS=60;  CROP=512,512;  DEMO_CROP=64,64; NAME=voc
              DEFAULT_DATA_DIR=./dataset/VOCdevkit/VOC2012 ;;
  ade20k)     N=20210; K=150; BATCH=16; EPOCHS=130; CROP=512,512;  DEMO_CROP=64,64; NAME=ade20k
              DEFAULT_DATA_DIR=./dataset/ADEChallengeData2016 ;;
  cityscapes) N=2975;  K=19;  BATCH=8;  EPOCHS=440; CROP=512,1024; DEMO_CROP=64,128; NAME=cityscapes_ocr
              DEFAULT_DATA_DIR=./dataset/cityscapes ;;
  *) echo "unknown DATASET '$DATASET' (voc ade20k cityscapes)" >&2; exit 2 ;;
esac
PER_EPOCH=$(( ((N + 7) / 8) / (BATCH / 8) ))

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
cd "$ROOT"
ocnet_traps
ocnet_python

# ---- settings (each overridable from the environment) --------------------------------------------
TAG=ocrnet_${BACKBONE}_${DATASET}
DATA_DIR=${DATA_DIR:-$DEFAULT_DATA_DIR}
PRETRAINED=${PRETRAINED:-./pretrained_model/${BACKBONE}_imagenet.pth}
GPU_IDS=${GPU_IDS:-0,1,2,3}
LEARNING_RATE=${LEARNING_RATE:-0.01}
MIN_LR=${MIN_LR:-1e-4}
WEIGHT_DECAY=${WEIGHT_DECAY:-5e-4}
BATCH_SIZE=${BATCH_SIZE:-$BATCH}                        # global batch, split over the GPUs
NUM_STEPS=${NUM_STEPS:-$(( EPOCHS * PER_EPOCH ))}
INPUT_SIZE=${INPUT_SIZE:-$CROP}
EVAL_SIZE=${EVAL_SIZE:-$INPUT_SIZE}        # --input-size of eval: the base scale follows the crop
EVAL_BATCH_SIZE=${EVAL_BATCH_SIZE:-1}      # VOC / ADE20K images differ in size: whole, one per batch
SAVE_EVERY=${SAVE_EVERY:-$(( PER_EPOCH * 10 ))}
NUM_WORKERS=${NUM_WORKERS:-4}
ALLOW_RANDOM_INIT=${ALLOW_RANDOM_INIT:-False}
LIST_DIR=${LIST_DIR:-./dataset/list/cityscapes}
TRAIN_LIST=${TRAIN_LIST:-}
VAL_LIST=${VAL_LIST:-}
TEST_LIST=${TEST_LIST:-}
STAGES=2
if [ "$DATASET" = cityscapes ]; then   # + a test-server submission (stage 3)
  TRAIN_LIST=${TRAIN_LIST:-$LIST_DIR/train.lst}
  VAL_LIST=${VAL_LIST:-$LIST_DIR/val.lst}
  TEST_LIST=${TEST_LIST:-$LIST_DIR/test.lst}
  STAGES=3
fi
OUTPUT_DIR=${OUTPUT_DIR:-./visualize}
SNAPSHOT_DIR=${SNAPSHOT_DIR:-./checkpoint/snapshots_${TAG}}
LOG_DIR=${LOG_DIR:-./log}
DEMO=${DEMO:-auto}

NPROC=$(ocnet_nproc)
if [ "$DEMO" = auto ]; then
  if [ -d "$DATA_DIR" ]; then DEMO=0; else DEMO=1; fi
fi
if [ "$DEMO" = 1 ]; then
  DATA_DIR=${DEMO_DIR:-./dataset/demo_ocr_${DATASET}}
  ocnet_log "DEMO: no ${DATASET} dataset; writing a synthetic one to ${DATA_DIR} (CPU, 4 iterations)"
  case "$DATASET" in
    voc) MAKE="from dataset.synthetic_ocr import make_synthetic_voc as m; m('$DATA_DIR')" ;;
    ade20k) MAKE="from dataset.synthetic_ocr import make_synthetic_ade20k as m; m('$DATA_DIR')" ;;
    cityscapes)
      MAKE="from dataset.synthetic import make_synthetic_cityscapes as m; m('$DATA_DIR', n_train=4, n_val=2, n_test=1, size=(64, 128))"
      TRAIN_LIST=$DATA_DIR/train.lst; VAL_LIST=$DATA_DIR/val.lst; TEST_LIST=$DATA_DIR/test.lst ;;
  esac
  ocnet_stage demo-data "$PYTHON" -c "$MAKE"
  NUM_STEPS=4; BATCH_SIZE=2; INPUT_SIZE=$DEMO_CROP; EVAL_SIZE=$DEMO_CROP; SAVE_EVERY=1000
  NUM_WORKERS=0; NPROC=1; EVAL_BATCH_SIZE=1
  ALLOW_RANDOM_INIT=True
  SNAPSHOT_DIR=${DEMO_SNAPSHOT_DIR:-./checkpoint/snapshots_demo_${TAG}}
  TAG=demo_${TAG}
elif [ "$DATASET" = cityscapes ]; then
  ocnet_lists
fi
mkdir -p "$LOG_DIR/log_train" "$LOG_DIR/log_test" "$SNAPSHOT_DIR" "$OUTPUT_DIR"
ocnet_log "python: $PYTHON, processes: $NPROC, mode: $([ "$DEMO" = 1 ] && echo demo || echo paper)"
ocnet_show DATASET BACKBONE DATA_DIR PRETRAINED GPU_IDS LEARNING_RATE MIN_LR WEIGHT_DECAY BATCH_SIZE \
  NUM_STEPS INPUT_SIZE EVAL_SIZE EVAL_BATCH_SIZE SAVE_EVERY NUM_WORKERS ALLOW_RANDOM_INIT TRAIN_LIST \
  VAL_LIST TEST_LIST SNAPSHOT_DIR LOG_DIR OUTPUT_DIR

ocnet_log "1/$STAGES train OCRNet ${BACKBONE} on ${DATASET}: ${NUM_STEPS} iterations (log $LOG_DIR/log_train/log_${TAG})"
ocnet_stage train ocnet_launch train.py --network "$BACKBONE" --method ocr --dataset "${NAME}_train" \
  --data-dir "$DATA_DIR" --data-list "$TRAIN_LIST" --num-classes "$K" --ignore-label 255 \
  --input-size "$INPUT_SIZE" --batch-size "$BATCH_SIZE" --num-steps "$NUM_STEPS" --gpu "$GPU_IDS" \
  --learning-rate "$LEARNING_RATE" --min-lr "$MIN_LR" --momentum 0.9 --weight-decay "$WEIGHT_DECAY" \
  --power 0.9 --dsn-weight 0.4 --use-weight False --ohem False --random-scale True --random-mirror True \
  --restore-from "$PRETRAINED" --allow-random-init "$ALLOW_RANDOM_INIT" --resume auto \
  --snapshot-dir "$SNAPSHOT_DIR" --save-pred-every "$SAVE_EVERY" --num-workers "$NUM_WORKERS" \
  --log-file "$LOG_DIR/log_train/log_${TAG}"
CKPT=$SNAPSHOT_DIR/CS_scenes_${NUM_STEPS}.pth
[ -f "$CKPT" ] || ocnet_die "training ended without writing $CKPT"

# whole-image single-scale evaluation; --input-size = the training crop sets the base scale
# (2048, 512) / (2048, 1024) of the keep-ratio resize
ocnet_log "2/$STAGES eval on val (log $LOG_DIR/log_test/log_${TAG}_val)"
ocnet_stage eval-val ocnet_launch eval.py --network "$BACKBONE" --method ocr --dataset "${NAME}_val" \
  --data-dir "$DATA_DIR" --data-list "$VAL_LIST" --num-classes "$K" --ignore-label 255 \
  --input-size "$EVAL_SIZE" --batch-size "$EVAL_BATCH_SIZE" --restore-from "$CKPT" \
  --gpu "$GPU_IDS" --use-flip False --use-ms False --predict-choice whole --whole-scale 1 \
  --num-workers "$NUM_WORKERS" --output-path "$SNAPSHOT_DIR/eval" \
  --log-file "$LOG_DIR/log_test/log_${TAG}_val"
"$PYTHON" -c "import json, sys; r = json.load(open(sys.argv[1])); print('[%s] val mIoU: %.4f (over the %d classes present: %.4f)' % (sys.argv[2], r['mIoU'], len(r['present']), r['mIoU_present']))" \
  "$SNAPSHOT_DIR/eval/results.json" "$(basename "$0")"

if [ "$DATASET" = cityscapes ]; then
  ocnet_log "3/3 test-server submission -> $OUTPUT_DIR/${TAG}_test.zip"
  ocnet_stage submit ocnet_launch generate_submit.py --network "$BACKBONE" --method ocr \
    --dataset cityscapes_ocr_test --data-dir "$DATA_DIR" --data-list "$TEST_LIST" \
    --input-size "$EVAL_SIZE" --batch-size "$EVAL_BATCH_SIZE" --restore-from "$CKPT" --gpu "$GPU_IDS" \
    --use-flip False --use-ms False --predict-choice whole --whole-scale 1 \
    --num-workers "$NUM_WORKERS" --output-path "$OUTPUT_DIR/${TAG}_test" --store-output True \
    --log-file "$LOG_DIR/log_test/log_${TAG}_test"
fi
