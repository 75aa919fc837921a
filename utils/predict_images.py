"""What infer.py does with each image: find the files, load the model, normalise like the model's eval
dataset, predict through :func:`utils.inference.predict`, write the outputs.

Pre-processing per model family (the eval dataset's own transform functions, not a re-coding):

* OCNet (``resnet101_*`` OC / baseline models, ``--dataset cityscapes``): the original Caffe pipeline,
  :func:`dataset.transforms.caffe_normalize` (RGB minus the Caffe *BGR* means, no std, a kept quirk
  of the original). The image is not resized.
* OCRNet (``*_ocr``; ``--dataset cityscapes_ocr``, ``ade20k`` or ``voc``): the recipe's validation
  protocol, :func:`dataset.seg_transforms.resize_keep_ratio` into the dataset's base scale, then
  :func:`dataset.seg_transforms.normalize` (ImageNet mean/std, RGB). The logits are upsampled back to
  the image size (bilinear, the model's ``align_corners``) before the argmax, as eval.py does.

Outputs per image ``<name>``: ``<name>_labelTrainIds.png`` (``_labelIds.png`` with ``--label-ids``),
``<name>_color.png`` (dataset palette), ``<name>_overlay.png`` (colour over the image, ``--alpha``),
and with ``--save-logits`` ``<name>_logits.npy`` (C, H, W) in float16 or float32.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dataset import seg_transforms as S
from dataset import transforms as T
from utils.errors import CheckpointError, ConfigError, MissingFileError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class Family:
    """How a dataset's eval pipeline feeds the network and colours its classes."""

    name: str
    normalise: str             # "caffe" (OCNet) or "imagenet" (OCRNet recipe)
    base_scale: tuple | None   # keep-ratio resize into (long, short) edges; None = no resize
    palette: str               # "cityscapes" or "voc"
    num_classes: int


def _recipe_scale(cls):
    return tuple(cls.BASE_SCALE)


def families():
    """``--dataset`` choices of infer.py -> :class:`Family` (read from the dataset classes)."""
    from dataset.ade20k import ADE20KSegmentation
    from dataset.cityscapes_ocr import CityscapesOCR
    from dataset.labels import NUM_CLASSES
    from dataset.voc import VOCSegmentation
    return {
        "cityscapes": Family("cityscapes", "caffe", None, "cityscapes", NUM_CLASSES),
        "cityscapes_ocr": Family("cityscapes_ocr", "imagenet", _recipe_scale(CityscapesOCR),
                                 "cityscapes", CityscapesOCR.NUM_CLASSES),
        "ade20k": Family("ade20k", "imagenet", _recipe_scale(ADE20KSegmentation), "voc",
                         ADE20KSegmentation.NUM_CLASSES),
        "voc": Family("voc", "imagenet", _recipe_scale(VOCSegmentation), "voc",
                      VOCSegmentation.NUM_CLASSES),
    }


def default_family(model, num_classes):
    """OCNet models -> cityscapes; OCRNet -> the recipe dataset with that many classes."""
    from network.ocrnet import OCRNet
    if not isinstance(model, OCRNet):
        return "cityscapes"
    return {150: "ade20k", 21: "voc"}.get(num_classes, "cityscapes_ocr")


