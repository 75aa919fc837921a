"""Model registry: the ONLY place a model name is resolved.

A name is ``"<network>_<method>"`` (``train.py`` joins ``--network`` and ``--method``), e.g.
``resnet101_asp_oc_dsn``. Everything downstream works on the built object; nothing parses the name
again.
"""
from . import ocnet
from .resnet import ResNet, count_parameters

__all__ = ["NETWORKS", "get_segmentation_model", "main_output", "list_models", "ResNet",
           "count_parameters"]

NETWORKS = {
    "resnet101_baseline": ocnet.resnet101_baseline,
    "resnet101_base_oc_dsn": ocnet.resnet101_base_oc_dsn,
    "resnet101_pyramid_oc_dsn": ocnet.resnet101_pyramid_oc_dsn,
    "resnet101_asp_oc_dsn": ocnet.resnet101_asp_oc_dsn,
    "resnet101_asp_oc_v1_dsn": ocnet.resnet101_asp_oc_v1_dsn,
}

# --- OCRNet entries (network/ocrnet.py) ---
from . import ocrnet  # noqa: E402

NETWORKS.update({
    "resnet50_ocr": ocrnet.resnet50_ocr,
    "resnet101_ocr": ocrnet.resnet101_ocr,
    "hrnetv2_w18s_ocr": ocrnet.hrnetv2_w18s_ocr,
    "hrnetv2_w18_ocr": ocrnet.hrnetv2_w18_ocr,
    "hrnetv2_w48_ocr": ocrnet.hrnetv2_w48_ocr,
})
# --- end OCRNet entries ---


def list_models():
    """Sorted list of the registered model names."""
    return sorted(NETWORKS)


def get_segmentation_model(name, num_classes=19, **kwargs):
    """Build the model registered as ``name``.

    Args:
        name (str): a key of :data:`NETWORKS`, e.g. ``"resnet101_asp_oc_dsn"``.
        num_classes (int): output classes (19 for Cityscapes).
        **kwargs: builder options, e.g. ``attention="naive"`` or ``stem="standard"``.
    Raises:
        KeyError: for an unknown name; the message lists the valid names.
    """
    if name not in NETWORKS:
        raise KeyError(f"unknown model {name!r}; valid names (<network>_<method>): "
                       f"{', '.join(list_models())}")
    try:
        return NETWORKS[name](num_classes=num_classes, **kwargs)
    except TypeError as err:
        if not kwargs or "unexpected keyword argument" not in str(err):
            raise
        raise ValueError(f"model {name!r} does not take the option(s) {sorted(kwargs)} ({err}); "
                         "e.g. --ocr-preset / --stem-relu apply to the *_ocr models only") from None


def main_output(out):
    """The main prediction of a model output: the last element of a list, or the tensor itself."""
    return out[-1] if isinstance(out, (list, tuple)) else out
