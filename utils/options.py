# Port of OCNet.pytorch config/__init__.py (679a45b). MIT License; original authors: OCNet.pytorch team.
"""The one command-line parser shared by train.py, eval.py and generate_submit.py.

Flag names and defaults are the original's (its train.py / eval.py). Differences, each documented in README.md:

* every boolean accepts ``True``/``False`` *and* works as a bare switch (``--ohem-single`` alone means
  True), so the run scripts can finally set ``--ohem-single``;
* ``--method`` defaults to ``asp_oc_dsn`` (the original default ``base`` named no model, issue #13);
* ``--data-dir`` / ``--restore-from`` default to the paths the run scripts pass, not the authors' cluster;
* new flags: ``--resume``, ``--num-workers``, ``--amp``, ``--min-lr``, ``--stem``, ``--trust-checkpoint``,
  ``--allow-random-init``, ``--ms-scales``, ``--tile-size``, ``--zip``.
"""
import argparse
import math

from utils.errors import ConfigError

MODES = ("train", "eval", "submit")
# Paper-default multi-scale set (the original's predict_multi_scale); configurable with --ms-scales.
DEFAULT_MS_SCALES = "0.75,1.0,1.25"
# network.resnet.MEMORY_MODES (not imported: the parser stays free of torch; a test keeps them equal)
BACKBONE_MEMORY_MODES = ("literal", "relu", "recompute")
# utils.accel.COMPILE_MODES (torch.compile modes; not imported for the same reason, same test)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


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
                       metavar="BOOL", help=f"{help_text} (default: %(default)s)")


def trust_checkpoint_help():
    """Help text of --trust-checkpoint (shared by every script that reads checkpoints)."""
    return ("load checkpoints with full unpickling (torch.load weights_only=False): this EXECUTES any "
            "code stored in the file; only for files from a source you trust")


def _data_group(parser, mode):
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="cityscapes_test" if mode == "submit" else "cityscapes_train",
                   help="dataset registry name (dataset.DATASETS)")
    g.add_argument("--data-dir", default="./dataset/cityscapes",
                   help="dataset root; list entries are relative to it")
    # The next four default to "not given" (None) and are then taken from the --dataset class
    # (resolve_data_defaults): e.g. cityscapes_train: train.lst / val.lst, 769x769 crops / the
    # 1024x2048 eval canvas (the original's values), 19 classes; voc_*: 512x512, 21 classes.
    g.add_argument("--data-list", default=None,
                   help="list file (image<TAB>label lines, or ids); default: the dataset's own")
    g.add_argument("--ignore-label", type=int, default=None, help="default: the dataset's (255)")
    g.add_argument("--num-classes", type=int, default=None, help="default: the dataset's")
    g.add_argument("--input-size", type=int_pair, default=None,
                   help="H,W of the training crop / of the eval canvas; default: the dataset's")
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
    _bool(g, "--trust-checkpoint", False, trust_checkpoint_help())


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
    g.add_argument("--compile-mode", default="default", choices=COMPILE_MODES,
                   help="torch.compile mode with --compile; reduce-overhead replays the static-shape "
                   "training step as CUDA graphs (default: %(default)s)")
    g.add_argument("--channels-last", type=str2bool, nargs="?", const=True, default=None,
                   metavar="BOOL", help="store activations channels-last (NHWC); not given: on CUDA for models "
                   "without InPlace-ABN (the OCR models), off on the CPU and for the OCNet models, "
                   "whose InPlace-ABN kernels would copy NHWC tensors")
    # Not a resume-must-match flag (utils/resume.py): it changes what autograd keeps, not the maths.
    g.add_argument("--backbone-memory", default=None, choices=BACKBONE_MEMORY_MODES,
                   help="what the backbone keeps for backward (the same maths in every mode): "
                        "'literal' (the original graph), 'relu' (one tensor per norm -> ReLU -> conv "
                        "pair: the ReLU, with stock BN also the norm, recomputed) or 'recompute' "
                        "(OCNet only: also conv3 + bn3 of every bottleneck; least memory, one more "
                        "1x1 conv per block); not given: the model's default, relu for the OCNet "
                        "models, literal for the OCR models")


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
    g.add_argument("--resume-override", default="", metavar="FLAGS",
                   help="comma-separated flags that may differ from the resume file's run (e.g. "
                        "num-steps,learning-rate), or 'all'; by default every flag that changes the "
                        "optimisation must match")
    _bool(g, "--allow-random-init", False,
          "train from random init (with a warning) when --restore-from is missing")
    _bool(g, "--zero-init-residual", False,
          "zero the last BN weight of every bottleneck before training (not in the paper; from-scratch demo)")


def _non_negative_int(value):
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value!r}")
    return number