# ---------------------------------------------------------------------------------------------- inputs
def _is_image(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def collect_images(inputs):
    """[(path, output name)] for files, folders (searched recursively) and glob patterns.

    A folder's images keep their sub-path in the output name (``a/b.png`` -> ``a/b``); a file or
    glob match is named by its basename. Raises MissingFileError for an input that matches nothing
    and ConfigError when two inputs would write the same output name.
    """
    found, missing = [], []
    for spec in inputs:
        if os.path.isdir(spec):
            for root, _, names in sorted(os.walk(spec)):
                for fname in sorted(names):
                    path = os.path.join(root, fname)
                    if _is_image(path):
                        found.append((path, os.path.splitext(os.path.relpath(path, spec))[0]))
        elif os.path.isfile(spec):
            found.append((spec, os.path.splitext(os.path.basename(spec))[0]))
        elif glob.has_magic(spec):
            matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not matches:
                missing.append(spec)
            found += [(p, os.path.splitext(os.path.basename(p))[0]) for p in matches]
        else:
            missing.append(spec)
    if missing:
        raise MissingFileError(f"no such image file, folder or glob match: {', '.join(missing)}")
    if not found:
        raise ConfigError(f"no images found in {', '.join(inputs)} (extensions: "
                          f"{' '.join(IMAGE_EXTENSIONS)})")
    seen = {}
    for path, name in found:
        if name in seen and os.path.abspath(seen[name]) != os.path.abspath(path):
            raise ConfigError(f"{seen[name]} and {path} would both write outputs named {name!r}: "
                              "pass them in separate runs or from one folder")
        seen[name] = path
    unique = {os.path.abspath(p): (p, n) for p, n in found}
    return list(unique.values())


def read_rgb(path):
    """(H, W, 3) uint8 RGB of any image: grey, RGBA (alpha dropped), palette and 16-bit inputs too."""
    with Image.open(path) as img:
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grey: stretch to 8 bits
            arr = np.asarray(img, dtype=np.float64)
            top = arr.max() if arr.size and arr.max() > 255 else 255.0
            grey = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
    return T.read_image(path)


def preprocess(image_rgb, family):
    """RGB uint8 (H, W, 3) -> normalised float32 tensor (1, 3, h, w) of the family's eval pipeline."""
    if family.normalise == "caffe":
        out = T.caffe_normalize(image_rgb)                                  # (H, W, 3)
    else:
        if family.base_scale is not None:
            image_rgb, _ = S.resize_keep_ratio(image_rgb, None, family.base_scale)  # (h, w, 3)
        out = S.normalize(image_rgb)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]


# ------------------------------------------------------------------------------------------------ model
def add_model_flags(parser):
    """The model / checkpoint / device flags shared by infer.py and scripts/visualize_attention.py
    (besides the model group of utils.options)."""
    from utils.options import _model_group, int_pair
    _model_group(parser)
    g = parser.add_argument_group("images")
    g.add_argument("--num-classes", type=int, default=None,
                   help="classes of the model (default: those of --dataset, 19 for Cityscapes)")
    g.add_argument("--dataset", default=None, choices=("cityscapes", "cityscapes_ocr", "ade20k", "voc"),
                   help="eval pipeline (normalisation, resize) and palette; default: cityscapes for "
                        "OCNet models, the recipe dataset with --num-classes classes for OCRNet")
    g.add_argument("--base-scale", type=int_pair, default=None, metavar="LONG,SHORT",
                   help="OCRNet pipelines: resize keep-ratio into these edges instead of the dataset's "
                        "base scale (e.g. 2048,1024 for Cityscapes)")
    g.add_argument("--checkpoint-format", default="auto", choices=("auto", "ocnet", "ssseg", "mmseg"),
                   help="format of --restore-from (auto: from its keys)")
    g.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda:0' ...")
    g.add_argument("--log-file", default="", help="also log to this file")
    parser.set_defaults(restore_from=None)


def check_model_flags(parser, args):
    if not args.restore_from:
        parser.error("--restore-from is required (a CS_scenes_<iter>.pth, resume file, or an "
                     "sssegmentation / mmseg checkpoint)")
    if args.num_classes is not None and args.num_classes <= 0:
        parser.error(f"--num-classes must be positive, got {args.num_classes}")


def pick_device(text):
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"--device {text!r}: use auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {text}: CUDA is not available here (use --device cpu)")
    return device


def load_model(args, log):
    """(model in eval mode on --device with --restore-from loaded, Family, number of classes)."""
    import network
    from utils.options import model_kwargs, model_name
    device = pick_device(args.device)
    name, kwargs = model_name(args), model_kwargs(args)
    probe_classes = args.num_classes or 19
    model = network.get_segmentation_model(name, num_classes=probe_classes, **kwargs)
    family = families()[args.dataset or default_family(model, probe_classes)]
    num_classes = args.num_classes or family.num_classes
    if args.base_scale is not None:
        if family.normalise == "caffe":
            raise ConfigError(f"--base-scale applies to the OCRNet pipelines; --dataset {family.name} "
                              "does not resize (use --whole-scale)")
        family = replace(family, base_scale=tuple(args.base_scale))
    if num_classes != probe_classes:
        model = network.get_segmentation_model(name, num_classes=num_classes, **kwargs)
    fmt = load_weights(model, args.restore_from, args.trust_checkpoint, args.checkpoint_format)
    log.info(f"{name} ({num_classes} classes) from {args.restore_from} ({fmt} format) on {device}; "
             f"pre-processing of {family.name}")
    return model.to(device).eval(), family, num_classes


