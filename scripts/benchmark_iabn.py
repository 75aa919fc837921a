"""Benchmark InPlace-ABN: activation memory saved for backward, and backend speed.

(a) Memory: one full train step (forward, DSN loss, backward) of a segmentation model with its
    InPlace-ABN layers, and of the same model with every InPlace-ABN converted to ABN (BatchNorm
    then the activation, standard autograd). Every tensor autograd saves is seen through
    torch.autograd.graph.saved_tensors_hooks; unique storages are counted (parameters excluded)
    and attributed to the norm/activation layers when saved inside one.
(b) Speed: forward+backward of the InPlace-ABN function per backend (and ABN for reference).

Usage: python -m scripts.benchmark_iabn [--size 257] [--backends torch cpp] [--out PREFIX]
Writes PREFIX.json and PREFIX.md (default scripts/results/benchmark_iabn).
"""
import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

import network
from inplace_abn import ABN, InPlaceABN, InPlaceABNSync, convert_to_abn, inplace_abn
from inplace_abn import backend as iabn_backend

NORMS, ACTS = (ABN, InPlaceABN, InPlaceABNSync), (nn.ReLU, nn.LeakyReLU, nn.ELU)
MIB = 2 ** 20


def saved_bytes_one_step(model, image, label):
    """Unique bytes saved for backward during one train step, split by layer kind and model part."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    params |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    where = {"kind": "other", "part": "other"}
    storages = {}  # data_ptr -> dict(nbytes, kinds, part)

    def set_ctx(key, value):
        def pre(_module, _args):
            where[key + "_prev"] = where[key]
            where[key] = value

        def post(_module, _args, _out):
            where[key] = where.pop(key + "_prev")
        return pre, post

    handles = []
    for name, child in model.named_children():
        is_backbone = name.startswith(("conv", "bn", "relu", "layer", "maxpool"))
        pre, post = set_ctx("part", "backbone" if is_backbone else "head")
        handles += [child.register_forward_pre_hook(pre), child.register_forward_hook(post)]
    for m in model.modules():
        if isinstance(m, NORMS + ACTS):
            pre, post = set_ctx("kind", "norm+act")
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]

    def pack(t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and storage.nbytes() > 0:
            entry = storages.setdefault(
                ptr, {"nbytes": storage.nbytes(), "kinds": set(), "part": where["part"]})
            entry["kinds"].add(where["kind"])
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        out = model(image)
        aux, main = out
        loss = 0  # the DSN loss: 0.4 * CE(aux) + CE(main), logits upsampled with align_corners
        for weight, logits in ((0.4, aux), (1.0, main)):
            up = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=True)
            loss = loss + weight * F.cross_entropy(up, label, ignore_index=255)
    loss.backward()
    for h in handles:
        h.remove()
    report = {"total": 0, "norm+act": 0, "norm+act_exclusive": 0}
    for part in ("backbone", "head"):
        report[f"norm+act_{part}"] = 0
    for e in storages.values():
        report["total"] += e["nbytes"]
        if "norm+act" in e["kinds"]:
            report["norm+act"] += e["nbytes"]
            report[f"norm+act_{e['part']}"] = report.get(f"norm+act_{e['part']}", 0) + e["nbytes"]
            if e["kinds"] == {"norm+act"}:
                report["norm+act_exclusive"] += e["nbytes"]
    return report, loss.item()


def memory_benchmark(args):
    torch.manual_seed(0)
    model = network.get_segmentation_model(args.network, num_classes=19).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    image = torch.randn(args.batch, 3, args.size, args.size)
    label = torch.randint(0, 19, (args.batch, args.size, args.size))
    rows = {}
    for variant in ("InPlace-ABN", "InPlace-ABN, literal backbone", "BN + activation (ABN)"):
        model.load_state_dict(state)
        # the default backbone recomputes each norm -> ReLU -> conv pair's ReLU in backward; the
        # literal one (as the original) keeps the ReLU output too
        model.set_memory_efficient(variant == "InPlace-ABN")
        if variant.startswith("BN"):
            convert_to_abn(model)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same dropout masks
        rows[variant], loss = saved_bytes_one_step(model, image.clone(), label)
        rows[variant]["loss"] = loss
    return rows


def time_backends(args):
    shape, dev = tuple(args.time_shape), torch.device(args.time_device)
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(shape, generator=gen).to(dev, dtype)
    grad = torch.randn(shape, generator=gen).to(dev, dtype)
    weight = torch.rand(shape[1], generator=gen).to(dev).requires_grad_()
    bias = torch.randn(shape[1], generator=gen).to(dev).requires_grad_()
    abn = ABN(shape[1], activation=args.activation).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step(kind):
        leaf = base.clone().requires_grad_()
        rm, rv = torch.zeros(shape[1], device=dev), torch.ones(shape[1], device=dev)
        sync()
        t0 = time.perf_counter()
        if kind == "ABN (autograd)":
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                out = abn(leaf * 1)
        else:
            iabn_backend.set_backend(kind)
            out = inplace_abn(leaf * 1, weight, bias, rm, rv, True, activation=args.activation)
        out.backward(grad)
        sync()
        return time.perf_counter() - t0

    kinds = list(args.backends) + ["ABN (autograd)"]
    for kind in kinds:  # warm-up (and JIT build)
        step(kind)
    times = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for kind in kinds:  # interleaved, so that load changes hit every kind alike
            times[kind].append(step(kind))
    iabn_backend.set_backend(None)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def to_markdown(result, command):
    lines = [f"Command: `{command}`", "", f"Machine: {result['machine']}", ""]
    if "memory" in result:
        m = result["memory"]
        iabn, abn = m["InPlace-ABN"], m["BN + activation (ABN)"]
        literal = m.get("InPlace-ABN, literal backbone", iabn)
        lines += [f"### Saved-for-backward activation memory, one train step of "
                  f"`{result['network']}` ({result['input']}, CPU)", "",
                  "| quantity | BN + activation | InPlace-ABN, literal backbone | InPlace-ABN "
                  "(default) | saved (default vs BN + activation) |", "|---|---:|---:|---:|---:|"]
        for key, label in (("total", "all saved tensors (unique storages, no parameters)"),
                           ("norm+act", "storages saved by norm/activation layers"),
                           ("norm+act_backbone",
                            "... of which in the backbone (norm 'none' + separate ReLU)"),
                           ("norm+act_head",
                            "... of which in the heads (InPlace-ABN with leaky_relu)"),
                           ("norm+act_exclusive", "storages only norm/activation layers keep")):
            a, lit, b = abn[key] / MIB, literal[key] / MIB, iabn[key] / MIB
            share = f"{100 * (a - b) / a:.1f}%" if a else "n/a"
            lines.append(f"| {label} | {a:.1f} MiB | {lit:.1f} MiB | {b:.1f} MiB | {share} |")
        lines += ["", f"Loss of the variants (same weights and dropout masks): {abn['loss']:.6f}, "
                      f"{literal['loss']:.6f}, {iabn['loss']:.6f}.", "",
                  "InPlace-ABN alone saves memory only where the activation is fused into the norm "
                  "(the heads). The faithful backbone has InPlaceABNSync(activation='none') then a "
                  "separate ReLU, so the literal backbone keeps the norm output and the ReLU "
                  "output; by default the backbone's norm -> ReLU -> conv pairs keep only the "
                  "norm output and recompute the ReLU in backward (network/relu_conv.py).", ""]
    if "time_ms" in result:
        lines += [f"### Forward+backward of one InPlace-ABN layer, input "
                  f"{tuple(result['time_shape'])} {result['dtype']}, activation "
                  f"{result.get('activation', 'leaky_relu')} ({result['time_device']}, "
                  f"median of {result['repeats']})", "",
                  "| implementation | time (ms) |", "|---|---:|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in result["time_ms"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="resnet101_asp_oc_dsn")
    parser.add_argument("--size", type=int, default=257, help="square input size for (a)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--time-shape", type=int, nargs=4, default=[1, 512, 97, 97])
    parser.add_argument("--backends", nargs="+", default=["torch", "cpp"], help="backends for (b)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--time-device", default="cpu", help="device for (b): cpu or cuda")
    parser.add_argument("--dtype", default="float32", help="input dtype for (b)")
    parser.add_argument("--activation", default="leaky_relu", choices=("leaky_relu", "elu", "none"),
                        help="activation of the layer timed in (b); 'none' is the backbone's")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--out", default="scripts/results/benchmark_iabn", help="output prefix")
    args = parser.parse_args(argv)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    result = {"machine": f"{machine}, torch {torch.__version__}", "network": args.network,
              "input": f"{args.batch}x3x{args.size}x{args.size}"}
    if not args.skip_memory:
        iabn_backend.set_backend("torch")
        result["memory"] = memory_benchmark(args)
    if not args.skip_time:
        device = torch.cuda.get_device_name() if args.time_device == "cuda" else "CPU"
        result.update(time_ms=time_backends(args), time_shape=args.time_shape, repeats=args.repeats,
                      time_device=device, dtype=args.dtype, activation=args.activation)
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python", "-m", "scripts.benchmark_iabn"] + given)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(to_markdown(result, command))
    print(to_markdown(result, command))


if __name__ == "__main__":
    main()
