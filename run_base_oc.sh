#!/bin/sh
# Base-OC (resnet101_base_oc_dsn) on Cityscapes, the paper's recipe.
# Trains, evaluates on val and on train, then writes the Cityscapes test-server submission (the order of
# the original run_resnet101_*.sh). Usage:
#   sh run_base_oc.sh                        # installs into ./.venv on first use unless PYTHON is set
#   PYTHON=/path/to/python sh run_base_oc.sh # use an environment you already have
# Without ./dataset/cityscapes it says so and runs a CPU demo on a generated synthetic dataset.
# Every setting below (and the shared ones of scripts/common.sh: EVAL_SIZE, SAVE_EVERY, NUM_WORKERS,
# LIST_DIR, SNAPSHOT_DIR, LOG_DIR, OUTPUT_DIR, ...) can be overridden from the environment, e.g.
#   NUM_STEPS=2 INPUT_SIZE=65,65 EVAL_SIZE=128,256 sh run_asp_oc.sh
# shellcheck disable=SC2034  # the settings below are read by scripts/common.sh
set -eu

NETWORK=${NETWORK:-resnet101}
METHOD=${METHOD:-base_oc_dsn}
GPU_IDS=${GPU_IDS:-0,1,2,3}
LEARNING_RATE=${LEARNING_RATE:-1e-2}
WEIGHT_DECAY=${WEIGHT_DECAY:-5e-4}
BATCH_SIZE=${BATCH_SIZE:-8}               # global batch, split over the GPUs
NUM_STEPS=${NUM_STEPS:-40000}
INPUT_SIZE=${INPUT_SIZE:-769,769}
USE_OHEM=${USE_OHEM:-False}
OHEM_SINGLE=${OHEM_SINGLE:-False}    # the original scripts could not set --ohem-single
OHEMTHRES=${OHEMTHRES:-0.7}
OHEMKEEP=${OHEMKEEP:-0}
START_ITERS=${START_ITERS:-0}
DATA_DIR=${DATA_DIR:-./dataset/cityscapes}
PRETRAINED=${PRETRAINED:-./pretrained_model/resnet101-imagenet.pth}
EVAL_BATCH_SIZE=${EVAL_BATCH_SIZE:-4}
USE_FLIP=${USE_FLIP:-False}
USE_MS=${USE_MS:-False}

ROOT=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
ocnet_main
