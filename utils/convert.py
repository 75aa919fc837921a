# New (no original counterpart): checkpoint importers for OCRNet (sssegmentation, mmseg) and the
# original OCNet.pytorch snapshots. Key layouts of each project's released checkpoints. MIT License.
"""Import released OCRNet / OCNet weights into our models, and export ours under their names.

Formats (``detect_format``):

* ``ssseg``  -- sssegmentation: ``{'model': sd, ...}``; keys ``backbone_net.``,
  ``auxiliary_decoder.``, ``bottleneck.``, ``object_context_block.``, ``decoder.``. Our OCRNet uses
  these names, so the mapping is the identity.
* ``mmseg``  -- mmsegmentation: ``{'meta', 'state_dict'}``; ``backbone.``, ``decode_head.0.`` (FCN
  aux head), ``decode_head.1.`` (OCR head, ConvModule ``.conv.`` / ``.bn.``).
* ``ocnet``  -- OCNet.pytorch ``CS_scenes_<iter>.pth``: a plain state_dict of our OCNet names,
  possibly with a DataParallel ``module.`` prefix.

Tensors that cannot transfer between head presets: the fusion conv (3x3 sssegmentation
vs 1x1 mmseg) and the aux conv (3x3 -> 512 vs 3x3 -> 256 / 1x1 -> C_in). They are reported as
"did not fit" with the reason; build the model with the matching ``preset`` to load them.
"""
from dataclasses import dataclass, field

from utils.checkpoint import extract_state_dict, read_checkpoint
from utils.errors import CheckpointError, ConfigError

__all__ = ["FORMATS", "ConversionReport", "detect_format", "extract_model_state", "mmseg_to_ssseg",
           "ssseg_to_mmseg", "to_our_names", "export_state_dict", "import_state_dict",
           "import_checkpoint"]

FORMATS = ("ssseg", "mmseg", "ocnet")
_AUX_MM = {"0": "convs.0.conv", "1": "convs.0.bn", "4": "conv_seg"}
_AUX_SS = {v: k for k, v in _AUX_MM.items()}


def extract_model_state(ckpt):
    """The state_dict inside a loaded checkpoint object (:func:`utils.checkpoint.extract_state_dict`:
    ``ckpt['model']``, ``ckpt['state_dict']``... or ``ckpt``; the ``module.`` rule). Optimizer state,
    epochs, ``meta`` etc. are ignored."""
    return extract_state_dict(ckpt)[0]


def detect_format(state):
    """``ssseg``, ``mmseg`` or ``ocnet`` from the key prefixes."""
    keys = list(state)
    if any(k.startswith("backbone_net.") for k in keys):
        return "ssseg"
    if any(k.startswith("decode_head.") for k in keys) or any(k.startswith("backbone.")
                                                               for k in keys):
        return "mmseg"
    return "ocnet"


def _mm_key_to_ss(key):
    if key.startswith("backbone."):
        return "backbone_net." + key[len("backbone."):]
    if key.startswith("decode_head.0."):           # FCNHead: the soft-object-region (aux) head
        rest = key[len("decode_head.0."):]
        for mm, ss in _AUX_SS.items():
            if rest.startswith(mm + "."):
                return f"auxiliary_decoder.{ss}." + rest[len(mm) + 1:]
        return None
    if key.startswith("decode_head.1."):           # OCRHead
        rest = key[len("decode_head.1."):]
        if rest.startswith("conv_seg."):
            return "decoder.1." + rest[len("conv_seg."):]
        parts = rest.split(".")
        if len(parts) >= 3 and parts[-2] in ("conv", "bn"):
            parts[-2] = "0" if parts[-2] == "conv" else "1"
            return ".".join(parts)
    return None


def _ss_key_to_mm(key):
    if key.startswith("backbone_net."):
        return "backbone." + key[len("backbone_net."):]
    if key.startswith("auxiliary_decoder."):
        idx, rest = key[len("auxiliary_decoder."):].split(".", 1)
        return f"decode_head.0.{_AUX_MM[idx]}.{rest}" if idx in _AUX_MM else None
    if key.startswith("decoder.1."):
        return "decode_head.1.conv_seg." + key[len("decoder.1."):]
    if key.startswith(("bottleneck.", "object_context_block.")):
        parts = key.split(".")
        if parts[-2] in ("0", "1"):
            parts[-2] = "conv" if parts[-2] == "0" else "bn"
            return "decode_head.1." + ".".join(parts)
    return None


def mmseg_to_ssseg(state):
    """Rename an mmseg OCRNet state_dict to sssegmentation (= our) names.

    Returns ``(renamed, unmapped_keys)``.
    """
    out, unmapped = {}, []
    for k, v in state.items():
        new = _mm_key_to_ss(k)
        if new is None:
            unmapped.append(k)
        else:
            out[new] = v
    return out, unmapped