def load_weights(model, path, trust=False, fmt="auto"):
    """Fill ``model`` from a checkpoint in any format the project reads.

    ``CS_scenes_*.pth`` / resume files / plain state_dicts (and files with sssegmentation names, which
    are ours) go through :func:`utils.checkpoint.load_checkpoint` (strict, the same one-message error
    as eval.py); mmseg files (and sssegmentation files with tensors the strict reader refuses, e.g.
    no ``num_batches_tracked``) through :func:`utils.convert.import_state_dict` (every model tensor
    must be filled). Returns the format used.
    """
    from utils.checkpoint import load_checkpoint, read_file
    from utils.convert import detect_format, extract_model_state, import_state_dict
    if not path or not os.path.isfile(path):
        raise MissingFileError(f"--restore-from {path!r}: checkpoint not found")
    if fmt == "auto":
        try:
            state = extract_model_state(read_file(path, trust))
        except ValueError:
            state = None  # not a state_dict: load_checkpoint raises its own error below
        fmt = detect_format(state) if state is not None else "ocnet"
    if fmt in ("ocnet", "ssseg"):  # our names: the strict reader and eval.py's message
        try:
            load_checkpoint(model, path, trust=trust)
            return fmt
        except ValueError as err:
            if fmt == "ocnet":
                raise
            strict_error = err
        try:  # a released sssegmentation file may differ only in what the importer tolerates
            import_state_dict(model, read_file(path, trust), fmt, strict=True)
        except ValueError:
            raise strict_error from None
        return fmt
    try:
        import_state_dict(model, read_file(path, trust), fmt, strict=True)
    except ValueError as err:
        raise CheckpointError(f"{path} ({fmt} format) does not fit the model: {err}\nCheck "
                              "--network/--method/--num-classes/--ocr-preset.") from None
    return fmt


@torch.no_grad()
def predict_logits(model, image, size, *, num_classes, scales=(1.0,), flip=False, tile_size=(1024, 2048),
                   mode="whole", align_corners=True):
    """Logits (C, H, W) at the original ``size`` = (H, W) for one preprocessed (1, 3, h, w) image."""
    from utils.inference import predict
    image = image.to(next(model.parameters()).device)
    logits = predict(model, image, num_classes=num_classes, scales=scales, flip=flip,
                     tile_size=tuple(tile_size), align_corners=align_corners, mode=mode)  # (1, C, h, w)
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)
    return logits[0].float().cpu()                                                       # (C, H, W)


# ---------------------------------------------------------------------------------------------- outputs
def palette_for(family):
    from utils.visualize import get_palette, get_voc_palette
    return get_palette() if family.palette == "cityscapes" else get_voc_palette()


def colorize(labels, palette):
    """(H, W) class indices -> (H, W, 3) uint8 colours of a flat [r, g, b, ...] palette."""
    table = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return table[np.asarray(labels, dtype=np.int64)]


def overlay(image_rgb, color, alpha):
    """alpha * colour + (1 - alpha) * image, rounded to uint8."""
    mix = alpha * color.astype(np.float32) + (1.0 - alpha) * image_rgb.astype(np.float32)
    return np.clip(np.rint(mix), 0, 255).astype(np.uint8)


def write_outputs(out_dir, name, image_rgb, logits, family, *, alpha=0.5, label_ids=False,
                  logits_dtype=None):
    """Write the label map, colour PNG, overlay (and logits); returns {kind: path}."""
    from utils.visualize import save_palette_png, trainid_to_labelid
    base = os.path.join(out_dir, name)
    os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
    pred = logits.argmax(0).numpy().astype(np.uint8)                      # (H, W) trainIds
    palette = palette_for(family)
    paths = {}
    if label_ids:
        paths["labels"] = base + "_labelIds.png"
        Image.fromarray(trainid_to_labelid(pred).astype(np.uint8), mode="L").save(paths["labels"])
    else:
        paths["labels"] = base + "_labelTrainIds.png"
        Image.fromarray(pred, mode="L").save(paths["labels"])
    paths["color"] = save_palette_png(pred, base + "_color.png", palette)
    color = colorize(pred, palette)                                       # (H, W, 3)
    paths["overlay"] = base + "_overlay.png"
    Image.fromarray(overlay(image_rgb, color, alpha)).save(paths["overlay"])
    if logits_dtype:
        paths["logits"] = base + "_logits.npy"
        np.save(paths["logits"], logits.numpy().astype(logits_dtype))
    return paths
