# Replaces the inline checkpoint code of OCNet.pytorch train.py / eval.py (679a45b). MIT License.
"""Checkpoint I/O: ImageNet backbone loading, strict model loading with a readable error, atomic saves.

All loads use ``torch.load(..., weights_only=True)`` unless the caller passes ``trust=True``
(``--trust-checkpoint``).
"""
import os
import pickle

import torch
from torch import nn

CSAIL_URL = "http://sceneparsing.csail.mit.edu/model/pretrained_resnet/resnet101-imagenet.pth"
TORCHVISION_HINT = ("torchvision ResNet-101: https://download.pytorch.org/models/resnet101-63fe2227.pth, "
                    "ResNet-50: https://download.pytorch.org/models/resnet50-0676ba61.pth")
# faithful: the original skipped exactly these first key components when loading ImageNet weights.
# The original skips fc / last_linear / classifier; HRNet ImageNet files (HRNet-Image-Classification,
# open-mmlab copies) also carry their classification neck: incre_modules, downsamp_modules, final_layer.
CLASSIFIER_PREFIXES = ("fc", "last_linear", "classifier", "incre_modules", "downsamp_modules",
                       "final_layer")


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not match the model."""


def unwrap(model):
    """The bare model inside DataParallel / DistributedDataParallel."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def read_file(path, trust=False, what="checkpoint"):
    """torch.load on CPU with weights_only=True (or full unpickling when ``trust``)."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        if trust:
            raise
        raise pickle.UnpicklingError(
            f"{path}: refused by torch.load(weights_only=True) ({str(err).splitlines()[0]}). "
            "If you trust this file, pass --trust-checkpoint True.") from err
    except (RuntimeError, EOFError) as err:
        raise RuntimeError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): {err}") from err


def extract_state_dict(obj, path="checkpoint"):
    """Accept a plain state_dict, our resume file ({'model': ...}) or {'state_dict': ...}."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointMismatchError(f"{path}: does not hold a state_dict of tensors")
    return obj


def strip_prefix(state_dict, prefix="module."):
    """Drop a DataParallel/DDP ``module.`` prefix from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _examples(keys, n=5):
    keys = sorted(keys)
    more = f", ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def describe_mismatch(model_sd, ckpt_sd):
    """One paragraph: counts and a few examples of missing, unexpected and shape-mismatched keys.

    Returns '' when the two dicts match in keys and shapes.
    """
    missing = set(model_sd) - set(ckpt_sd)
    unexpected = set(ckpt_sd) - set(model_sd)
    shapes = {k for k in set(model_sd) & set(ckpt_sd) if tuple(model_sd[k].shape) != tuple(ckpt_sd[k].shape)}
    lines = []
    if missing:
        lines.append(f"  {len(missing)} missing keys (in the model, not in the file): {_examples(missing)}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected keys (in the file, not in the model): "
                     f"{_examples(unexpected)}")
    if shapes:
        shown = [f"{k} file {tuple(ckpt_sd[k].shape)} vs model {tuple(model_sd[k].shape)}"
                 for k in sorted(shapes)[:5]]
        more = f", ... (+{len(shapes) - 5} more)" if len(shapes) > 5 else ""
        lines.append(f"  {len(shapes)} shape mismatches: " + "; ".join(shown) + more)
    return "\n".join(lines)


def load_checkpoint(model, path, trust=False):
    """Strictly load a full-model checkpoint (``module.`` prefixes stripped).

    Raises CheckpointMismatchError with a summary when the file belongs to another model.
    """
    ckpt_sd = strip_prefix(extract_state_dict(read_file(path, trust), path))
    target = unwrap(model)
    problem = describe_mismatch(target.state_dict(), ckpt_sd)
    if problem:
        raise CheckpointMismatchError(
            f"{path} does not match the model {type(target).__name__} "
            f"({len(ckpt_sd)} tensors in the file, {len(target.state_dict())} in the model):\n{problem}\n"
            "Check --network/--method/--num-classes, or pass the right --restore-from.")
    target.load_state_dict(ckpt_sd, strict=True)
    return model


def _stem_kind(shape):
    """'standard' for a 7x7 conv1 weight, 'deep' for 3x3, None if unknown."""
    if len(shape) == 4 and shape[-1] == 7:
        return "standard"
    if len(shape) == 4 and shape[-1] == 3:
        return "deep"
    return None


def _backbone_prefix(model_sd, ckpt_sd):
    """'' when the checkpoint keys sit at the model's top level, else the prefix that makes them fit."""
    probe = next((k for k in ("layer1.0.conv1.weight", "conv1.weight") if k in ckpt_sd), None)
    if probe is None or probe in model_sd:
        return ""
    for key in model_sd:
        if key.endswith("." + probe):
            return key[: -len(probe)]
    return ""


