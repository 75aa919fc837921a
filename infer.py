"""Segment your own images with a trained model: label maps, colour PNGs, overlays (and logits).

    python infer.py photos/ street.jpg 'more/*.png' --network resnet101 --method asp_oc_dsn \
        --restore-from CS_scenes_40000.pth --output-path ./infer_output
    python infer.py img.png --network hrnetv2_w48 --method ocr --num-classes 150 \
        --restore-from ocrnet_hrnetv2w48_ade20k_train.pth --dataset ade20k --use-flip --use-ms

Inputs are files, folders (recursive) or glob patterns. Whole-image, sliding-window and multi-scale +
flip prediction run through the same ``utils.inference.predict`` as eval.py (``--predict-choice``,
``--use-ms``, ``--ms-scales``, ``--use-flip``, ``--tile-size``). An image that cannot be read or
predicted is reported by name and the others continue; the exit status is then non-zero.
"""
import argparse
import logging
import os
import sys

from tqdm import tqdm

from utils import options
from utils import predict_images as P
from utils.cli import run_main
from utils.errors import ConfigError, DatasetError
from utils.logger import setup_logging


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    options._test_group(parser, "eval")
    P.add_model_flags(parser)
    g = parser.add_argument_group("infer outputs")
    g.add_argument("--alpha", type=float, default=0.5, help="weight of the colour in the overlay")
    options._bool(g, "--label-ids", False, "write Cityscapes labelIds instead of trainIds")
    g.add_argument("--save-logits", nargs="?", const="float16", default=None,
                   choices=("float16", "float32"), help="also write the raw logits (C, H, W) as .npy")
    parser.set_defaults(output_path="./infer_output")
    for action in parser._actions:  # eval's switch; infer.py always writes its outputs
        if action.dest == "store_output":
            action.help = argparse.SUPPRESS
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1], got {args.alpha}")
    P.check_model_flags(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    log = setup_logging(args.log_file)
    images = P.collect_images(args.inputs)
    model, family, num_classes = P.load_model(args, log)
    if args.label_ids and family.palette != "cityscapes":
        raise ConfigError(f"--label-ids maps Cityscapes trainIds; --dataset {family.name} has no labelIds")
    align_corners = bool(getattr(model, "align_corners", True))
    log.info(f"{len(images)} image(s) -> {args.output_path}")
    scales = list(args.ms_scales) if args.use_ms else [args.whole_scale]
    failed = []
    for path, out_name in tqdm(images, desc="infer", dynamic_ncols=True):
        try:
            rgb = P.read_rgb(path)                                         # (H, W, 3)
            logits = P.predict_logits(model, P.preprocess(rgb, family), rgb.shape[:2],
                                      num_classes=num_classes, scales=scales, flip=args.use_flip,
                                      tile_size=args.tile_size, mode=args.predict_choice,
                                      align_corners=align_corners)        # (C, H, W)
            P.write_outputs(args.output_path, out_name, rgb, logits, family, alpha=args.alpha,
                            label_ids=args.label_ids, logits_dtype=args.save_logits)
        except (OSError, ValueError, RuntimeError) as err:
            if os.environ.get("OCNET_DEBUG"):
                raise
            failed.append(path)
            log.error(f"{path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    done = len(images) - len(failed)
    log.info(f"wrote the outputs of {done} image(s) to {args.output_path} "
             f"(*_color.png, *_overlay.png, *_label{'Ids' if args.label_ids else 'TrainIds'}.png)")
    if failed:
        raise DatasetError(f"{len(failed)} of {len(images)} image(s) failed: {', '.join(failed)}")
    return 0  # the exit status (run_main): every image was written


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(run_main(main))
