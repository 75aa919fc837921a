"""Benchmark our default configuration against the reference (the original's maths), side by side.

For each model and precision, in ONE process, with the two sides interleaved step by step:

* training step: forward, loss (CriterionDSN, or CE without an aux head), backward, SGD step;
  median time over ``--steps`` after ``--warmup`` steps; peak memory of one more step, with the
  peak reset after the warm-up (so cuDNN's autotuning workspace is not counted);
* whole-image inference (eval mode, no grad) at ``--infer-size``: median time and peak memory.

Sides. ``ours``: the model as built (InPlace-ABN on the active backend, SDPA attention), SGD
with fused (CUDA) / foreach (CPU) updates, channels-last where :func:`utils.accel.
channels_last_default` says it is faster. ``reference``: the same model converted by
:func:`utils.accel.reference_model` (out-of-place ``F.batch_norm`` with ``|w| + eps`` plus the
activation, naive bmm-softmax-bmm attention) with plain SGD, standing in for the original code
on stock PyTorch. Both hold the same weights; their fp32 eval outputs are compared (max |diff|).

Peak memory: CUDA: ``torch.cuda.max_memory_allocated`` (whole process: weights, gradients and
optimizer state included). CPU: the peak resident set size above the resident size before the
step, gradients freed first (``VmHWM`` after resetting it through ``/proc/self/clear_refs``; glibc
is told to unmap freed buffers at once, so the resident size follows the live tensors).

Precisions: fp32 and AMP (fp16 autocast + GradScaler on CUDA; bf16 autocast on CPU, which runs
only with ``--cpu-amp`` because CPUs without native bf16 are ~700x slower).

    python -m scripts.benchmark --device cuda             # the full run (see scripts/gpu_check.sh)
    python -m scripts.benchmark --device cpu              # the CPU demo size
    python -m scripts.benchmark --quick                   # tiny run (ResNet-50 ASP-OC, 33x33)

Writes ``<out-dir>/benchmark_<device>.{json,md}`` (default ``scripts/results``).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import network
from utils import accel
from utils.criterion import CriterionCrossEntropy, CriterionDSN

OCNET_MODELS = ["resnet101_baseline", "resnet101_base_oc_dsn", "resnet101_pyramid_oc_dsn",
                "resnet101_asp_oc_dsn", "resnet101_asp_oc_v1_dsn"]
OCR_MODELS = ["resnet50_ocr", "resnet101_ocr", "hrnetv2_w18s_ocr", "hrnetv2_w18_ocr",
              "hrnetv2_w48_ocr"]
OCR_PRESETS = ["ssseg", "mmseg"]
MIB = 2 ** 20
DEFAULTS = {  # device -> (batch, crop, inference H,W, steps, warm-up)
    "cuda": (2, 769, (1024, 2048), 10, 3),
    "cpu": (4, 64, (96, 192), 5, 2),   # the CPU demo (scripts/common.sh DEMO_*)
    "quick": (1, 33, (33, 49), 2, 1),
}
QUICK_MODELS = ["resnet101_asp_oc_dsn"]  # with --quick built on a ResNet-50 (depth=50)
CPU_MODELS = ["resnet101_asp_oc_dsn", "resnet101_base_oc_dsn"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--models", nargs="+", default=None,
                   help="registry names (OCR names may end in :<preset>); default on CUDA: all "
                        f"OCNet models and every OCR backbone with the presets {OCR_PRESETS}; "
                        f"on the CPU: {CPU_MODELS}")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop", type=int, default=None, help="square training crop")
    p.add_argument("--infer-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--steps", type=int, default=None, help="timed steps per side")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--precisions", nargs="+", default=["fp32", "amp"], choices=("fp32", "amp"))
    p.add_argument("--cpu-amp", action="store_true", help="run bf16 AMP on the CPU too (slow)")
    p.add_argument("--no-infer", action="store_true", help="skip the inference measurement")
    p.add_argument("--compile-mode", default=None, choices=accel.COMPILE_MODES,
                   help="torch.compile our side's training step (model and loss) in this mode, as "
                        "train.py --compile --compile-mode does (reduce-overhead: CUDA graphs); "
                        "default: eager. Results go to benchmark_<device>_compile-<mode>.*")
    p.add_argument("--quick", action="store_true", help="tiny models/sizes (test suite, CPU)")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--note", action="append", default=[], help="a note to print in the report")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible to torch (torch.cuda.is_available() is "
                f"False; torch {torch.__version__}, built with CUDA {torch.version.cuda}). "
                "Run on a GPU machine or use --device cpu")
    batch, crop, infer, steps, warm = DEFAULTS["quick" if args.quick else args.device]
    args.batch_size = args.batch_size or batch
    args.crop = args.crop or crop
    args.infer_size = tuple(args.infer_size or infer)
    args.steps = args.steps or steps
    args.warmup = warm if args.warmup is None else args.warmup
    if args.models is None:
        args.models = (QUICK_MODELS if args.quick else CPU_MODELS if args.device == "cpu" else
                       OCNET_MODELS + [f"{m}:{p}" for m in OCR_MODELS for p in OCR_PRESETS])
    for spec in args.models:
        if spec.split(":")[0] not in network.NETWORKS:
            p.error(f"unknown model {spec!r}; choose from {', '.join(network.list_models())}")
    return args


# ---------------------------------------------------------------- machine and memory probes
def machine_info(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cudnn"] = torch.backends.cudnn.version()
    import inplace_abn
    info["iabn_backend"] = inplace_abn.backend_name()
    return info


def release_freed_memory_to_os():
    """Make glibc return every freed tensor buffer >= 128 KiB to the OS at once (mmap'ed
    blocks, no trimming threshold) and give back the free memory it already holds, so the resident
    set size follows the live tensors and its peak measures a step. No effect off glibc."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
        libc.malloc_trim(0)  # and hand back what is already free (else a step reuses resident pages)
    except (OSError, AttributeError):
        pass


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def measure_peak(device, fn):
    """Run ``fn()`` once; return its peak memory in bytes (see the module docstring) or None."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    release_freed_memory_to_os()  # freed but resident heap pages would hide the step's allocations
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        before = _status("VmRSS")
    except OSError:
        fn()
        return None
    fn()
    return _status("VmHWM") - before


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- one side of the comparison
class Side:
    """A model, its loss and optimizer, and the step / inference callables of one configuration."""

    def __init__(self, name, model, device, amp_dtype, fused_sgd, channels_last, compile_mode=None):
        self.name, self.model, self.device = name, model.to(device), device
        self.compile_mode = compile_mode
        self.channels_last = channels_last
        if channels_last:
            accel.to_channels_last(self.model)
        aux = getattr(model, "has_aux", False)
        align = bool(getattr(model, "align_corners", True))
        self.criterion = (CriterionDSN(align_corners=align) if aux else
                          CriterionCrossEntropy(align_corners=align)).to(device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = (accel.build_sgd(params, 1e-3, 0.9, 5e-4, device) if fused_sgd else
                          torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4,
                                          foreach=False))
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.step_model, self.step_criterion = accel.maybe_compile(
            self.model, self.criterion, compile_mode is not None, compile_mode or "default")

    def _input(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def train_step(self, images, labels):
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.compile_mode is not None:
            accel.mark_step(self.compile_mode)
        with self._autocast():
            loss = self.step_criterion(self.step_model(self._input(images)), labels)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    @torch.inference_mode()
    def infer(self, image):
        self.model.eval()
        with self._autocast():
            return network.main_output(self.model(self._input(image)))


def _timed(fn, device):
    _sync(device)
    tic = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - tic) * 1000


def compare(sides, fn_of, device, steps, warmup):
    """Interleaved timing (the order alternates every step), then one peak-memory run per side."""
    for _ in range(warmup):
        for side in sides:
            fn_of(side)()
    times = {side.name: [] for side in sides}
    for i in range(steps):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            times[side.name].append(_timed(fn_of(side), device))
    out = {}
    for side in sides:
        side.optimizer.zero_grad(set_to_none=True)  # the peak then counts this step's gradients
        peak = measure_peak(device, fn_of(side))
        out[side.name] = {"ms": statistics.median(times[side.name]), "times_ms": times[side.name],
                          "peak_mib": None if peak is None else peak / MIB}
    return out


def build_pair(spec, device, amp_dtype, quick=False, compile_mode=None):
    name, _, preset = spec.partition(":")
    kwargs = {"preset": preset} if preset else {}
    if quick and not name.endswith("_ocr"):
        kwargs["depth"] = 50
    torch.manual_seed(0)
    model = network.get_segmentation_model(name, num_classes=19, **kwargs)
    ref = accel.reference_model(model)
    cl = accel.channels_last_default(device, model)
    return [Side("ours", model, device, amp_dtype, True, cl, compile_mode),
            Side("reference", ref, device, amp_dtype, False, False)]


def output_difference(sides, image):
    """max |ours - reference| / max |reference| of the fp32 eval logits (same weights)."""
    outs = [side.infer(image).float() for side in sides]
    return float((outs[0] - outs[1]).abs().max() / outs[1].abs().max().clamp_min(1e-12))


def run_case(spec, precision, args, device):
    amp_dtype = None
    if precision == "amp":
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    sides = build_pair(spec, device, amp_dtype, args.quick, args.compile_mode)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, args.crop, args.crop, generator=g).to(device)
    labels = torch.randint(0, 19, (args.batch_size, args.crop, args.crop), generator=g).to(device)
    result = {"model": spec, "precision": precision if amp_dtype is None else
              f"amp-{str(amp_dtype).split('.')[-1]}"}
    image = torch.randn(1, 3, *args.infer_size, generator=g).to(device)
    if amp_dtype is None:  # before any training step, while both sides hold the same weights
        result["max_rel_diff_fp32"] = output_difference(sides, image)
    result["train"] = compare(sides, lambda s: (lambda: s.train_step(images, labels)), device,
                              args.steps, args.warmup)
    if not args.no_infer:
        result["infer"] = compare(sides, lambda s: (lambda: s.infer(image)), device,
                                  max(1, args.steps // 2), max(1, args.warmup))
    del sides
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


# ---------------------------------------------------------------- report
def _fmt(v, unit=""):
    return "n/a" if v is None else f"{v:.1f}{unit}"


def _spread(m):
    return f"{m['ms']:.1f} ({min(m['times_ms']):.0f}-{max(m['times_ms']):.0f})"


def _ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def to_markdown(report):
    m, s = report["machine"], report["settings"]
    where = m.get("gpu") or m["cpu"]
    lines = [f"Command: `{report['command']}`", "",
             f"Device: {report['device']} ({where}); CPU: {m['cpu']}, {m['cpu_threads']} threads; "
             f"torch {m['torch']}, CUDA {m['cuda']}; InPlace-ABN backend: {m['iabn_backend']}", "",
             f"Training step: batch {s['batch_size']}, {s['crop']}x{s['crop']} crop, median of "
             f"{s['steps']} steps after {s['warmup']} warm-up steps, the two sides interleaved. "
             f"Inference: 1x3x{s['infer_size'][0]}x{s['infer_size'][1]}, whole image. "
             + ("Peak memory: torch.cuda.max_memory_allocated (reset after warm-up)." if
                report["device"] == "cuda" else
                "Peak memory: peak RSS above the RSS before the step (reset after warm-up)."), ""]
    for note in report["notes"]:
        lines += [f"Note: {note}", ""]
    for part, title in (("train", "Training step"), ("infer", "Whole-image inference")):
        rows = [r for r in report["results"] if part in r]
        if not rows:
            continue
        lines += [f"### {title}", "",
                  "| model | precision | ours ms (min-max) | reference ms (min-max) | ours/ref | "
                  "ours peak MiB | ref peak MiB | ours/ref |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            o, f = r[part]["ours"], r[part]["reference"]
            lines.append(f"| {r['model']} | {r['precision']} | {_spread(o)} | {_spread(f)} | "
                         f"{_ratio(o['ms'], f['ms'])} | {_fmt(o['peak_mib'])} | "
                         f"{_fmt(f['peak_mib'])} | {_ratio(o['peak_mib'], f['peak_mib'])} |")
        lines.append("")
    diffs = [f"{r['model']} {r['max_rel_diff_fp32']:.1e}" for r in report["results"]
             if "max_rel_diff_fp32" in r]
    if diffs:
        lines += ["max |ours - reference| / max |reference| of the fp32 eval logits (same weights): "
                  + ", ".join(diffs), ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        release_freed_memory_to_os()
    notes, precisions = list(args.note), list(args.precisions)
    if args.compile_mode:
        notes.append(f"our training step is torch.compile'd (mode {args.compile_mode}); the "
                     "timed steps follow the warm-up steps, which include the compilation")
    if device.type == "cpu" and "amp" in precisions and not args.cpu_amp:
        precisions.remove("amp")
        notes.append("AMP (bf16) skipped on the CPU: without native bf16 it is ~700x slower "
                     "than fp32; pass --cpu-amp to run it anyway.")
    report = {"command": "python -m scripts.benchmark " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv),
              "device": device.type, "machine": machine_info(device), "notes": notes,
              "settings": {k: getattr(args, k) for k in ("batch_size", "crop", "infer_size",
                                                         "steps", "warmup", "quick",
                                                         "compile_mode")},
              "results": []}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"benchmark_{device.type}{'_quick' if args.quick else ''}"
                  + (f"_compile-{args.compile_mode}" if args.compile_mode else ""))
    for spec in args.models:
        for precision in precisions:
            res = run_case(spec, precision, args, device)
            report["results"].append(res)
            t = res["train"]
            print(f"{spec:28s} {res['precision']:10s} train ours {t['ours']['ms']:8.1f} ms  "
                  f"ref {t['reference']['ms']:8.1f} ms  ({_ratio(t['ours']['ms'], t['reference']['ms'])})",
                  flush=True)
            stem.with_suffix(".json").write_text(json.dumps(report, indent=1))  # partial results
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    stem.with_suffix(".md").write_text(to_markdown(report) + "\n")
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
