# Replaces the ImageNet loading of OCNet.pytorch train.py (679a45b). MIT License.
"""ImageNet initialisation of the backbone: an explicit table of the supported file layouts.

The original (train.py): copy ``model.state_dict()``, overwrite every entry whose name is in the file
(skipping the classifier: first key components ``fc`` / ``last_linear`` / ``classifier``), then a strict
load. We do the same, for each layout of :data:`IMAGENET_LAYOUTS`, into the backbone of each model
family of :data:`MODEL_BACKBONES`. File keys are never renamed except for the family's prefix; keys
ending in ``num_batches_tracked`` are dropped (InPlace-ABN has none).
"""
from dataclasses import dataclass

from utils.checkpoint import CheckpointMismatchError, describe_mismatch, read_checkpoint, unwrap

CSAIL_URL = "http://sceneparsing.csail.mit.edu/model/pretrained_resnet/resnet101-imagenet.pth"
TORCHVISION_HINT = ("torchvision ResNet-101: https://download.pytorch.org/models/resnet101-63fe2227.pth, "
                    "ResNet-50: https://download.pytorch.org/models/resnet50-0676ba61.pth")


@dataclass(frozen=True)
class ImageNetLayout:
    """One supported ImageNet file layout."""
    name: str
    signature: tuple  # keys that are all present in such a file (checked in table order)
    backbone: str     # the backbone kind it initialises (see MODEL_BACKBONES)
    drop: tuple       # first key components that are the classifier / classification neck
    source: str


IMAGENET_LAYOUTS = (
    ImageNetLayout("CSAIL ResNet (deep 3x3 stem)",
                   ("conv1.weight", "conv2.weight", "conv3.weight", "bn3.weight", "layer1.0.conv1.weight"),
                   "deep", ("fc", "last_linear", "classifier"),  # faithful: the original's skip list
                   f"the paper's resnet101-imagenet.pth ({CSAIL_URL})"),
    ImageNetLayout("HRNet (HRNet-Image-Classification / open-mmlab hrnetv2_*)",
                   ("conv1.weight", "conv2.weight", "layer1.0.conv1.weight", "transition1.0.0.weight"),
                   "hrnet", ("incre_modules", "downsamp_modules", "final_layer", "classifier"),
                   "open-mmlab hrnetv2_w18_small / w18 / w48 ImageNet weights"),
    ImageNetLayout("open-mmlab ResNetV1c (3-conv 'stem' Sequential)",
                   ("stem.0.weight", "stem.1.weight", "layer1.0.conv1.weight"),
                   "v1c", ("fc",), "open-mmlab resnet50_v1c / resnet101_v1c"),
    ImageNetLayout("torchvision ResNet (7x7 conv1)",
                   ("conv1.weight", "bn1.weight", "layer1.0.conv1.weight"),
                   "standard", ("fc",), TORCHVISION_HINT),
)

# Where each model family keeps its backbone (state_dict prefix) and how to tell its kind.
# OCNet models ARE the ResNet (backbone keys at the top level, as in the original); OCRNet stores
# its backbone as ``backbone_net``.
MODEL_BACKBONES = ("", "backbone_net.")
_KIND_PROBES = (("hrnet", "transition1.0.0.weight"), ("deep", "conv3.weight"), ("v1c", "stem.0.weight"),
                ("standard", "conv1.weight"))


def detect_layout(state_dict, path="file"):
    """The :class:`ImageNetLayout` of an ImageNet state_dict (CheckpointMismatchError if none fits)."""
    for layout in IMAGENET_LAYOUTS:
        if all(k in state_dict for k in layout.signature):
            if layout.backbone == "standard" and tuple(state_dict["conv1.weight"].shape[-2:]) != (7, 7):
                continue
            return layout
    names = "; ".join(layout.name for layout in IMAGENET_LAYOUTS)
    raise CheckpointMismatchError(
        f"{path}: not a supported ImageNet backbone file (supported: {names}). Its first keys: "
        f"{', '.join(sorted(state_dict)[:5])}. For a full segmentation checkpoint use --start-iters > 0 "
        "(train.py) or scripts/convert_checkpoint.py.")


def model_backbone(model_sd):
    """``(prefix, kind)`` of the model's backbone, kind in 'deep', 'v1c', 'standard', 'hrnet'."""
    for prefix in MODEL_BACKBONES:
        if prefix + "layer1.0.conv1.weight" in model_sd:
            kind = next(kind for kind, probe in _KIND_PROBES if prefix + probe in model_sd)
            return prefix, kind
    raise CheckpointMismatchError("the model has no backbone this loader knows (expected ResNet or HRNet "
                                  f"keys at one of the prefixes {MODEL_BACKBONES})")


def _wrong_backbone(path, layout, kind):
    if layout.backbone == "standard" and kind == "deep":
        return (f"{path} is a torchvision-style ImageNet ResNet (7x7 conv1) but the model has the OCNet deep "
                f"stem (3x3 conv1/conv2/conv3). Either download the CSAIL weights the paper used ({CSAIL_URL}) "
                "to ./pretrained_model/resnet101-imagenet.pth, or train with --stem standard to use this "
                "file (a different backbone than the paper's).")
    if layout.backbone == "deep" and kind == "standard":
        return (f"{path} has a deep 3x3 stem (CSAIL layout) but the model was built with --stem standard; "
                f"drop --stem standard, or use torchvision weights ({TORCHVISION_HINT}).")
    stems = {"deep": "--stem deep", "v1c": "--stem v1c", "standard": "--stem standard"}
    fix = (f"build the model with {stems[layout.backbone]}" if layout.backbone in stems and kind in stems
           else f"use an ImageNet file for a '{kind}' backbone")
    return f"{path} is a {layout.name} file but the model's backbone is '{kind}': {fix}."


def load_pretrained(model, path, trust=False):
    """Load an ImageNet file into the model's backbone; the head keeps its fresh initialisation.

    Returns the sorted list of loaded model keys. Raises CheckpointMismatchError (one message with
    counts and examples) when the file's layout, stem, keys or shapes do not fit the backbone.
    """
    raw = read_checkpoint(path, trust, what="pretrained weights").state_dict
    layout = detect_layout(raw, path)
    target = unwrap(model)
    model_sd = target.state_dict()
    prefix, kind = model_backbone(model_sd)
    if layout.backbone != kind:
        raise CheckpointMismatchError(_wrong_backbone(path, layout, kind))
    ckpt_sd = {prefix + k: v for k, v in raw.items()
               if k.split(".")[0] not in layout.drop and not k.endswith("num_batches_tracked")}
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    shapes = [k for k in ckpt_sd if k in model_sd and ckpt_sd[k].shape != model_sd[k].shape]
    if unexpected or shapes:
        problem = describe_mismatch({k: model_sd[k] for k in ckpt_sd if k in model_sd}, ckpt_sd)
        raise CheckpointMismatchError(
            f"{path} ({layout.name}) does not fit the backbone of {type(target).__name__}:\n{problem}\n"
            f"Expected {layout.source} (see pretrained_model/README.md).")
    merged = dict(model_sd)
    merged.update(ckpt_sd)
    target.load_state_dict(merged, strict=True)
    return sorted(ckpt_sd)
