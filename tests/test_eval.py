"""eval.py without a model: dataset-owned defaults, the batch-size rule, class names in the results."""
import warnings

import numpy as np
import pytest
import torch

import eval as eval_script
from dataset.ade20k import ADE20KSegmentation
from dataset.synthetic_ocr import make_synthetic_voc
from dataset.voc import VOC_CLASSES
from utils.errors import ConfigError
from utils.metric import ConfusionMatrix
from utils.options import parse_args


def test_voc_defaults_come_from_the_dataset():
    args = parse_args("eval", ["--dataset", "voc_val"])
    # the VOC protocol: 512x512 training crop -> base scale (2048, 512); no Cityscapes list
    assert (args.input_size, args.num_classes, args.ignore_label, args.data_list) == ((512, 512), 21, 255,
                                                                                      None)
    args = parse_args("eval", [])
    assert args.data_list == "./dataset/list/cityscapes/val.lst" and args.input_size == (1024, 2048)
    with pytest.raises(ConfigError, match="--num-classes 19 does not match --dataset ade20k_val"):
        parse_args("eval", ["--dataset", "ade20k_val", "--num-classes", "19"])


def test_voc_eval_dataset_and_the_batch_size_rule(tmp_path):
    root = make_synthetic_voc(str(tmp_path / "voc"))
    args = parse_args("eval", ["--dataset", "voc_val", "--data-dir", root, "--batch-size", "2"])
    with pytest.raises(ConfigError, match=r"--batch-size 2: the images of voc_val differ in size.*"
                                          "--batch-size 1"):
        eval_script.build_eval_dataset(args)
    args.batch_size = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # tiny split: the size warning is expected
        ds = eval_script.build_eval_dataset(args)
    image, label, meta, _ = ds[0]
    long_side, short_side = max(image.shape[1:]), min(image.shape[1:])
    assert long_side <= 2048 and short_side <= 512 and (long_side == 2048 or short_side == 512)
    assert meta["label_size"].tolist() == list(label.shape)


def test_class_names_in_table_and_results():
    assert eval_script.class_names("voc_val", 21) == list(VOC_CLASSES)
    names = eval_script.class_names("ade20k_val", 150)
    assert names == list(ADE20KSegmentation.CLASS_NAMES) and len(set(names)) == 150
    # spot checks against the official objectInfo150 table (row 1, 13, 150)
    assert (names[0], names[12], names[149]) == ("wall", "person", "flag")
    cm = ConfusionMatrix(21)
    gt = torch.tensor([0, 15, 15, 20])
    cm.update(gt, torch.tensor([0, 15, 0, 20]))
    result = eval_script.summarise(cm, eval_script.class_names("voc_val", 21))
    assert result["IoU"]["person"] == pytest.approx(0.5) and result["IoU"]["background"] == pytest.approx(0.5)
    assert result["present"] == ["background", "person", "tvmonitor"]
    table = eval_script.format_table(result)
    assert "tvmonitor" in table and "pottedplant" in table and np.isclose(result["IoU"]["tvmonitor"], 1.0)
