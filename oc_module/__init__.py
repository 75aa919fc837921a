"""Object-context modules of OCNet (and the shared attention primitive)."""
from .asp_oc_block import ASP_OC_Module
from .base_oc_block import BaseOC_Context_Module, BaseOC_Module
from .pyramid_oc_block import Pyramid_OC_Module
from .self_attention import (ATTENTION_IMPLS, PyramidSelfAttentionBlock2D, SelfAttentionBlock2D,
                             attention, pyramid_cells)

__all__ = ["ASP_OC_Module", "BaseOC_Module", "BaseOC_Context_Module", "Pyramid_OC_Module",
           "SelfAttentionBlock2D", "PyramidSelfAttentionBlock2D", "attention", "pyramid_cells",
           "ATTENTION_IMPLS"]
