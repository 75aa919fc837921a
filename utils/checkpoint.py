# Replaces the inline checkpoint code of OCNet.pytorch train.py / eval.py (679a45b). MIT License.
"""Checkpoint I/O: the one reader of checkpoint files, strict model loading, atomic saves.

:func:`read_checkpoint` is the only place a checkpoint file is opened: ``torch.load(..., weights_only=True)``
on the CPU unless the caller passes ``trust=True`` (``--trust-checkpoint``, logged as a warning because it
runs any code stored in the file), readable :class:`~utils.errors.CheckpointError` messages for empty,
truncated, corrupt, non-PyTorch and refused files, the wrappers of the common layouts and the
DataParallel ``module.`` rule. Model loading (:func:`load_checkpoint`), ImageNet initialisation
(:mod:`utils.pretrained`), the converter (:mod:`utils.convert`) and resume (:mod:`utils.resume`) all read
through it.
"""
import errno
import logging
import os
import pickle
import re
from typing import NamedTuple

import torch
from torch import nn

from utils.errors import CheckpointError, DivergenceError, MissingFileError

# Where the tensors sit inside a checkpoint dict: ours and sssegmentation use 'model', mmseg / HRNet /
# Lightning 'state_dict', the PyTorch tutorials 'model_state_dict'. A dict of tensors is used as is.
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "model_state")
MODULE_PREFIX = "module."  # added to every key by nn.DataParallel / DistributedDataParallel
_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80"
_TEMP = re.compile(r"^\..+\.tmp\d+$")  # atomic_save's temporary files: .<name>.tmp<pid>


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not match the model."""


class Checkpoint(NamedTuple):
    """What :func:`read_checkpoint` returns: the state_dict, the whole object, the wrapper key used."""
    state_dict: dict
    raw: object
    wrapper: str  # '' when the file is a bare state_dict


def unwrap(model):
    """The bare model inside DataParallel / DistributedDataParallel."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def _describe_unreadable(path):
    """Why ``path`` cannot be a PyTorch checkpoint, judged from its first bytes ('' if it looks like one)."""
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty (0 bytes): a save that never finished?"
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith(_ZIP_MAGIC):
        return f"the zip archive is truncated or corrupt ({size} bytes): an interrupted copy or save?"
    if head.startswith(_PICKLE_MAGIC):
        return f"the (legacy) pickle is truncated or corrupt ({size} bytes)"
    text = head.decode("utf-8", "replace").splitlines()[0][:40] if head else ""
    return f"this is not a PyTorch checkpoint (it starts with {text!r})"


def read_file(path, trust=False, what="checkpoint"):
    """The object stored in ``path``, loaded on the CPU (weights only unless ``trust``).

    Raises MissingFileError when ``path`` is missing, CheckpointError with the reason when the file is
    empty, truncated, corrupt, not a checkpoint, or refused by the weights-only unpickler.
    """
    if not path or not os.path.exists(path):
        raise MissingFileError(f"{what} not found: {path!r}")
    if not os.path.isfile(path):
        raise CheckpointError(f"{what} {path!r} is not a file")
    if trust:
        logging.getLogger("ocnet").warning(
            f"WARNING: --trust-checkpoint: loading {path} with full unpickling; any code stored in the "
            "file runs now. Use it only for files from a source you trust.")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except MemoryError:
        raise
    except pickle.UnpicklingError as err:
        with open(path, "rb") as handle:
            looks_like_checkpoint = handle.read(4).startswith((_ZIP_MAGIC, _PICKLE_MAGIC))
        if not trust and looks_like_checkpoint and "weights only load failed" in str(err).lower():
            found = re.search(r"GLOBAL (\S+)", str(err))
            raise CheckpointError(
                f"{what} {path}: refused: it stores Python objects"
                f"{' (' + found.group(1) + ')' if found else ''} that torch.load(weights_only=True) does not "
                "load, and unpickling them could run code. Re-save it as a plain state_dict, or pass "
                "--trust-checkpoint True if you trust its source.") from err
        raise CheckpointError(f"{what} {path}: cannot be read: {_describe_unreadable(path)}") from err
    except Exception as err:  # torch/zip/pickle report corrupt files as many different types
        reason = _describe_unreadable(path) or str(err).splitlines()[0]
        raise CheckpointError(f"{what} {path}: cannot be read: {reason}") from err


