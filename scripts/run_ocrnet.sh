#!/bin/sh
# OCRNet runner: the sssegmentation OCRNet recipe of the seed table (README, "OCRNet").
#
#   sh scripts/run_ocrnet.sh DATASET BACKBONE
#     DATASET   voc | ade20k | cityscapes
#     BACKBONE  resnet50 | resnet101 | hrnetv2_w18s | hrnetv2_w18 | hrnetv2_w48
#
# Environment (all optional):
#   DATA_DIR      dataset root (default ./dataset/VOCdevkit/VOC2012, ./dataset/ADEChallengeData2016,
#                 ./dataset/cityscapes)
#   PRETRAINED    ImageNet weights (default ./pretrained_model/<backbone>_imagenet.pth)
#   SNAPSHOT_DIR  default ./checkpoint/snapshots_ocrnet_<backbone>_<dataset>/
#   GPU_IDS       default 0,1,2,3: one torchrun process per id when CUDA is available (the global
#                 batch is kept); NNODES / NODE_RANK / MASTER_ADDR / MASTER_PORT as scripts/common.sh
#   DEMO          auto (default: demo when DATA_DIR does not exist) | 1 | 0
#   PYTHON        interpreter (default: ./.venv, created from requirements*.txt by scripts/common.sh)
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
TRAIN_LIST=""
VAL_LIST=""
case "$DATASET" in
  voc)        N=10582; K=21;  BATCH=16; EPOCHS=60;  CROP=512,512;  DEMO_CROP=64,64; NAME=voc
              DATA_DIR=${DATA_DIR:-./dataset/VOCdevkit/VOC2012} ;;
  ade20k)     N=20210; K=150; BATCH=16; EPOCHS=130; CROP=512,512;  DEMO_CROP=64,64; NAME=ade20k
              DATA_DIR=${DATA_DIR:-./dataset/ADEChallengeData2016} ;;
  cityscapes) N=2975;  K=19;  BATCH=8;  EPOCHS=440; CROP=512,1024; DEMO_CROP=64,128; NAME=cityscapes_ocr
              DATA_DIR=${DATA_DIR:-./dataset/cityscapes}
              TRAIN_LIST=./dataset/list/cityscapes/train.lst
              VAL_LIST=./dataset/list/cityscapes/val.lst ;;
  *) echo "unknown DATASET '$DATASET' (voc ade20k cityscapes)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
cd "$ROOT"
ocnet_python
GPU_IDS=${GPU_IDS:-0,1,2,3}
NPROC=$(ocnet_nproc)

DEMO=${DEMO:-auto}
if [ "$DEMO" = auto ]; then
  if [ -d "$DATA_DIR" ]; then DEMO=0; else DEMO=1; fi
fi
TAG=ocrnet_${BACKBONE}_${DATASET}
SNAPSHOT_DIR=${SNAPSHOT_DIR:-./checkpoint/snapshots_${TAG}}
PRETRAINED=${PRETRAINED:-./pretrained_model/${BACKBONE}_imagenet.pth}
NUM_WORKERS=4
ALLOW_RANDOM_INIT=False
if [ "$DEMO" = 1 ]; then
  DATA_DIR=${DEMO_DIR:-./dataset/demo_ocr_${DATASET}}
  ocnet_log "DEMO: no ${DATASET} dataset; writing a synthetic one to ${DATA_DIR} (CPU, 4 iterations)"
  case "$DATASET" in
    voc) "$PYTHON" -c "from dataset.synthetic_ocr import make_synthetic_voc as m; m('$DATA_DIR')" ;;
    ade20k) "$PYTHON" -c "from dataset.synthetic_ocr import make_synthetic_ade20k as m; m('$DATA_DIR')" ;;
    cityscapes)
      "$PYTHON" -c "from dataset.synthetic import make_synthetic_cityscapes as m; m('$DATA_DIR', n_train=4, n_val=2, n_test=1, size=(64, 128))"
      TRAIN_LIST=$DATA_DIR/train.lst; VAL_LIST=$DATA_DIR/val.lst ;;
  esac
  ITERS=4; BATCH=2; CROP=$DEMO_CROP; SAVE_EVERY=1000; NUM_WORKERS=0; NPROC=1
  ALLOW_RANDOM_INIT=True
  SNAPSHOT_DIR=${DEMO_SNAPSHOT_DIR:-./checkpoint/snapshots_demo_${TAG}}
  TAG=demo_${TAG}
else
  PER_EPOCH=$(( ((N + 7) / 8) / (BATCH / 8) ))
  ITERS=$(( EPOCHS * PER_EPOCH ))
  SAVE_EVERY=$(( PER_EPOCH * 10 ))
fi
mkdir -p ./log/log_train ./log/log_test "$SNAPSHOT_DIR"

ocnet_log "1/2 train OCRNet ${BACKBONE} on ${DATASET}: ${ITERS} iterations, global batch ${BATCH}, crop ${CROP}, ${NPROC} process(es)"
ocnet_launch train.py --network "$BACKBONE" --method ocr --dataset "${NAME}_train" \
  --data-dir "$DATA_DIR" --data-list "$TRAIN_LIST" --num-classes "$K" --ignore-label 255 \
  --input-size "$CROP" --batch-size "$BATCH" --num-steps "$ITERS" --gpu "$GPU_IDS" \
  --learning-rate 0.01 --min-lr 1e-4 --momentum 0.9 --weight-decay 5e-4 --power 0.9 \
  --dsn-weight 0.4 --use-weight False --ohem False --random-scale True --random-mirror True \
  --restore-from "$PRETRAINED" --allow-random-init "$ALLOW_RANDOM_INIT" --resume auto \
  --snapshot-dir "$SNAPSHOT_DIR" --save-pred-every "$SAVE_EVERY" --num-workers "$NUM_WORKERS" \
  --log-file "./log/log_train/log_${TAG}"

# whole-image single-scale evaluation; --input-size = the training crop sets the base scale
# (2048, 512) / (2048, 1024) of the keep-ratio resize; images differ in size -> batch 1
ocnet_log "2/2 eval on val (log ./log/log_test/log_${TAG}_val)"
ocnet_launch eval.py --network "$BACKBONE" --method ocr --dataset "${NAME}_val" \
  --data-dir "$DATA_DIR" --data-list "$VAL_LIST" --num-classes "$K" --ignore-label 255 \
  --input-size "$CROP" --batch-size 1 --restore-from "$SNAPSHOT_DIR/CS_scenes_${ITERS}.pth" \
  --gpu "$GPU_IDS" --use-flip False --use-ms False --predict-choice whole --whole-scale 1 \
  --num-workers "$NUM_WORKERS" --output-path "$SNAPSHOT_DIR/eval" \
  --log-file "./log/log_test/log_${TAG}_val"
