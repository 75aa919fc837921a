"""Training memory and step time of the backbone memory modes (``--backbone-memory``).

One model (an OCNet model, or an OCR model with stock BatchNorm), up to four sides with the same
weights: ``reference`` (:func:`utils.accel.reference_model`:
stock BN with |w| + eps + separate ReLU, naive attention, plain SGD), and ours in the modes
``literal``, ``relu`` (the OCNet default) and ``recompute`` (InPlace-ABN only, so not for the OCR
models), with SDPA and fused SGD. For each:

* saved for backward: unique storages autograd keeps during forward + loss (parameters
  excluded), counted with ``saved_tensors_hooks``; also the part saved inside the backbone
  (stem and layer1-4). Deterministic.
* peak memory and median step time of the training step, from ``scripts.benchmark`` (its
  ``compare``: the sides interleaved step by step, alternating order; CPU peak = peak RSS above
  the RSS before the step).

* with ``--profile N``: the torch profiler's CPU self time of N forward + backward passes per
  side (median; all ops, convolution forward, convolution backward).

    python -m scripts.benchmark_backbone_memory [--size 257] [--batch 1] [--steps 5] [--profile 5]

Writes ``<out>.json`` and ``<out>.md`` (default ``scripts/results/backbone_memory_<device>``).
"""
import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch
from torch.autograd.graph import saved_tensors_hooks

import network
from network.resnet import MEMORY_MODES
from scripts.benchmark import MIB, Side, compare, machine_info, release_freed_memory_to_os
from utils import accel

BACKBONE = ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3", "relu3", "maxpool",
            "layer1", "layer2", "layer3", "layer4")


def saved_bytes(side, images, labels):
    """(all, backbone) unique bytes saved for backward by one forward + loss of ``side``."""
    model = side.model.train()
    params = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    inside, storages = [False], {}
    hooks = []
    for name in ("backbone_net",) if hasattr(model, "backbone_net") else BACKBONE:  # OCR / OCNet
        child = getattr(model, name, None)
        if child is not None:
            hooks.append(child.register_forward_pre_hook(lambda m, a: inside.__setitem__(0, True)))
            hooks.append(child.register_forward_hook(lambda m, a, o: inside.__setitem__(0, False)))

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params and s.nbytes() > 0:
            storages.setdefault(s.data_ptr(), (s.nbytes(), inside[0]))
        return t
    torch.manual_seed(1)  # the same dropout masks on every side
    with saved_tensors_hooks(pack, lambda t: t):
        loss = side.criterion(model(images), labels)
    del loss
    for h in hooks:
        h.remove()
    return (sum(n for n, _ in storages.values()),
            sum(n for n, backbone in storages.values() if backbone))


def profile_sides(sides, images, labels, repeats):
    """Median over ``repeats`` alternated forward + loss + backward passes per side (one warm-up
    pass first) of the torch profiler's CPU self time: all ops, conv forward, conv backward."""
    from torch.profiler import ProfilerActivity, profile
    times = {s.name: [] for s in sides}
    for rep in range(repeats + 1):
        for side in (sides if rep % 2 else sides[::-1]):
            side.model.zero_grad(set_to_none=True)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                side.criterion(side.model(images), labels).backward()
            ev = {e.key: e for e in prof.key_averages()}
            ms = {k: ev[k].self_cpu_time_total / 1e3 if k in ev else 0.0
                  for k in ("aten::mkldnn_convolution", "aten::convolution_backward")}
            if rep:
                times[side.name].append((sum(e.self_cpu_time_total for e in ev.values()) / 1e3,
                                         *ms.values()))
    return {name: dict(zip(("total_ms", "conv_forward_ms", "conv_backward_ms"),
                           (statistics.median(c) for c in zip(*t)))) for name, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet101_asp_oc_dsn")
    p.add_argument("--depth", type=int, default=101, help="OCNet models only")
    p.add_argument("--size", type=int, default=257, help="square training crop")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed steps per side")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--sides", nargs="+", default=["reference", *MEMORY_MODES],
                   choices=["reference", *MEMORY_MODES], help="which sides to build and time")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also profile N forward+backward passes per side (CPU self time)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", default=None, help="output prefix")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    release_freed_memory_to_os()
    torch.manual_seed(0)
    ocr = args.model.endswith("_ocr")
    kwargs = {"norm_layer": torch.nn.BatchNorm2d} if ocr else {"depth": args.depth}
    model = network.get_segmentation_model(args.model, num_classes=19, **kwargs)
    sides = ([Side("reference", accel.reference_model(model), device, None, False, False)]
             if "reference" in args.sides else [])
    cl = accel.channels_last_default(device, model)
    modes = [m for m in MEMORY_MODES if m in args.sides and not (ocr and m == "recompute")]
    for mode in modes:  # the OCR models have no "recompute" (it needs InPlace-ABN)
        side_model = copy.deepcopy(model)
        backbone = side_model.backbone_net if ocr else side_model
        backbone.set_memory_efficient(mode != "literal" if ocr else mode)
        sides.append(Side(mode, side_model, device, None, True, cl))
    del model
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(device)
    labels = torch.randint(0, 19, (args.batch, args.size, args.size), generator=g).to(device)
    rows = {s.name: dict(zip(("saved_mib", "saved_backbone_mib"),
                             (b / MIB for b in saved_bytes(s, images, labels)))) for s in sides}
    timed = compare(sides, lambda s: (lambda: s.train_step(images, labels)), device, args.steps,
                    args.warmup)
    for name, r in timed.items():
        rows[name].update(r)
    profiled = profile_sides(sides, images, labels, args.profile) if args.profile else {}
    command = "python -m scripts.benchmark_backbone_memory " + " ".join(
        sys.argv[1:] if argv is None else argv)
    report = {"command": command, "machine": machine_info(device), "model": args.model,
              "depth": None if ocr else args.depth, "input": [args.batch, 3, args.size, args.size], "rows": rows,
              "profile": profiled}
    ref = rows[sides[0].name]
    lines = [f"Command: `{command}`", "", f"Machine: {report['machine']}", "",
             f"`{args.model}`{'' if ocr else f' (ResNet-{args.depth})'}, training step on {args.batch}x3x{args.size}x"
             f"{args.size} fp32, {args.device}; median of {args.steps} interleaved steps.", "",
             "| side | saved for backward MiB | of which backbone MiB | peak MiB | step ms "
             f"(min-max) | saved / {sides[0].name} | peak / {sides[0].name} |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        peak = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        peak_ratio = ("n/a" if r["peak_mib"] is None or not ref["peak_mib"] else
                      f"{r['peak_mib'] / ref['peak_mib']:.2f}")
        lines.append(f"| {name} | {r['saved_mib']:.1f} | {r['saved_backbone_mib']:.1f} | {peak} | "
                     f"{r['ms']:.0f} ({min(r['times_ms']):.0f}-{max(r['times_ms']):.0f}) | "
                     f"{r['saved_mib'] / ref['saved_mib']:.2f} | {peak_ratio} |")
    if profiled:
        lines += ["", f"torch profiler, forward + loss + backward (no SGD step), median of "
                      f"{args.profile} alternated passes, CPU self time:", "",
                  "| side | total ms | conv forward ms | conv backward ms |", "|---|---:|---:|---:|"]
        lines += [f"| {n} | {r['total_ms']:.0f} | {r['conv_forward_ms']:.0f} | "
                  f"{r['conv_backward_ms']:.0f} |" for n, r in profiled.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out or Path(__file__).resolve().parent / "results" /
               f"backbone_memory_{device.type}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