def load_pretrained(model, path, trust=False):
    """Load an ImageNet ResNet into the backbone; head layers keep their fresh init.

    The original (train.py): copy model.state_dict(), overwrite every entry whose name is in the file
    (skipping first components fc / last_linear / classifier), then a strict load. We also drop
    ``num_batches_tracked`` (InPlace-ABN has none). Layouts: CSAIL ``resnet101-imagenet.pth`` (deep stem,
    the paper) and torchvision ``resnet{50,101}`` (7x7 stem: needs a ``--stem standard`` model).

    Returns the list of loaded keys.
    """
    raw = strip_prefix(extract_state_dict(read_file(path, trust, what="pretrained weights"), path))
    target = unwrap(model)
    model_sd = target.state_dict()
    ckpt_sd = {k: v for k, v in raw.items()
               if k.split(".")[0] not in CLASSIFIER_PREFIXES and not k.endswith("num_batches_tracked")}
    prefix = _backbone_prefix(model_sd, ckpt_sd)
    ckpt_sd = {prefix + k: v for k, v in ckpt_sd.items()}
    conv1 = prefix + "conv1.weight"
    file_stem = _stem_kind(tuple(ckpt_sd[conv1].shape)) if conv1 in ckpt_sd else None
    model_stem = _stem_kind(tuple(model_sd[conv1].shape)) if conv1 in model_sd else None
    if file_stem == "standard" and model_stem != "standard":
        raise CheckpointMismatchError(
            f"{path} is a torchvision-style ImageNet ResNet (7x7 conv1) but the model has the OCNet deep stem "
            f"(3x3 conv1/conv2/conv3). Either download the CSAIL weights the paper used ({CSAIL_URL}) to "
            "./pretrained_model/resnet101-imagenet.pth, or train with --stem standard to use this file "
            "(a different backbone than the paper's).")
    if file_stem == "deep" and model_stem == "standard":
        raise CheckpointMismatchError(
            f"{path} has a deep 3x3 stem (CSAIL layout) but the model was built with --stem standard; "
            f"drop --stem standard, or use torchvision weights ({TORCHVISION_HINT}).")
    unexpected = {k: v for k, v in ckpt_sd.items() if k not in model_sd}
    shapes = {k: v for k, v in ckpt_sd.items() if k in model_sd and v.shape != model_sd[k].shape}
    if unexpected or shapes:
        problem = describe_mismatch({k: model_sd[k] for k in ckpt_sd if k in model_sd}, ckpt_sd)
        raise CheckpointMismatchError(
            f"{path} does not fit the backbone of {type(target).__name__}:\n{problem}\n"
            "Expected the CSAIL resnet101-imagenet.pth layout (see pretrained_model/README.md).")
    if not ckpt_sd:
        raise CheckpointMismatchError(f"{path}: no backbone tensors found (all keys were classifier keys)")
    merged = dict(model_sd)
    merged.update(ckpt_sd)
    target.load_state_dict(merged, strict=True)
    return sorted(ckpt_sd)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj, path):
    """torch.save to ``path`` atomically: temp file in the same folder, fsync, os.replace.

    If anything fails (full disk, interrupt) the previous file at ``path`` is untouched and the temp file is
    removed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise OSError(err.errno, f"could not write checkpoint {path} (previous file kept): {err}") from err
        raise
    _fsync_dir(directory)
    return path


def snapshot_path(snapshot_dir, iteration):
    """``<snapshot_dir>/CS_scenes_<iteration>.pth`` (the original name)."""
    return os.path.join(snapshot_dir, f"CS_scenes_{iteration}.pth")


def save_snapshot(model, snapshot_dir, iteration):
    """Write the plain state_dict (original key names, no ``module.``) as CS_scenes_<iteration>.pth."""
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    return atomic_save(state, snapshot_path(snapshot_dir, iteration))