def strip_module_prefix(state_dict):
    """Drop DataParallel/DDP ``module.`` prefixes: only when EVERY key has one (a wrapper prefixes all
    keys; a model with a submodule really called ``module`` keeps its names). Repeated for nested
    wrappers."""
    while state_dict and all(k.startswith(MODULE_PREFIX) for k in state_dict):
        state_dict = {k[len(MODULE_PREFIX):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def extract_state_dict(obj, where="checkpoint"):
    """``(state_dict, wrapper key)`` from a loaded checkpoint object (see :data:`WRAPPER_KEYS`)."""
    wrapper = ""
    if isinstance(obj, dict) and not all(torch.is_tensor(v) for v in obj.values()):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), "")
        obj = obj[wrapper] if wrapper else obj
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        found = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{where}: holds no state_dict of tensors (looked at "
                              f"{', '.join(repr(k) for k in WRAPPER_KEYS)} and the top level; found {found})")
    return strip_module_prefix(obj), wrapper


def read_checkpoint(path, trust=False, what="checkpoint"):
    """THE checkpoint reader: :func:`read_file` + :func:`extract_state_dict`."""
    raw = read_file(path, trust, what)
    state_dict, wrapper = extract_state_dict(raw, f"{what} {path}")
    return Checkpoint(state_dict, raw, wrapper)


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


def load_state_dict_strict(model, ckpt_sd, source):
    """Strict load with one summary error (CheckpointMismatchError) when ``ckpt_sd`` belongs elsewhere."""
    target = unwrap(model)
    problem = describe_mismatch(target.state_dict(), ckpt_sd)
    if problem:
        raise CheckpointMismatchError(
            f"{source} does not match the model {type(target).__name__} "
            f"({len(ckpt_sd)} tensors in the file, {len(target.state_dict())} in the model):\n{problem}\n"
            "Check --network/--method/--num-classes, or pass the right --restore-from.")
    target.load_state_dict(ckpt_sd, strict=True)
    return model


def load_checkpoint(model, path, trust=False):
    """Strictly load a full-model checkpoint read by :func:`read_checkpoint` into ``model``."""
    return load_state_dict_strict(model, read_checkpoint(path, trust).state_dict, path)


def nonfinite_tensors(state, prefix=""):
    """Names of the floating-point tensors in a (nested) dict/list that hold NaN or inf."""
    bad = []
    if torch.is_tensor(state):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            bad.append(prefix or "tensor")
    elif isinstance(state, dict):
        for key, value in state.items():
            bad += nonfinite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            bad += nonfinite_tensors(value, f"{prefix}[{i}]")
    return bad


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


def _write_failure(path, err):
    """The CheckpointError for a failed write (full disk, quota, read-only folder, torch's writer)."""
    code = getattr(err, "errno", None)
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    short_write = isinstance(err, RuntimeError) and ("unexpected pos" in text or "write failed" in text)
    if code in (errno.ENOSPC, errno.EDQUOT) or short_write:  # a full disk shows as a short write in torch
        hint = "the disk is full (or over quota)"
    elif code in (errno.EACCES, errno.EROFS, errno.EPERM):
        hint = "the folder is not writable"
    else:
        hint = "the write failed"
    return CheckpointError(f"could not write checkpoint {path} (previous file kept): {hint} ({text}). "
                           "Free some space or choose another --snapshot-dir, then rerun with --resume auto.")


def atomic_save(obj, path, refuse_nonfinite=True):
    """torch.save to ``path`` atomically: temp file in the same folder, fsync, os.replace.

    A state holding NaN/inf is refused (DivergenceError) before anything is written. If the write fails
    (full disk: ENOSPC or torch's own ``inline_container`` error; an interrupt) the previous file at
    ``path`` is untouched and the temp file is removed.
    """
    if refuse_nonfinite:
        bad = nonfinite_tensors(obj)
        if bad:
            raise DivergenceError(f"refusing to write {path}: {len(bad)} tensors hold NaN/inf "
                                  f"({_examples(bad, 3)})")
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
        if isinstance(err, OSError) or (isinstance(err, RuntimeError) and (
                "inline_container" in str(err) or "PytorchStreamWriter" in str(err))):
            raise _write_failure(path, err) from err
        raise
    _fsync_dir(directory)
    return path


def remove_stale_temps(directory):
    """Delete the temporary files that a killed :func:`atomic_save` left in ``directory``.

    Call it only while holding the folder's lock (no live process of ours writes there then).
    Returns the removed paths.
    """
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        if _TEMP.match(name) and os.path.isfile(full):
            os.remove(full)
            removed.append(full)
    return removed


def snapshot_path(snapshot_dir, iteration):
    """``<snapshot_dir>/CS_scenes_<iteration>.pth`` (the original name)."""
    return os.path.join(snapshot_dir, f"CS_scenes_{iteration}.pth")


def save_snapshot(model, snapshot_dir, iteration):
    """Write the plain state_dict (original key names, no ``module.``) as CS_scenes_<iteration>.pth."""
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    return atomic_save(state, snapshot_path(snapshot_dir, iteration))
