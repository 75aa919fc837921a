# Replaces the model/loader setup duplicated in OCNet.pytorch eval.py and generate_submit.py (679a45b).
"""What eval.py and generate_submit.py share: model + checkpoint, the data loader, batch prediction.

Prediction: ``utils.inference.predict`` (the same function for both scripts), then crop to each image's
original size and argmax.
"""
import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from dataset.sample import collate
from utils.checkpoint import load_checkpoint
from utils.errors import MissingFileError
from utils.parallel import wrap_inference


def build_inference_model(name, checkpoint, runtime, log, *, num_classes=19, trust=False,
                          options=None):
    """The model registered as ``name`` (builder ``options``) with ``checkpoint`` loaded strictly, in
    eval mode on the runtime's device. Returns (model wrapped for the runtime, its align_corners)."""
    import inplace_abn
    import network
    if not checkpoint or not os.path.isfile(checkpoint):
        raise MissingFileError(f"--restore-from {checkpoint!r}: checkpoint not found "
                               "(pass a CS_scenes_<iter>.pth written by train.py)")
    model = network.get_segmentation_model(name, num_classes=num_classes, **(options or {}))
    load_checkpoint(model, checkpoint, trust=trust)
    log.info(f"loaded {checkpoint} into {name}; InPlace-ABN backend: {inplace_abn.backend_name()}")
    align_corners = bool(getattr(model, "align_corners", True))
    model.to(runtime.device).eval()
    return wrap_inference(model, runtime), align_corners


def build_loader(dataset, batch_size, num_workers, runtime):
    """Sequential loader over this process's share (rank r takes items r, r+W, ...); ``batch_size``
    is the global batch (``--batch-size``), split over the processes under torchrun."""
    if runtime.distributed:
        dataset = Subset(dataset, list(range(runtime.rank, len(dataset), runtime.world_size)))
        batch = max(1, -(-batch_size // runtime.world_size))  # ceil
    else:
        batch = batch_size
    return DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=num_workers,
                      pin_memory=runtime.device.type == "cuda", collate_fn=collate)


@torch.no_grad()
def predict_labels(model, images, sizes, align_corners, *, num_classes=None, scales=(1.0,),
                   flip=False, tile_size=(1024, 2048), mode="whole", label_shapes=None):
    """Logits via utils.inference.predict, cropped to each original (h, w), argmax -> list of int64 HxW
    tensors (trainIds) on the CPU. With ``label_shapes``, logits whose crop differs from the label size
    are first upsampled (bilinear, the model's align_corners) to it. ``num_classes``, ``scales``,
    ``flip``, ``tile_size`` and ``mode`` are :func:`utils.inference.predict`'s
    (``utils.options.predict_options`` reads them from the flags)."""
    from utils.inference import predict
    images = images.to(next(model.parameters()).device, non_blocking=True)  # (N, 3, H, W)
    logits = predict(model, images, num_classes=num_classes, scales=scales, flip=flip,
                     tile_size=tuple(tile_size), align_corners=align_corners,
                     mode=mode)  # (N, C, H, W)
    out = []
    for n, size in enumerate(sizes):
        h, w = int(size[0]), int(size[1])
        crop = logits[n:n + 1, :, :h, :w]  # (1, C, h, w)
        if label_shapes is not None and tuple(label_shapes[n]) != (h, w):
            crop = F.interpolate(crop, size=tuple(label_shapes[n]), mode="bilinear",
                                 align_corners=align_corners)
        out.append(crop[0].argmax(0).cpu())  # (h, w)
    return out
