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
from utils.options import model_kwargs, model_name
from utils.parallel import wrap_inference


def build_inference_model(args, runtime, log):
    """The model with ``--restore-from`` loaded strictly, in eval mode on the runtime's device."""
    import inplace_abn
    import network
    if not args.restore_from or not os.path.isfile(args.restore_from):
        raise FileNotFoundError(f"--restore-from {args.restore_from!r}: checkpoint not found "
                                "(pass a CS_scenes_<iter>.pth written by train.py)")
    model = network.get_segmentation_model(model_name(args), num_classes=args.num_classes,
                                           **model_kwargs(args))
    load_checkpoint(model, args.restore_from, trust=args.trust_checkpoint)
    log.info(f"loaded {args.restore_from} into {model_name(args)}; "
             f"InPlace-ABN backend: {inplace_abn.backend_name()}")
    align_corners = bool(getattr(model, "align_corners", True))
    model.to(runtime.device).eval()
    return wrap_inference(model, runtime), align_corners


def build_loader(dataset, args, runtime):
    """Sequential loader over this process's share (rank r takes items r, r+W, ...)."""
    if runtime.distributed:
        dataset = Subset(dataset, list(range(runtime.rank, len(dataset), runtime.world_size)))
        batch = max(1, -(-args.batch_size // runtime.world_size))  # ceil
    else:
        batch = args.batch_size
    return DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=args.num_workers,
                      pin_memory=runtime.device.type == "cuda", collate_fn=collate)


def inference_scales(args):
    """[--whole-scale], or --ms-scales with --use-ms (faithful default 0.75, 1.0, 1.25)."""
    return list(args.ms_scales) if args.use_ms else [args.whole_scale]


@torch.no_grad()
def predict_labels(model, images, sizes, args, align_corners, label_shapes=None):
    """Logits via utils.inference.predict, cropped to each original (h, w), argmax -> list of int64 HxW
    tensors (trainIds) on the CPU. With ``label_shapes``, logits whose crop differs from the label size
    are first upsampled (bilinear, the model's align_corners) to it."""
    from utils.inference import predict
    images = images.to(next(model.parameters()).device, non_blocking=True)  # (N, 3, H, W)
    logits = predict(model, images, num_classes=args.num_classes, scales=inference_scales(args),
                     flip=args.use_flip, tile_size=tuple(args.tile_size), align_corners=align_corners,
                     mode=args.predict_choice)  # (N, C, H, W)
    out = []
    for n, size in enumerate(sizes):
        h, w = int(size[0]), int(size[1])
        crop = logits[n:n + 1, :, :h, :w]  # (1, C, h, w)
        if label_shapes is not None and tuple(label_shapes[n]) != (h, w):
            crop = F.interpolate(crop, size=tuple(label_shapes[n]), mode="bilinear",
                                 align_corners=align_corners)
        out.append(crop[0].argmax(0).cpu())  # (h, w)
    return out
