# Port of OCNet.pytorch config/__init__.py (679a45b). MIT License; original authors: OCNet.pytorch team.
"""The one command-line parser shared by train.py, eval.py and generate_submit.py.

Flag names and defaults are the original's (OCNET_SPEC §7). Differences, each documented in README.md:

* every boolean accepts ``True``/``False`` *and* works as a bare switch (``--ohem-single`` alone means
  True), so the run scripts can finally set ``--ohem-single``;
* ``--method`` defaults to ``asp_oc_dsn`` (the original default ``base`` named no model, issue #13);
* ``--data-dir`` / ``--restore-from`` default to the paths the run scripts pass, not the authors' cluster;
* new flags: ``--resume``, ``--num-workers``, ``--amp``, ``--min-lr``, ``--stem``, ``--trust-checkpoint``,
  ``--allow-random-init``, ``--ms-scales``, ``--tile-size``, ``--zip``.
"""
import argparse

MODES = ("train", "eval", "submit")
# Paper-default multi-scale set (OCNET_SPEC §8); configurable with --ms-scales.
DEFAULT_MS_SCALES = "0.75,1.0,1.25"


def str2bool(value):
    """Parse a command-line boolean ('True', 'false', '1', 'no', ...) into a real bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "1", "on"):
        return True
    if text in ("false", "f", "no", "n", "0", "off", "none"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got {value!r}")


def int_pair(value):
    """'769,769' -> (769, 769); a single number gives a square."""
    try:
        parts = [int(p) for p in str(value).split(",") if p.strip()]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected 'H,W' with positive integers, got {value!r}")
    return tuple(parts)


def float_list(value):
    """'0.75,1,1.25' -> [0.75, 1.0, 1.25]."""
    try:
        scales = [float(p) for p in str(value).split(",") if p.strip()]
    except ValueError:
        scales = []
    if not scales or min(scales) <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {value!r}")
    return scales


def _bool(group, flag, default, help_text):
    """A boolean flag usable both as ``--flag`` and as ``--flag True|False``."""
    group.add_argument(flag, type=str2bool, nargs="?", const=True, default=default,
                       metavar="BOOL", help=f"{help_text} (default: {default})")


def _data_group(parser, mode):
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="cityscapes_test" if mode == "submit" else "cityscapes_train",
                   help="dataset registry name (dataset.DATASETS)")
    g.add_argument("--data-dir", default="./dataset/cityscapes",
                   help="dataset root; list entries are relative to it")
    g.add_argument("--data-list", default="./dataset/list/cityscapes/train.lst",
                   help="tab-separated list file (image<TAB>label)")
    g.add_argument("--ignore-label", type=int, default=255)
    g.add_argument("--num-classes", type=int, default=19)
    # faithful: train crops 769x769; eval/submit hard-coded a 1024x2048 canvas (OCNET_SPEC §8).
    g.add_argument("--input-size", type=int_pair, default=(769, 769) if mode == "train" else (1024, 2048),
                   help="H,W of the training crop / of the eval canvas")
    g.add_argument("--batch-size", type=int, default=8,
                   help="GLOBAL batch, split over the GPUs/processes")
    g.add_argument("--num-workers", type=int, default=4, help="DataLoader worker processes")
    if mode == "train":
        _bool(g, "--random-mirror", False, "random horizontal flip")
        _bool(g, "--random-scale", False, "random scale 0.5-2.1")


def _model_group(parser):
    g = parser.add_argument_group("model")
    g.add_argument("--network", default="resnet101", help="backbone part of the model name")
    # changed: the original default 'base' named no model (OCNet issue #13).
    g.add_argument("--method", default="asp_oc_dsn",
                   help="head part; the model is '<network>_<method>' in network.NETWORKS")
    g.add_argument("--stem", default=None, choices=("deep", "v1c", "standard"),
                   help="backbone stem; 'standard' (7x7) loads torchvision ImageNet weights")
    g.add_argument("--ocr-preset", default=None, choices=("ssseg", "mmseg", "openseg"),
                   help="OCRNet head shape (default ssseg, the seed table); mmseg for converted "
                        "mmsegmentation weights")
    g.add_argument("--stem-relu", type=str2bool, default=None, metavar="BOOL",
                   help="HRNet stem ReLU (default from --ocr-preset: off for ssseg seed weights)")
    g.add_argument("--restore-from", default="./pretrained_model/resnet101-imagenet.pth",
                   help="train: ImageNet backbone (start-iters 0) or full model; eval/submit: checkpoint")
    _bool(g, "--trust-checkpoint", False,
          "allow full pickle loading (torch.load weights_only=False); only for files you trust")


def _optim_group(parser):
    g = parser.add_argument_group("optimisation")
    g.add_argument("--learning-rate", type=float, default=1e-2)
    g.add_argument("--min-lr", type=float, default=0.0, help="poly floor: (base-min)*(1-t/T)^p + min")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--power", type=float, default=0.9)
    g.add_argument("--num-steps", type=int, default=40000)
    g.add_argument("--start-iters", type=int, default=0)
    _bool(g, "--fix-lr", False, "keep the learning rate fixed (the original only logged it fixed)")
    _bool(g, "--amp", False, "native torch.amp mixed precision")


def _speed_group(parser):
    """Speed options (utils/accel.py); none changes the maths."""
    g = parser.add_argument_group("speed")
    _bool(g, "--compile", False, "torch.compile the model and the loss (one warning, then eager "
          "mode, where it cannot work)")
    g.add_argument("--channels-last", type=str2bool, nargs="?", const=True, default=None,
                   metavar="BOOL", help="store activations channels-last (NHWC) (default: on CUDA "
                   "only, where it is faster)")


def _loss_group(parser):
    g = parser.add_argument_group("loss")
    _bool(g, "--ohem", False, "online hard example mining")
    _bool(g, "--ohem-single", False, "OHEM on the main head only (CriterionOhemDSN_single)")
    g.add_argument("--ohem-thres", type=float, default=0.6)
    g.add_argument("--ohem-keep", type=int, default=100000)
    g.add_argument("--dsn-weight", type=float, default=0.4)
    # faithful: the original parsed --use-weight but train.py always used the class weights.
    _bool(g, "--use-weight", True, "Cityscapes class weights in the CE")


def _checkpoint_group(parser):
    g = parser.add_argument_group("checkpoints")
    g.add_argument("--snapshot-dir", default="./snapshots_psp_ohem_trainval/")
    g.add_argument("--save-pred-every", type=int, default=5000)
    g.add_argument("--resume", default=None, metavar="PATH|auto",
                   help="continue exactly from a resume file ('auto' = <snapshot-dir>/resume.pth)")
    _bool(g, "--allow-random-init", False,
          "train from random init (with a warning) when --restore-from is missing")
    _bool(g, "--zero-init-residual", False,
          "zero the last BN weight of every bottleneck before training (not in the paper; from-scratch demo)")


def _test_group(parser, mode):
    g = parser.add_argument_group("inference")
    _bool(g, "--use-flip", False, "average with the horizontally flipped pass")
    _bool(g, "--use-ms", False, "multi-scale inference over --ms-scales")
    g.add_argument("--ms-scales", type=float_list, default=float_list(DEFAULT_MS_SCALES))
    g.add_argument("--predict-choice", default="whole", choices=("whole", "sliding"),
                   help="'whole' image or 'sliding' windows of --tile-size at every scale")
    g.add_argument("--whole-scale", type=float, default=1.0, help="single scale when not --use-ms")
    g.add_argument("--tile-size", type=int_pair, default=(1024, 2048), help="sliding-window tile H,W")
    _bool(g, "--store-output", mode == "submit", "write the predicted PNGs")
    g.add_argument("--output-path", default="./seg_output_eval_set")
    if mode == "submit":
        g.add_argument("--zip", default=None, help="zip to write (default: <output-path>.zip)")


def _runtime_group(parser):
    g = parser.add_argument_group("runtime")
    g.add_argument("--gpu", default="0", help="GPU ids, e.g. 0,1,2,3 (ignored without CUDA)")
    g.add_argument("--seed", type=int, default=304)
    g.add_argument("--log-file", default="", help="also log to this file")


def _legacy_group(parser):
    """Flags of the original that nothing ever read; accepted so old command lines still parse."""
    g = parser.add_argument_group("unused flags of the original (accepted, ignored)")
    for flag in ("--is-training", "--not-restore-last", "--use-parallel", "--use-normalize-transform",
                 "--reduce", "--eval"):
        g.add_argument(flag, type=str2bool, nargs="?", const=True, default=False, help=argparse.SUPPRESS)
    for flag, default in (("--random-seed", 304), ("--save-num-images", 2), ("--ohem-thres1", 0.8),
                          ("--ohem-thres2", 0.5), ("--pair-weight", 1.0), ("--start-epochs", 0),
                          ("--end-epochs", 120), ("--save-epoch", 20), ("--criterion", "ce"),
                          ("--use-val", None), ("--use-extra", None)):
        g.add_argument(flag, default=default, help=argparse.SUPPRESS)


def build_parser(mode="train"):
    """Return the ArgumentParser for ``mode`` in ('train', 'eval', 'submit')."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    descriptions = {"train": "Train an OCNet model.", "eval": "Evaluate mIoU on a labelled list.",
                    "submit": "Write Cityscapes test-server PNGs and zip."}
    parser = argparse.ArgumentParser(description=descriptions[mode],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _data_group(parser, mode)
    _model_group(parser)
    if mode == "train":
        _optim_group(parser)
        _speed_group(parser)
        _loss_group(parser)
        _checkpoint_group(parser)
    else:
        _test_group(parser, mode)
    _runtime_group(parser)
    _legacy_group(parser)
    return parser


def parse_args(mode, argv=None):
    """Parse ``argv`` and validate what argparse cannot; errors name the flag and value."""
    parser = build_parser(mode)
    args = parser.parse_args(argv)
    if args.batch_size <= 0:
        parser.error(f"--batch-size must be positive, got {args.batch_size}")
    if args.num_workers < 0:
        parser.error(f"--num-workers must be >= 0, got {args.num_workers}")
    if mode == "train":
        if args.num_steps <= 0:
            parser.error(f"--num-steps must be positive, got {args.num_steps}")
        if not 0 <= args.start_iters < args.num_steps:
            parser.error(f"--start-iters must be in [0, --num-steps), got {args.start_iters}")
        if args.save_pred_every <= 0:
            parser.error(f"--save-pred-every must be positive, got {args.save_pred_every}")
    args.mode = mode
    return args


def model_name(args):
    """The registry name, built exactly as the original: '<network>_<method>'."""
    return "_".join([args.network, args.method])


def model_kwargs(args):
    """Builder options given on the command line (only those set, so each builder keeps its defaults)."""
    options = {"stem": args.stem, "preset": args.ocr_preset, "stem_relu": args.stem_relu}
    return {k: v for k, v in options.items() if v is not None}


def print_args(args, log):
    """Log every argument, one per line, sorted (what the original printed at start)."""
    for key in sorted(vars(args)):
        log(f"  {key}: {getattr(args, key)}")


def gpu_ids(args):
    """'0,1,2,3' -> [0, 1, 2, 3]; a bad list names --gpu."""
    text = str(args.gpu).strip()
    if not text:
        return []
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--gpu must be a comma-separated list of integers, got {args.gpu!r}") from None
