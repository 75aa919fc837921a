"""Speed options shared by train.py and scripts/benchmark.py: memory format, optimizer,
torch.compile with an eager fallback, and the *reference* configuration of a model.

The reference configuration stands in for the original code on stock PyTorch: every InPlace-ABN
becomes an out-of-place ``F.batch_norm`` with scale ``|w| + eps`` followed by its activation
(:func:`inplace_abn.convert_to_abn`), the backbone keeps the literal norm -> ReLU -> conv graph,
and every attention block runs the naive
``bmm -> softmax -> bmm`` that stores the HW x HW matrix. It is built by converting a model, so
both sides hold the same weights and compute the same function.
"""
from __future__ import annotations

import copy
import shutil
import warnings

import torch
from torch import nn

__all__ = ["set_attention_impl", "reference_model", "to_channels_last", "uses_inplace_abn",
           "channels_last_default",
           "prepare_model", "build_sgd", "CompileFallback", "COMPILE_MODES", "maybe_compile",
           "mark_step", "compile_available"]


def set_attention_impl(model: nn.Module, impl: str) -> nn.Module:
    """Set the attention implementation (``"sdpa"`` or ``"naive"``) of every block in ``model``
    (the OCNet self-attention blocks and the OCR object-context blocks). Returns ``model``."""
    from oc_module.self_attention import ATTENTION_IMPLS
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
    for module in model.modules():
        if getattr(module, "impl", None) in ATTENTION_IMPLS:
            module.impl = impl
    return model


def reference_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in the reference configuration (stock BN + activation, naive
    attention): the same weights and the same fp32 function, computed as the original did."""
    from inplace_abn import convert_to_abn
    ref = copy.deepcopy(model)
    convert_to_abn(ref)
    for module in ref.modules():  # the literal norm -> ReLU -> conv graph of the original
        if hasattr(module, "set_memory_efficient"):
            module.set_memory_efficient(False)
    return set_attention_impl(ref, "naive")


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store the 4-D conv weights of ``model`` channels-last (NHWC). Feed inputs with
    ``x.contiguous(memory_format=torch.channels_last)``; the outputs are the same numbers."""
    return model.to(memory_format=torch.channels_last)


def uses_inplace_abn(model: nn.Module) -> bool:
    """Whether any norm of ``model`` runs the InPlace-ABN kernels (the OCNet models)."""
    from inplace_abn import InPlaceABN, InPlaceABNSync
    return any(isinstance(m, (InPlaceABN, InPlaceABNSync)) for m in model.modules())


def channels_last_default(device, model: nn.Module | None = None) -> bool:
    """Whether the default stores activations channels-last: on CUDA (tensor-core convolutions
    and cuDNN batch norm want NHWC) for models without InPlace-ABN; never on the CPU (measured
    slower there). The InPlace-ABN kernels read (N, C, H*W) blocks, so with NHWC activations every
    norm would copy its input and output in forward and again in backward: the OCNet models stay
    NCHW unless ``--channels-last`` asks otherwise."""
    if torch.device(device).type != "cuda":
        return False
    return model is None or not uses_inplace_abn(model)


def prepare_model(model: nn.Module, device, channels_last=None) -> nn.Module:
    """Apply the memory-format choice to a model already on ``device``: ``channels_last`` True /
    False, or None for :func:`channels_last_default`. Returns ``model``."""
    if channels_last is None:
        channels_last = channels_last_default(device, model)
    return to_channels_last(model) if channels_last else model


def build_sgd(params, lr, momentum, weight_decay, device):
    """SGD whose whole step is one fused kernel per dtype and device (``fused=True``; on a 2-core
    CPU 8x faster than the per-parameter loop and without the gradient-sized temporary of
    ``foreach``), falling back to ``foreach`` where fused is not available. The same update rule
    as plain ``torch.optim.SGD``."""
    params = list(params)
    try:
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               fused=True)
    except (RuntimeError, ValueError):  # a device/dtype without the fused kernel
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               foreach=torch.device(device).type != "cpu")


def compile_available() -> str | None:
    """None when torch.compile can work here, else the reason it cannot."""
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    if shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        return "no C++ compiler (c++/g++/clang++) on PATH; the inductor backend needs one"
    return None


class CompileFallback:
    """Callable ``torch.compile(module)`` that falls back to eager mode, with ONE warning, when
    compilation fails (unsupported op, missing compiler...). It shares the module's parameters;
    keep using the module itself for ``train()``/``eval()``, the optimizer and checkpoints."""

    def __init__(self, module: nn.Module, what: str = "model", **compile_kwargs):
        self.module = module
        self.what = what
        self._compiled = torch.compile(module, **compile_kwargs)
        self.eager = False

    def __call__(self, *args, **kwargs):
        if not self.eager:
            try:
                return self._compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any compiler failure means: run eager
                self.eager = True
                text = str(err).strip()
                first = text.splitlines()[0][:300] if text else ""
                warnings.warn(f"--compile: torch.compile of the {self.what} failed "
                              f"({type(err).__name__}: {first}); running it in eager mode",
                              RuntimeWarning, stacklevel=2)
        return self.module(*args, **kwargs)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def maybe_compile(model: nn.Module, criterion: nn.Module, enabled: bool, mode: str = "default"):
    """Callables ``(model, criterion)`` for the training step: compiled when ``enabled`` and
    possible, otherwise the modules themselves, with one warning saying why when compilation was
    asked for but cannot work here. The modules are not modified.

    ``mode`` is torch.compile's: ``"reduce-overhead"`` replays the compiled graphs as CUDA graphs
    (the training crop has static shapes), which takes the kernel launches of launch-bound steps
    (HRNet, AMP) off the host; the loop then marks each step with :func:`mark_step`."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    if not enabled:
        return model, criterion
    reason = compile_available()
    if reason is not None:
        warnings.warn(f"--compile: {reason}; running in eager mode", RuntimeWarning, stacklevel=2)
        return model, criterion
    return (CompileFallback(model, "model", mode=mode),
            CompileFallback(criterion, "loss", mode=mode))


def mark_step(mode: str) -> None:
    """Tell torch.compile's CUDA-graph replay that a new training step begins (its outputs of the
    previous step may be overwritten); a no-op for the other modes."""
    if mode == "reduce-overhead":
        torch.compiler.cudagraph_mark_step_begin()
