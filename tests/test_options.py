"""utils/options.py: original flag names and defaults (the original argparse), booleans, validation."""
import argparse

import pytest

from utils.options import (build_parser, float_list, gpu_ids, int_pair, model_kwargs, model_name,
                           parse_args, predict_options, str2bool)

# The original's argparse defaults (flag -> default), for the flags every train command line uses.
ORIGINAL_TRAIN_DEFAULTS = {
    "batch_size": 8, "data_list": "./dataset/list/cityscapes/train.lst", "ignore_label": 255,
    "input_size": (769, 769), "learning_rate": 1e-2, "momentum": 0.9, "num_classes": 19,
    "start_iters": 0, "num_steps": 40000, "power": 0.9, "random_mirror": False, "random_scale": False,
    "save_pred_every": 5000, "snapshot_dir": "./snapshots_psp_ohem_trainval/", "weight_decay": 5e-4,
    "gpu": "0", "ohem_thres": 0.6, "ohem_keep": 100000, "network": "resnet101", "ohem_single": False,
    "dsn_weight": 0.4, "seed": 304, "fix_lr": False, "dataset": "cityscapes_train", "ohem": False,
}


def test_train_defaults_match_the_original_table():
    args = parse_args("train", [])
    for key, value in ORIGINAL_TRAIN_DEFAULTS.items():
        assert getattr(args, key) == value, key


def test_new_flags_defaults():
    args = parse_args("train", [])
    assert (args.resume, args.amp, args.min_lr, args.num_workers) == (None, False, 0.0, 4)


def test_eval_defaults():
    args = parse_args("eval", [])
    assert args.input_size == (1024, 2048)  # the original eval's hard-coded canvas
    assert (args.use_flip, args.use_ms, args.store_output, args.whole_scale) == (False, False, False, 1.0)
    assert args.ms_scales == [0.75, 1.0, 1.25]
    assert args.output_path == "./seg_output_eval_set"
    assert parse_args("submit", []).store_output is True
    assert parse_args("submit", []).dataset == "cityscapes_test"


@pytest.mark.parametrize("text,value", [("True", True), ("False", False), ("true", True), ("0", False),
                                        ("yes", True), ("no", False)])
def test_str2bool(text, value):
    assert str2bool(text) is value


def test_str2bool_rejects_garbage():
    with pytest.raises(argparse.ArgumentTypeError, match="maybe"):
        str2bool("maybe")


def test_booleans_work_as_switch_and_with_value():
    # The original scripts pass `--ohem False`, `--random-mirror` bare; --ohem-single could not be set.
    args = parse_args("train", ["--random-mirror", "--ohem", "False", "--ohem-single", "--use-weight",
                                "True"])
    assert args.random_mirror is True and args.ohem is False and args.ohem_single is True
    assert parse_args("train", ["--ohem-single", "False"]).ohem_single is False
    assert parse_args("eval", ["--use-flip", "True", "--store-output", "False"]).use_flip is True


def test_the_original_run_script_train_line_parses():
    line = ("--network resnet101 --method asp_oc_dsn --random-mirror --random-scale --gpu 0,1,2,3 "
            "--batch-size 8 --snapshot-dir ./c/ --num-steps 40000 --ohem False --data-list x.lst "
            "--weight-decay 5e-4 --input-size 769,769 --ohem-thres 0.7 --ohem-keep 0 --use-val False "
            "--use-weight True --snapshot-dir ./c/ --restore-from ./p.pth --start-iters 0 "
            "--learning-rate 1e-2 --use-extra False --dataset cityscapes_train --data-dir ./d")
    args = parse_args("train", line.split())
    assert model_name(args) == "resnet101_asp_oc_dsn"
    assert args.ohem_thres == 0.7 and args.ohem_keep == 0 and args.input_size == (769, 769)
    assert gpu_ids(args) == [0, 1, 2, 3]


def test_the_original_eval_line_parses():
    line = ("--network resnet101 --method asp_oc_dsn --restore-from c.pth --gpu 0,1,2,3 --batch-size 4 "
            "--use-flip False --use-ms False --data-list val.lst --dataset cityscapes_train "
            "--output-path ./v/ --store-output False --predict-choice whole --whole-scale 1")
    args = parse_args("eval", line.split())
    assert args.batch_size == 4 and args.whole_scale == 1.0 and args.predict_choice == "whole"


def test_parsers_have_groups():
    titles = {g.title for g in build_parser("train")._action_groups}
    assert {"data", "model", "optimisation", "loss", "checkpoints", "runtime"} <= titles
    assert "inference" in {g.title for g in build_parser("eval")._action_groups}


