"""The model registry: the ONLY place a model name is resolved.

A name is ``"<network>_<method>"`` (``train.py`` joins ``--network`` and ``--method``), e.g.
``resnet101_asp_oc_dsn``. Builders register themselves with :func:`register`, next to their
definition (``network/ocnet.py``, ``network/ocrnet.py``); the name is the builder's own name.
Everything downstream works on the built object; nothing parses the name again.

A builder's signature is its contract: ``num_classes`` plus keyword options. An option a builder does
not declare is rejected before anything is built, so an option that would do nothing (``attention=``
on the baseline, ``preset=`` on an OCNet model) is an error, and a ``TypeError`` raised inside a
constructor stays the bug it is.
"""
import inspect

from utils.errors import ConfigError, UnknownNameError

__all__ = ["NETWORKS", "register", "builder_options", "get_segmentation_model", "list_models"]

NETWORKS = {}

# builder option -> the command-line flag that sets it (for the error message)
_FLAGS = {"preset": "--ocr-preset", "stem_relu": "--stem-relu", "stem": "--stem",
          "backbone_memory": "--backbone-memory"}


def register(builder):
    """Decorator: add ``builder`` to :data:`NETWORKS` under ``builder.__name__``."""
    name = builder.__name__
    if name in NETWORKS:
        raise ValueError(f"model {name!r} is registered twice")
    NETWORKS[name] = builder
    return builder


def list_models():
    """Sorted list of the registered model names."""
    return sorted(NETWORKS)


def builder_options(builder):
    """The keyword options ``builder`` declares (``num_classes`` excluded), or None if it takes
    ``**kwargs`` (then only the builder itself can judge an option)."""
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "num_classes"}


def get_segmentation_model(name, num_classes=19, **kwargs):
    """Build the model registered as ``name``.

    Args:
        name (str): a key of :data:`NETWORKS`, e.g. ``"resnet101_asp_oc_dsn"``.
        num_classes (int): output classes (19 for Cityscapes).
        **kwargs: builder options, e.g. ``attention="naive"`` or ``stem="standard"``.
    Raises:
        UnknownNameError (a KeyError): an unknown name; the message lists the valid names.
        ConfigError (a ValueError): an option the builder does not declare; the message lists those
            it does.
    """
    if name not in NETWORKS:
        raise UnknownNameError(f"unknown model {name!r}; valid names (<network>_<method>): "
                               f"{', '.join(list_models())}")
    builder = NETWORKS[name]
    accepted = builder_options(builder)
    unknown = [] if accepted is None else sorted(set(kwargs) - accepted)
    if unknown:
        given = ", ".join(f"{k} ({_FLAGS[k]})" if k in _FLAGS else k for k in unknown)
        raise ConfigError(f"model {name!r} does not take the option(s) {given}; it takes "
                          f"{sorted(accepted) or 'none'} (--ocr-preset / --stem-relu apply to the "
                          "*_ocr models only)")
    return builder(num_classes=num_classes, **kwargs)