def _image_log_group(parser):
    """TensorBoard image grids of the training batch (input, ground truth, prediction)."""
    g = parser.add_argument_group("image logs")
    g.add_argument("--save-num-images", type=_non_negative_int, default=2,
                   help="samples of the batch in the TensorBoard image grid (0: no image logs)")
    g.add_argument("--image-every", type=_non_negative_int, default=None,
                   help="log the image grid every N iterations; not given: every "
                        "--save-pred-every (default: %(default)s)")


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
    g.add_argument("--dist-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="under torchrun: stop with an error when another process does not answer for "
                        "this long (a dead rank), instead of waiting forever")


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
        if flag in parser._option_string_actions:  # a real flag in this mode (--save-num-images)
            continue
        g.add_argument(flag, default=default, help=argparse.SUPPRESS)


def build_parser(mode="train"):
    """Return the ArgumentParser for ``mode`` in ('train', 'eval', 'submit')."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
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
        _image_log_group(parser)
    else:
        _test_group(parser, mode)
    _runtime_group(parser)
    _legacy_group(parser)
    return parser


def _check_range(parser, args, flag, low=None, high=None, low_open=False, high_open=False):
    """parser.error unless the value of ``flag`` is finite and within [low, high] (or open ends)."""
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    ok = math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        parser.error(f"{flag} must be a finite number {' and '.join(s for s in (lo, hi) if s)}, got {value}")


def _validate_train(parser, args):
    if args.num_steps <= 0:
        parser.error(f"--num-steps must be positive, got {args.num_steps}")
    if not 0 <= args.start_iters < args.num_steps:
        parser.error(f"--start-iters must be in [0, --num-steps), got {args.start_iters}")
    if args.save_pred_every <= 0:
        parser.error(f"--save-pred-every must be positive, got {args.save_pred_every}")
    _check_range(parser, args, "--learning-rate", 0, low_open=True)
    _check_range(parser, args, "--min-lr", 0, args.learning_rate)
    _check_range(parser, args, "--momentum", 0, 1, high_open=True)
    _check_range(parser, args, "--weight-decay", 0)
    _check_range(parser, args, "--power", 0)
    _check_range(parser, args, "--dsn-weight", 0)
    _check_range(parser, args, "--ohem-thres", 0, 1, low_open=True)
    if args.ohem_keep < 0:
        parser.error(f"--ohem-keep must be >= 0, got {args.ohem_keep}")
    if args.compile_mode != "default" and not args.compile:
        parser.error(f"--compile-mode {args.compile_mode} needs --compile")


def resolve_data_defaults(args, mode):
    """Fill --data-list / --input-size / --num-classes / --ignore-label that were not given from the
    --dataset class (``dataset.dataset_defaults``). A --num-classes other than the dataset's is a
    ConfigError: the labels would not fit the model's output."""
    from dataset import dataset_defaults
    defaults = dataset_defaults(args.dataset, mode)
    if args.num_classes is not None and args.num_classes != defaults["num_classes"]:
        from utils.errors import ConfigError
        raise ConfigError(f"--num-classes {args.num_classes} does not match --dataset {args.dataset} "
                          f"({defaults['num_classes']} classes); leave --num-classes out")
    for key, value in defaults.items():
        if getattr(args, key) in (None, ""):
            setattr(args, key, value)
    return args


def parse_args(mode, argv=None):
    """Parse ``argv`` and validate what argparse cannot; errors name the flag and value (status 2)."""
    parser = build_parser(mode)
    args = parser.parse_args(argv)
    if args.num_classes is not None and args.num_classes <= 0:
        parser.error(f"--num-classes must be positive, got {args.num_classes}")
    resolve_data_defaults(args, mode)
    if args.batch_size <= 0:
        parser.error(f"--batch-size must be positive, got {args.batch_size}")
    if args.num_workers < 0:
        parser.error(f"--num-workers must be >= 0, got {args.num_workers}")
    _check_range(parser, args, "--dist-timeout", 0, low_open=True)
    if mode == "train":
        _validate_train(parser, args)
    args.mode = mode
    return args


def model_name(args):
    """The registry name, built exactly as the original: '<network>_<method>'."""
    return "_".join([args.network, args.method])


def model_kwargs(args):
    """Builder options given on the command line (only those set, so each builder keeps its defaults)."""
    options = {"stem": args.stem, "preset": args.ocr_preset, "stem_relu": args.stem_relu,
               "backbone_memory": getattr(args, "backbone_memory", None)}  # train-only flag
    return {k: v for k, v in options.items() if v is not None}


def predict_options(args):
    """The prediction options of ``utils.engine.predict_labels`` from the eval/submit flags."""
    scales = list(args.ms_scales) if args.use_ms else [args.whole_scale]
    return dict(num_classes=args.num_classes, scales=scales, flip=args.use_flip,
                tile_size=tuple(args.tile_size), mode=args.predict_choice)


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
        raise ConfigError(f"--gpu must be a comma-separated list of integers, got {args.gpu!r}") from None