@pytest.mark.parametrize("argv,flag", [(["--batch-size", "0"], "--batch-size"),
                                       (["--num-steps", "0"], "--num-steps"),
                                       (["--start-iters", "9", "--num-steps", "5"], "--start-iters"),
                                       (["--input-size", "7x7"], "--input-size")])
def test_bad_values_name_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit):
        parse_args("train", argv)
    assert flag in capsys.readouterr().err


def test_pairs_and_lists():
    assert int_pair("769,769") == (769, 769) and int_pair("65") == (65, 65)
    assert float_list("0.5,1,1.5") == [0.5, 1.0, 1.5]
    with pytest.raises(argparse.ArgumentTypeError):
        float_list("1,-2")


def test_bad_gpu_list_names_the_flag():
    with pytest.raises(ValueError, match="--gpu"):
        gpu_ids(argparse.Namespace(gpu="0,a"))


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        build_parser("predict")


def test_model_kwargs_only_passes_what_was_set():
    args = parse_args("eval", [])
    assert model_kwargs(args) == {}
    args = parse_args("eval", ["--network", "hrnetv2_w18s", "--method", "ocr", "--ocr-preset",
                               "mmseg", "--stem-relu", "False", "--stem", "v1c"])
    assert model_kwargs(args) == {"preset": "mmseg", "stem_relu": False, "stem": "v1c"}
    assert model_name(args) == "hrnetv2_w18s_ocr"
    assert model_kwargs(parse_args("train", [])) == {}
    args = parse_args("train", ["--backbone-memory", "recompute"])
    assert model_kwargs(args) == {"backbone_memory": "recompute"}


def test_backbone_memory_flag_is_checked_and_not_resume_must_match(capsys):
    from utils.resume import MUST_MATCH
    with pytest.raises(SystemExit):
        parse_args("train", ["--backbone-memory", "True"])
    err = capsys.readouterr().err
    assert "--backbone-memory" in err and "'literal', 'relu', 'recompute'" in err
    assert "backbone_memory" not in MUST_MATCH  # the same maths: a run may resume with another mode


def test_predict_options_from_eval_flags():
    assert predict_options(parse_args("eval", []))["scales"] == [1.0]
    assert predict_options(parse_args("eval", ["--whole-scale", "0.5"]))["scales"] == [0.5]
    assert predict_options(parse_args("eval", ["--use-ms", "True"]))["scales"] == [0.75, 1.0, 1.25]
    args = parse_args("eval", ["--use-flip", "True", "--predict-choice", "sliding", "--dataset", "voc_val",
                               "--tile-size", "8,16"])
    assert predict_options(args) == dict(num_classes=21, scales=[1.0], flip=True, tile_size=(8, 16),
                                         mode="sliding")


@pytest.mark.parametrize("argv,message", [
    (["--learning-rate", "nan"], "--learning-rate must be a finite number > 0, got nan"),
    (["--learning-rate", "inf"], "--learning-rate must be a finite number > 0, got inf"),
    (["--learning-rate", "0"], "--learning-rate must be a finite number > 0, got 0.0"),
    (["--learning-rate=-1e-2"], "--learning-rate must be a finite number > 0"),
    (["--min-lr", "0.1"], "--min-lr must be a finite number >= 0 and <= 0.01, got 0.1"),
    (["--momentum", "1"], "--momentum must be a finite number >= 0 and < 1, got 1.0"),
    (["--momentum", "-0.1"], "--momentum must be a finite number >= 0 and < 1"),
    (["--weight-decay=-5e-4"], "--weight-decay must be a finite number >= 0"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got nan"),
    (["--power", "inf"], "--power must be a finite number >= 0"),
    (["--dsn-weight", "-1"], "--dsn-weight must be a finite number >= 0"),
    (["--ohem-thres", "0"], "--ohem-thres must be a finite number > 0 and <= 1"),
    (["--ohem-keep", "-1"], "--ohem-keep must be >= 0"),
    (["--num-classes", "0"], "--num-classes must be positive"),
    (["--dist-timeout", "0"], "--dist-timeout must be a finite number > 0"),
])
def test_optimisation_flags_are_validated(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args("train", argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_trust_checkpoint_help_says_it_runs_code_and_prints_the_default_once():
    text = " ".join(build_parser("train").format_help().split())
    start = text.index("--trust-checkpoint [BOOL] load")  # the entry, not the usage line
    entry = text[start:text.index(" --", start)]
    assert "EXECUTES any code stored in the file" in entry
    assert entry.count("default") == 1, entry
    assert text.count("(default: False) (default: False)") == 0  # no flag prints its default twice