def ssseg_to_mmseg(state):
    """Inverse of :func:`mmseg_to_ssseg` (used to export our weights under mmseg names)."""
    out = {}
    for k, v in state.items():
        new = _ss_key_to_mm(k)
        if new is None:
            raise CheckpointError(f"{k!r} has no mmseg counterpart (only OCRNet models export to mmseg names)")
        out[new] = v
    return out


def to_our_names(state, fmt):
    """``(renamed state, unmapped keys)`` for a state_dict in format ``fmt``."""
    if fmt not in FORMATS:
        raise ConfigError(f"checkpoint format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "mmseg":
        return mmseg_to_ssseg(state)
    return dict(state), []


def export_state_dict(model, fmt="ssseg"):
    """Our model's state_dict under the names of ``fmt`` (``ssseg`` is the identity)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if fmt == "ssseg":
        return state
    if fmt == "mmseg":
        return ssseg_to_mmseg(state)
    raise ConfigError(f"export format must be 'ssseg' or 'mmseg', got {fmt!r}")


@dataclass
class ConversionReport:
    """What an import did. ``ok`` when every model tensor was filled from the checkpoint."""

    fmt: str
    mapped: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)   # (key, file shape, model shape, reason)
    unexpected: list = field(default_factory=list)   # in the file, no place in the model
    missing: list = field(default_factory=list)      # in the model, not in the file
    notes: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.mismatched and not [k for k in self.missing
                                            if not k.endswith("num_batches_tracked")]

    def summary(self, limit=6):
        lines = [f"format {self.fmt}: mapped {len(self.mapped)} tensors"]
        if self.mismatched:
            lines.append(f"did not fit ({len(self.mismatched)}):")
            lines += [f"  {k}: file {a} vs model {b} -- {why}"
                      for k, a, b, why in self.mismatched[:limit]]
        for title, keys in (("unexpected (no place in the model)", self.unexpected),
                            ("missing (kept at their initial value)", self.missing)):
            if keys:
                more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
                lines.append(f"{title} ({len(keys)}): {', '.join(keys[:limit])}{more}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _reason(key, file_shape, model_shape):
    if key.startswith("object_context_block.bottleneck.0.") and len(file_shape) == 4:
        return (f"fusion conv {file_shape[-1]}x{file_shape[-1]} in the file, "
                f"{model_shape[-1]}x{model_shape[-1]} in the model: build the model with the "
                "head preset of the checkpoint (ssseg = 3x3, mmseg/openseg = 1x1)")
    if key.startswith(("decoder.1.", "auxiliary_decoder.4.")):
        return "number of classes differs (check --num-classes)"
    if key.startswith("auxiliary_decoder."):
        return "aux head shape differs between presets (ssseg 3x3->512, mmseg 3x3->256 / 1x1->C_in)"
    return "shape differs (another backbone?)"


def import_state_dict(model, state, fmt="auto", strict=False):
    """Load ``state`` (a raw state_dict in format ``fmt``) into ``model``; returns a report.

    Every tensor whose renamed key exists in the model with the same shape is copied; the rest is
    listed in the report. With ``strict=True`` a CheckpointError (a ValueError) carrying the report
    is raised unless every model tensor was filled.
    """
    state = extract_model_state(state)  # a no-op on a state_dict that read_checkpoint returned
    if fmt == "auto":
        fmt = detect_format(state)
    renamed, unmapped = to_our_names(state, fmt)
    ours = model.state_dict()
    report = ConversionReport(fmt, unexpected=list(unmapped))
    fitting = {}
    for k, v in renamed.items():
        if k not in ours:
            report.unexpected.append(k)
        elif tuple(v.shape) != tuple(ours[k].shape):
            report.mismatched.append((k, tuple(v.shape), tuple(ours[k].shape),
                                      _reason(k, tuple(v.shape), tuple(ours[k].shape))))
        else:
            fitting[k] = v
            report.mapped.append(k)
    report.missing = [k for k in ours if k not in fitting]
    if getattr(getattr(model, "backbone_net", None), "stem_relu", None) is not None:
        report.notes.append(
            f"HRNet stem_relu={model.backbone_net.stem_relu}: checkpoints do not record it; the "
            "seed-era sssegmentation *_train.pth weights need False, mmseg/ImageNet/2025 ones True")
    if strict and not report.ok:
        raise CheckpointError("checkpoint does not fit the model:\n" + report.summary())
    model.load_state_dict(fitting, strict=False)
    return report


def import_checkpoint(model, path, fmt="auto", strict=False, trust=False):
    """:func:`import_state_dict` on a file read once by :func:`utils.checkpoint.read_checkpoint`."""
    return import_state_dict(model, read_checkpoint(path, trust).state_dict, fmt, strict)
