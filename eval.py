# Port of OCNet.pytorch eval.py (679a45b). MIT License.
"""Evaluate a checkpoint on a labelled list: per-class IoU table, mIoU, results JSON.

    python eval.py --network resnet101 --method asp_oc_dsn --data-dir ./dataset/cityscapes \
        --data-list ./dataset/list/cityscapes/val.lst --restore-from CS_scenes_40000.pth \
        --batch-size 4 --use-flip False --use-ms False --output-path ./visualize/val

The Cityscapes lists come from ``python -m dataset.cityscapes make-lists`` (the runners make them). Without
--data-list / --input-size / --num-classes the --dataset's own values are used (cityscapes_train: val.lst,
the 1024x2048 canvas, 19 classes; voc_val / ade20k_val: their val split at the training crop's scale).

mIoU (faithful) = mean over ALL --num-classes classes of tp / max(1, gt + pred - tp) from the dataset-level
confusion matrix (an absent class counts as 0). Also reported: the mean over the classes present in the
ground truth (``mIoU_present``).
"""
import json
import os
import sys

from tqdm import tqdm

from utils import distributed
from utils.cli import run_main
from utils.engine import build_inference_model, build_loader, predict_labels
from utils.errors import DatasetError
from utils.logger import setup_logging
from utils.metric import ConfusionMatrix
from utils.options import model_kwargs, model_name, parse_args, predict_options, print_args
from utils.visualize import save_palette_png


def class_names(dataset_name, num_classes):
    """The dataset's class names (Cityscapes, VOC, ADE20K), or numbers for a dataset without them."""
    from dataset import class_names as names_of
    names = list(names_of(dataset_name))
    return names if len(names) == num_classes else [str(c) for c in range(num_classes)]


def build_eval_dataset(args):
    """The labelled dataset of --dataset without augmentation; enforces the batch-size rule.

    Datasets whose items keep their own size (ADE20K / VOC validation: keep-ratio resize, labels at
    the original resolution) are evaluated one image per batch: another --batch-size is refused here,
    before the model is built, instead of failing (or padding and changing the numbers) later.
    """
    from dataset import accepts, dataset_class, get_segmentation_dataset
    from utils.errors import ConfigError
    if not dataset_class(args.dataset).SAME_SIZE_ITEMS and args.batch_size != 1:
        raise ConfigError(f"--batch-size {args.batch_size}: the images of {args.dataset} differ in "
                          "size and are evaluated whole at their own size; pass --batch-size 1")
    kwargs = dict(root=args.data_dir, list_path=args.data_list, crop_size=args.input_size,
                  ignore_label=args.ignore_label)
    if accepts(args.dataset, "scale"):  # faithful: eval reads the list with the training class
        kwargs.update(scale=False, mirror=False)
    return get_segmentation_dataset(args.dataset, **kwargs)


def summarise(cm, names):
    """The results dict: per-class IoU, mIoU over all classes (faithful), over the classes present in
    the ground truth, pixel accuracy and the confusion matrix (rows: ground truth)."""
    mat = cm.mat.cpu()
    present = cm.present().cpu()
    return {
        "mIoU": cm.miou(),
        "mIoU_present": cm.miou_present() if bool(present.any()) else 0.0,
        "pixel_accuracy": float(mat.diagonal().sum()) / max(1, int(mat.sum())),
        "IoU": {name: float(v) for name, v in zip(names, cm.iou().cpu())},
        "present": [name for name, p in zip(names, present) if p],
        "confusion_matrix": mat.tolist(),
    }


def format_table(result):
    width = max([16] + [len(name) + 2 for name in result["IoU"]])
    lines = [f"{'class':<{width}}{'IoU':>8}"]
    for name, value in result["IoU"].items():
        mark = "" if name in result["present"] else "  (absent)"
        lines.append(f"{name:<{width}}{100 * value:>8.2f}{mark}")
    lines.append(f"{'mIoU (all)':<{width}}{100 * result['mIoU']:>8.2f}")
    lines.append(f"{'mIoU (present)':<{width}}{100 * result['mIoU_present']:>8.2f}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args("eval", argv)
    runtime = distributed.setup(args, strict_batch=False)
    log = setup_logging(args.log_file, runtime.rank)
    try:
        return _evaluate(args, runtime, log)
    finally:
        distributed.cleanup()


def _evaluate(args, runtime, log):
    from dataset.sample import meta_sizes
    log.info("eval.py arguments:")
    print_args(args, log.info)
    # faithful: eval reads the labelled list through the training dataset class, no scale/mirror,
    # on a --input-size canvas (1024x2048 by default). Built first: list errors come before the model.
    dataset = build_eval_dataset(args)
    model, align_corners = build_inference_model(
        model_name(args), args.restore_from, runtime, log, num_classes=args.num_classes,
        trust=args.trust_checkpoint, options=model_kwargs(args))
    loader = build_loader(dataset, args.batch_size, args.num_workers, runtime)
    if args.store_output and runtime.is_main:
        os.makedirs(args.output_path, exist_ok=True)
    cm = ConfusionMatrix(args.num_classes, args.ignore_label)
    for images, labels, meta, names in tqdm(loader, desc="eval", disable=not runtime.is_main):
        labels = labels.long()  # (N, H, W)
        # logits cropped to the image content (input_size), upsampled to the scored label region
        # (label_size) when they differ: the OCR validation sets resize the image, not the label.
        shapes = meta_sizes(meta, "label_size")
        preds = predict_labels(model, images, meta_sizes(meta, "input_size"), align_corners,
                               **predict_options(args),
                               label_shapes=shapes)
        for n, pred in enumerate(preds):
            h, w = shapes[n]
            gt = labels[n, :h, :w]  # faithful: crop the GT to the original size (ignore pixels dropped)
            try:
                cm.update(gt, pred)
            except ValueError as err:
                raise DatasetError(f"{names[n]}: {err}") from None
            if args.store_output:  # trainId maps with the Cityscapes palette
                save_palette_png(pred.numpy(), os.path.join(args.output_path, f"{names[n]}.png"))
    cm.reduce()
    result = summarise(cm, class_names(args.dataset, args.num_classes))
    result.update(model=model_name(args), checkpoint=args.restore_from, dataset=args.dataset,
                  data_list=args.data_list, images=len(dataset))
    if runtime.is_main:
        log.info("per-class IoU (%):\n" + format_table(result))
        log.info(f"meanIU {result['mIoU']:.4f}  (over classes present: {result['mIoU_present']:.4f})")
        for path in results_paths(args):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as handle:
                json.dump(result, handle, indent=1)
            log.info(f"wrote {path}")
    return result


def results_paths(args):
    """results JSON in --output-path, and beside --log-file when one is given."""
    paths = [os.path.join(args.output_path, "results.json")]
    if args.log_file:
        paths.append(os.path.splitext(args.log_file)[0] + "_results.json")
    return paths


if __name__ == "__main__":
    sys.exit(run_main(main))
