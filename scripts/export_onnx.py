"""Export a registry model to ONNX (InPlace-ABN folded to BatchNorm + activation) and check it with
onnxruntime against PyTorch.

    python -m scripts.export_onnx --network resnet101 --method asp_oc_dsn \
        --restore-from CS_scenes_40000.pth --input-size 1024,2048 --output asp_oc.onnx
    python -m scripts.export_onnx --network hrnetv2_w18s --method ocr --num-classes 19 \
        --restore-from ocr.pth --dynamic --output ocr.onnx      # any H, W at run time

The graph maps a normalised image (N, 3, H, W) (the model's eval normalisation, see infer.py) to
logits (N, K, H, W) (``--upsample False``: at the model's output stride). The check runs a random
input of ``--input-size`` (and with ``--dynamic`` also of a second size) through both and prints the
max relative error ``max |onnx - torch| / max |torch|``; above ``--tol`` (1e-4) it fails (status 2).
Needs ``pip install onnx onnxruntime``.
"""
import argparse
import os
import sys

import torch

from utils import onnx_export as X
from utils import options
from utils.cli import run_main
from utils.logger import setup_logging


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    options._model_group(parser)
    g = parser.add_argument_group("export")
    g.add_argument("--num-classes", type=int, default=19)
    g.add_argument("--output", default="./model.onnx", help="ONNX file to write")
    g.add_argument("--input-size", type=options.int_pair, default=(512, 1024), metavar="H,W",
                   help="input height,width of the export (and of the check)")
    options._bool(g, "--dynamic", False, "dynamic batch, height and width")
    options._bool(g, "--upsample", True, "upsample the logits to the input size inside the graph")
    g.add_argument("--opset", type=int, default=X.MIN_OPSET, help=f"ONNX opset (>= {X.MIN_OPSET})")
    g.add_argument("--tol", type=float, default=1e-4, help="largest accepted max relative error")
    options._bool(g, "--allow-random-init", False, "export random weights when --restore-from is not given")
    parser.set_defaults(restore_from=None)
    return parser


def check_sizes(size, dynamic):
    """The export size, and with --dynamic a second, different one (to catch baked-in shapes)."""
    h, w = size
    return [(h, w), (h + 16 + h // 4, w + 24 + w // 8)] if dynamic else [(h, w)]


def main(argv=None):
    import network
    from utils.predict_images import load_weights
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.restore_from and not args.allow_random_init:
        parser.error("--restore-from is required (or --allow-random-init to export random weights)")
    log = setup_logging()
    X.require_onnx()
    name = options.model_name(args)
    model = network.get_segmentation_model(name, num_classes=args.num_classes, **options.model_kwargs(args))
    if args.restore_from:
        fmt = load_weights(model, args.restore_from, args.trust_checkpoint)
        log.info(f"loaded {args.restore_from} ({fmt} format) into {name}")
    else:
        log.warning(f"exporting {name} with RANDOM weights (--allow-random-init)")
    model.eval()
    folded = X.fold_abn(model)
    net = X.Deployable(model, upsample=args.upsample).eval()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    X.export_onnx(net, args.output, args.input_size, args.dynamic, args.opset)
    log.info(f"wrote {args.output} (opset {args.opset}, {folded} norm layers folded, "
             f"{'dynamic' if args.dynamic else 'fixed'} H/W)")
    with torch.no_grad():
        results = X.check_export(net, args.output, check_sizes(args.input_size, args.dynamic), args.tol)
    for (h, w), err in results:
        print(f"onnxruntime vs PyTorch at {h}x{w}: max relative error {err:.3e} (tolerance {args.tol:g})")
    return results


if __name__ == "__main__":
    sys.exit(run_main(main))
