# New (the original saved no optimizer state). MIT License.
"""The resume file: everything needed to continue a training run exactly.

Layout (a dict that ``torch.load(weights_only=True)`` accepts):
``{'format': 'ocnet-resume-v1', 'model', 'optimizer', 'iteration' (next iteration to run),
'rng': per-rank list of {'python', 'numpy', 'torch', 'cuda'}, 'args', 'scaler'}``.
The data order needs no state of its own: it is a function of (--seed, iteration) (utils/sampler.py).
"""
import os
import random

import numpy as np
import torch

from utils.checkpoint import atomic_save, load_state_dict_strict, read_checkpoint, unwrap
from utils.errors import CheckpointError, ConfigError

FORMAT = "ocnet-resume-v1"
RESUME_NAME = "resume.pth"
# Every flag that changes the optimisation (model, data, schedule, loss, precision, seed). A resumed
# run must use the same values unless --resume-override names the flag (or says 'all'). Paths, logging,
# workers and GPUs may change freely, and so may the speed flags (--compile, --channels-last,
# --backbone-memory): they change how the same maths is computed, not the optimisation.
MUST_MATCH = ("network", "method", "stem", "ocr_preset", "stem_relu", "num_classes", "dataset",
              "ignore_label", "input_size", "batch_size", "random_mirror", "random_scale",
              "learning_rate", "min_lr", "momentum", "weight_decay", "power", "num_steps", "fix_lr",
              "amp", "ohem", "ohem_single", "ohem_thres", "ohem_keep", "dsn_weight", "use_weight", "seed")


def rng_state():
    """Python, NumPy, torch (CPU) and CUDA RNG states as weights_only-loadable containers."""
    np_state = np.random.get_state()
    state = {
        "python": [list(item) if isinstance(item, tuple) else item for item in random.getstate()],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state):
    """Inverse of rng_state()."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value):
    """args values as weights_only-safe primitives."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def save_resume(path, model, optimizer, iteration, args, scaler=None, rng_per_rank=None):
    """Atomically write the resume file; ``iteration`` is the next iteration to run."""
    state = {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "iteration": int(iteration),
        "rng": rng_per_rank if rng_per_rank is not None else [rng_state()],
        "args": {k: _plain(v) for k, v in vars(args).items()},
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    }
    return atomic_save(state, path)


def resolve_resume(resume, snapshot_dir):
    """THE resume decision: the resume file to continue from, or None for a fresh start.

    ``resume`` is the --resume value: None/'' (fresh), 'auto' (``<snapshot_dir>/resume.pth`` when it
    exists) or a path (which must exist).
    """
    if not resume:
        return None
    if resume == "auto":
        path = os.path.join(snapshot_dir, RESUME_NAME)
        return path if os.path.isfile(path) else None
    return resume  # read_file names a missing path


def _flag(key):
    return "--" + key.replace("_", "-")


def _overrides(text):
    names = {name.strip().lstrip("-").replace("-", "_") for name in str(text or "").split(",") if name.strip()}
    if "all" in names:
        return set(MUST_MATCH)
    unknown = sorted(names - set(MUST_MATCH))
    if unknown:
        raise ConfigError(f"--resume-override: {', '.join(_flag(n) for n in unknown)} not among the flags "
                          f"checked on resume ({', '.join(_flag(k) for k in MUST_MATCH)})")
    return names


def resume_differences(saved, args):
    """``[(flag, value in the file, value now)]`` for every MUST_MATCH flag that differs."""
    return [(_flag(k), saved[k], _plain(getattr(args, k, None))) for k in MUST_MATCH
            if k in saved and saved[k] != _plain(getattr(args, k, None))]


def load_resume(path, args, trust=False, override="", log=None):
    """Read a resume file and check that it belongs to this run.

    Every MUST_MATCH flag must have the file's value; ConfigError lists all differences, unless
    ``override`` (--resume-override) names them, in which case ``log`` gets a warning per flag.
    """
    checkpoint = read_checkpoint(path, trust, what="resume file (--resume)")
    state = checkpoint.raw
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"--resume {path}: not a resume file written by train.py (a CS_scenes_*.pth "
                              "snapshot goes to --restore-from with --start-iters instead)")
    missing = [k for k in ("model", "optimizer", "iteration", "rng", "args") if k not in state]
    if missing:
        raise CheckpointError(f"--resume {path}: incomplete resume file (no {', '.join(missing)})")
    allowed = _overrides(override)
    diffs = resume_differences(state["args"], args)
    refused = [d for d in diffs if d[0][2:].replace("-", "_") not in allowed]
    if refused:
        listed = "; ".join(f"{flag} {old!r} (file) vs {new!r} (now)" for flag, old, new in refused)
        raise ConfigError(
            f"--resume {path} was written by a run with other settings: {listed}. Rerun with the file's "
            "values, start a fresh run in another --snapshot-dir, or accept the change with "
            f"--resume-override {','.join(flag[2:] for flag, _, _ in refused)}.")
    for flag, old, new in diffs:
        if log is not None:
            log(f"WARNING: --resume-override: {flag} changes from {old!r} to {new!r} on resume")
    return state


def restore_resume(state, model, optimizer, scaler=None, rank=0):
    """Load model/optimizer/scaler/RNG from ``state``; returns the iteration to continue at."""
    load_state_dict_strict(model, state["model"], "the resume file")
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    return int(state["iteration"])
