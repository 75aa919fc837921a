# Port of OCNet.pytorch@679a45b inplace_abn/__init__.py (fixed: it imported missing modules).
# License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
"""InPlace-ABN: in-place activated batch normalization (lazy backends; nothing compiles here)."""
from .backend import backend_name
from .bn import ABN, InPlaceABN, InPlaceABNSync, convert_to_abn
from .functions import inplace_abn, inplace_abn_sync

__all__ = ["ABN", "InPlaceABN", "InPlaceABNSync", "backend_name", "convert_to_abn",
           "inplace_abn", "inplace_abn_sync"]
