"""Segmentation models: the registry (:mod:`network.registry`), the OCNet family
(:mod:`network.ocnet`), OCRNet (:mod:`network.ocrnet`) and their named output
(:mod:`network.outputs`).

Importing the package imports every model module, whose ``@register`` decorators fill
:data:`NETWORKS`.
"""
from . import ocnet, ocrnet  # noqa: F401  (registers the builders)
from .outputs import SegOutput, as_seg_output, main_output
from .registry import NETWORKS, builder_options, get_segmentation_model, list_models, register
from .resnet import ResNet, count_parameters

__all__ = ["NETWORKS", "SegOutput", "as_seg_output", "builder_options", "get_segmentation_model",
           "list_models", "main_output", "register", "ResNet", "count_parameters"]
