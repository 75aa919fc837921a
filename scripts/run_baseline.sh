#!/bin/sh
# ResNet-101 baseline (resnet101_baseline) on Cityscapes.
# Trains, evaluates on val and on train, then writes the Cityscapes test-server submission (the order of
# the original run_resnet101_*.sh). Usage:
#   sh scripts/run_baseline.sh                        # installs into ./.venv on first use unless PYTHON is set
#   PYTHON=/path/to/python sh scripts/run_baseline.sh # use an environment you already have
# Without ./dataset/cityscapes it says so and runs a CPU demo on a generated synthetic dataset.
# shellcheck disable=SC2034  # the settings below are read by scripts/common.sh
set -eu

NETWORK=resnet101
METHOD=baseline
GPU_IDS=${GPU_IDS:-0,1,2,3}
LEARNING_RATE=1e-2
WEIGHT_DECAY=5e-4
BATCH_SIZE=8                 # global batch, split over the GPUs
NUM_STEPS=40000
INPUT_SIZE=769,769
USE_OHEM=${USE_OHEM:-False}
OHEM_SINGLE=${OHEM_SINGLE:-False}   # the original scripts could not set --ohem-single
OHEMTHRES=0.7
OHEMKEEP=0
START_ITERS=0
DATA_DIR=${DATA_DIR:-./dataset/cityscapes}
PRETRAINED=./pretrained_model/resnet101-imagenet.pth
EVAL_BATCH_SIZE=4
USE_FLIP=False
USE_MS=False

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
ocnet_main
