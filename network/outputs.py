"""The output of a model with an auxiliary head: ``SegOutput(aux, main)``.

The original returned the list ``[dsn, main]``; ``SegOutput`` is a ``NamedTuple`` in that order, so
``out[0]``, ``out[-1]``, ``aux, main = out`` and ``len(out) == 2`` behave as before, and the code that
needs one of the two says which by name (``out.main``). Being a tuple it also passes through
``nn.DataParallel``'s gather (rebuilt as a ``SegOutput``), DDP, ``torch.compile`` and ONNX export
(two graph outputs, aux first). A model without an auxiliary head (``has_aux = False``: the baseline)
returns the main logits tensor itself, as the original did.
"""
from typing import NamedTuple

from torch import Tensor

__all__ = ["SegOutput", "as_seg_output", "main_output"]


class SegOutput(NamedTuple):
    """Logits of the auxiliary head (OCNet's DSN head on layer3, OCRNet's soft object regions) and
    of the main head, both (N, K, h, w) at feature resolution."""

    aux: Tensor
    main: Tensor


def as_seg_output(preds, who="this criterion"):
    """``preds`` as a :class:`SegOutput`: a ``SegOutput`` as is, a plain ``[aux, main]`` pair (the
    original's order, e.g. an exported graph's outputs) by position; anything else is a TypeError."""
    if isinstance(preds, SegOutput):
        return preds
    if isinstance(preds, (list, tuple)) and len(preds) == 2:
        return SegOutput(*preds)
    raise TypeError(f"{who} expects SegOutput(aux, main) predictions (a model with has_aux=True), "
                    f"got {type(preds).__name__}")


def main_output(out):
    """The main logits of a model output: ``out.main`` of a :class:`SegOutput` (or of an
    ``[aux, main]`` pair), or the tensor itself for a model without an auxiliary head."""
    if isinstance(out, Tensor):
        return out
    return as_seg_output(out, "main_output").main
