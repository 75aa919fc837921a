# New (the original saved no optimizer state). MIT License.
"""The resume file: everything needed to continue a training run exactly.

Layout (a dict that ``torch.load(weights_only=True)`` accepts):
``{'format': 'ocnet-resume-v1', 'model', 'optimizer', 'iteration' (next iteration to run),
'rng': per-rank list of {'python', 'numpy', 'torch', 'cuda'}, 'args', 'scaler'}``.
The data order needs no state of its own: it is a function of (--seed, iteration) (utils/sampler.py).
"""
import random

import numpy as np
import torch

from utils.checkpoint import atomic_save, read_file, unwrap

FORMAT = "ocnet-resume-v1"
# args whose change makes a resume meaningless
MUST_MATCH = ("network", "method", "num_classes", "batch_size", "seed", "num_steps")


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


def load_resume(path, args, trust=False):
    """Read a resume file and check that it belongs to this run (names the mismatching flags)."""
    state = read_file(path, trust, what="resume file (--resume)")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"--resume {path}: not a resume file written by train.py "
                         "(a CS_scenes_*.pth snapshot goes to --restore-from with --start-iters instead)")
    saved = state["args"]
    diffs = [f"--{k.replace('_', '-')} {saved.get(k)!r} (file) vs {_plain(getattr(args, k, None))!r} (now)"
             for k in MUST_MATCH if saved.get(k) != _plain(getattr(args, k, None))]
    if diffs:
        raise ValueError(f"--resume {path} was written by a different run: " + "; ".join(diffs))
    return state


def restore_resume(state, model, optimizer, scaler=None, rank=0):
    """Load model/optimizer/scaler/RNG from ``state``; returns the iteration to continue at."""
    unwrap(model).load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    return int(state["iteration"])
