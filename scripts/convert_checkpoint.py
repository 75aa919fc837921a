# New (no original counterpart): command-line front end of utils/convert.py. MIT License.
"""Convert a released sssegmentation / mmseg OCRNet checkpoint (or an original OCNet snapshot)
into a plain state_dict that ``train.py`` / ``eval.py --restore-from`` load strictly.

    python -m scripts.convert_checkpoint ocrnet_hrnetv2w48_ade20k_train.pth out.pth \
        --network hrnetv2_w48 --method ocr --num-classes 150                # ssseg, seed era
    python -m scripts.convert_checkpoint ocrnet_hr48_512x512_160k_ade20k.pth out.pth \
        --network hrnetv2_w48 --method ocr --num-classes 150 --ocr-preset mmseg
    python -m scripts.convert_checkpoint CS_scenes_40000.pth out.pth \
        --network resnet101 --method asp_oc_dsn --num-classes 19

Prints what was mapped and what did not fit (and why); exits with status 1 when the model was not
completely filled unless ``--allow-partial`` is given; with status 2 and one message for a missing,
corrupt or refused file.
"""
import argparse
import sys

from utils.checkpoint import atomic_save, read_checkpoint
from utils.cli import run_main
from utils.convert import FORMATS, detect_format, import_state_dict
from utils.options import str2bool, trust_checkpoint_help


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="checkpoint to import")
    p.add_argument("dst", help="where to write the converted plain state_dict")
    p.add_argument("--network", required=True, help="e.g. resnet50, hrnetv2_w48, resnet101")
    p.add_argument("--method", default="ocr", help="ocr, or an OCNet method such as asp_oc_dsn")
    p.add_argument("--num-classes", type=int, required=True)
    p.add_argument("--format", default="auto", choices=("auto",) + FORMATS)
    p.add_argument("--ocr-preset", default=None, choices=("ssseg", "mmseg", "openseg"),
                   help="OCR head shape (default: ssseg, or mmseg for an mmseg checkpoint)")
    p.add_argument("--stem-relu", type=str2bool, default=None, metavar="BOOL",
                   help="HRNet stem ReLU (default from the preset: ssseg False, mmseg True)")
    p.add_argument("--allow-partial", type=str2bool, nargs="?", const=True, default=False,
                   metavar="BOOL", help="write the file even if some tensors did not fit")
    p.add_argument("--trust-checkpoint", type=str2bool, nargs="?", const=True, default=False,
                   metavar="BOOL", help=trust_checkpoint_help())
    return p


def main(argv=None):
    import network
    args = build_parser().parse_args(argv)
    name = f"{args.network}_{args.method}"
    state = read_checkpoint(args.src, args.trust_checkpoint).state_dict  # the file is read once
    fmt = detect_format(state) if args.format == "auto" else args.format
    kwargs = {}
    if args.method == "ocr":
        kwargs["preset"] = args.ocr_preset or ("mmseg" if fmt == "mmseg" else "ssseg")
        if args.stem_relu is not None:
            kwargs["stem_relu"] = args.stem_relu
    model = network.get_segmentation_model(name, num_classes=args.num_classes, **kwargs)
    report = import_state_dict(model, state, fmt=fmt)
    print(f"{args.src} -> {name} {kwargs}")
    print(report.summary())
    if not report.ok and not args.allow_partial:
        print("not written: the model was not completely filled (use --allow-partial to write "
              "it anyway)", file=sys.stderr)
        return 1
    atomic_save(model.state_dict(), args.dst)
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
