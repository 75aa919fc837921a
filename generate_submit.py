# Port of OCNet.pytorch generate_submit.py (679a45b). MIT License.
"""Write the Cityscapes test-server submission: one labelId PNG per test image, checked, then zipped.

    python generate_submit.py --network resnet101 --method asp_oc_dsn --dataset cityscapes_test \
        --data-dir ./dataset/cityscapes --data-list ./dataset/list/cityscapes/test.lst \
        --restore-from CS_scenes_40000.pth --output-path ./visualize/test

The test list comes from ``python -m dataset.cityscapes make-lists`` (the runners make it).
Files: ``<output-path>/<city>_<seq>_<frame>_leftImg8bit.png`` (flat folder, values = Cityscapes labelIds,
size = the input image), then ``<output-path>.zip`` (or --zip) with those files at its top level.
"""
import os
import sys
import zipfile

import numpy as np
from PIL import Image
from tqdm import tqdm

from utils import distributed
from utils.cli import run_main
from utils.engine import build_inference_model, build_loader, predict_labels
from utils.errors import DatasetError
from utils.logger import setup_logging
from utils.options import model_kwargs, model_name, parse_args, predict_options, print_args


def write_label_png(train_ids, path):
    """trainIds (h, w) -> labelIds, saved as a paletted PNG (the palette is cosmetic; the server reads
    the values)."""
    from utils.visualize import get_voc_palette, save_palette_png, trainid_to_labelid
    label_ids = trainid_to_labelid(np.asarray(train_ids, dtype=np.uint8))
    # faithful: a 'P' PNG with the PASCAL-VOC palette, as the original (cosmetic; values = labelIds)
    return save_palette_png(label_ids, path, palette=get_voc_palette())


def verify_submission(folder, expected):
    """Check the written PNGs: exactly the expected names, each of its image's size, labelId values only.

    Args:
        folder: the output folder.
        expected: {file name: (h, w)}.
    Raises:
        ValueError listing what is wrong (missing/extra files, wrong size, invalid values).
    """
    from dataset.labels import TRAINID_TO_ID
    valid = np.array(sorted(TRAINID_TO_ID.values()), dtype=np.int64)
    present = {f for f in os.listdir(folder) if f.endswith(".png")}
    problems = []
    missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
    if missing:
        problems.append(f"{len(missing)} missing: {', '.join(missing[:3])}")
    if extra:
        problems.append(f"{len(extra)} unexpected files: {', '.join(extra[:3])}")
    for name in sorted(set(expected) & present):
        with Image.open(os.path.join(folder, name)) as img:
            values = np.asarray(img)
        if values.shape != tuple(expected[name]):
            problems.append(f"{name}: size {values.shape} != image size {tuple(expected[name])}")
        bad = np.setdiff1d(np.unique(values), valid)
        if bad.size:
            problems.append(f"{name}: values {bad[:5].tolist()} are not evaluated labelIds")
    if problems:
        raise DatasetError(f"submission in {folder} failed verification:\n  " + "\n  ".join(problems[:20]))
    return len(expected)


def pack_zip(folder, names, zip_path):
    """Zip ``names`` from ``folder`` at the archive's top level (what the server takes)."""
    tmp = zip_path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(names):
            archive.write(os.path.join(folder, name), arcname=name)
    os.replace(tmp, zip_path)
    return zip_path


def main(argv=None):
    args = parse_args("submit", argv)
    runtime = distributed.setup(args, strict_batch=False)
    log = setup_logging(args.log_file, runtime.rank)
    try:
        return _submit(args, runtime, log)
    finally:
        distributed.cleanup()


def _submit(args, runtime, log):
    from dataset import get_segmentation_dataset
    from dataset.sample import meta_sizes
    log.info("generate_submit.py arguments:")
    print_args(args, log.info)
    if not args.store_output:
        # faithful: the original wrote files only with --store-output True (the scripts pass True).
        log.warning("--store-output False: nothing will be written")
    # built first: a wrong --data-dir or list fails before the model is built
    dataset = get_segmentation_dataset(args.dataset, root=args.data_dir, list_path=args.data_list,
                                       crop_size=args.input_size)
    model, align_corners = build_inference_model(
        model_name(args), args.restore_from, runtime, log, num_classes=args.num_classes,
        trust=args.trust_checkpoint, options=model_kwargs(args))
    loader = build_loader(dataset, args.batch_size, args.num_workers, runtime)
    os.makedirs(args.output_path, exist_ok=True)
    expected = {}
    for images, meta, names in tqdm(loader, desc="submit", disable=not runtime.is_main):
        # one PNG of the original image size per test image
        preds = predict_labels(model, images, meta_sizes(meta, "input_size"), align_corners,
                               **predict_options(args), label_shapes=meta_sizes(meta, "orig_size"))
        for pred, name in zip(preds, names):
            file_name = f"{os.path.basename(name)}.png"
            expected[file_name] = tuple(pred.shape)
            if args.store_output:
                write_label_png(pred.numpy(), os.path.join(args.output_path, file_name))
    gathered = distributed.all_gather_object(expected, runtime)
    expected = {k: v for part in gathered for k, v in part.items()}
    distributed.barrier(runtime)
    if not args.store_output or not runtime.is_main:
        return None
    if len(expected) != len(dataset):
        raise DatasetError(f"{len(dataset)} test images but {len(expected)} distinct output names")
    count = verify_submission(args.output_path, expected)
    zip_path = args.zip or args.output_path.rstrip("/\\") + ".zip"
    pack_zip(args.output_path, expected, zip_path)
    log.info(f"verified {count} labelId PNGs in {args.output_path}; wrote {zip_path}")
    return zip_path


if __name__ == "__main__":
    sys.exit(run_main(main))
