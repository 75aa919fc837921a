# Port of OCNet.pytorch train.py (679a45b). MIT License.
"""Train an OCNet model on Cityscapes (or the synthetic demo set).

    python train.py --network resnet101 --method asp_oc_dsn --random-mirror --random-scale \
        --batch-size 8 --num-steps 40000 --restore-from ./pretrained_model/resnet101-imagenet.pth
    torchrun --nproc_per_node=4 train.py --gpu 0,1,2,3 ...      # DDP, --batch-size stays global
    python train.py ... --resume auto                            # continue exactly after a stop
"""
import os
import random
import signal
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from utils import accel, distributed
from utils.checkpoint import CSAIL_URL, load_checkpoint, load_pretrained, save_snapshot
from utils.logger import run_main, setup_logging, summary_writer
from utils.options import model_kwargs, model_name, parse_args, print_args
from utils.parallel import wrap_parallel
from utils.resume import load_resume, restore_resume, rng_state, save_resume
from utils.sampler import IterationSampler, PositionSeeded
from utils.schedule import adjust_learning_rate

TB_EVERY = 100  # faithful: the original wrote TensorBoard scalars every 100 iterations
LOG_EVERY = 10


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a resume file at the next iteration boundary.
    A second SIGINT interrupts immediately."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        self.requested = True
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def build_model(args, log):
    import network
    model = network.get_segmentation_model(model_name(args), num_classes=args.num_classes,
                                           **model_kwargs(args))
    if args.resume:
        return model  # weights come from the resume file
    if args.zero_init_residual:
        from network.resnet import Bottleneck
        blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
        for block in blocks:  # residual branch starts at ~0 (|0| + eps): faster from-scratch training
            torch.nn.init.zeros_(block.bn3.weight)
        log.info(f"--zero-init-residual: zeroed bn3.weight of {len(blocks)} bottlenecks")
    path = args.restore_from
    if args.start_iters == 0:
        if path and os.path.isfile(path):
            keys = load_pretrained(model, path, trust=args.trust_checkpoint)
            log.info(f"loaded {len(keys)} ImageNet backbone tensors from {path}")
        elif args.allow_random_init:
            log.warning(f"WARNING: --restore-from {path!r} not found: training from RANDOM init "
                        "(results will be far below the paper's).")
        else:
            raise FileNotFoundError(
                f"--restore-from {path!r} not found. Download the ImageNet ResNet-101 the paper used "
                f"({CSAIL_URL}) to that path (see pretrained_model/README.md), or pass "
                "--allow-random-init True to train from scratch.")
    else:
        # faithful: with --start-iters > 0 the file is a full model; the optimizer restarts fresh.
        load_checkpoint(model, path, trust=args.trust_checkpoint)
        log.info(f"loaded the full model from {path} (continuing at iteration {args.start_iters})")
    return model


def build_loader(args, runtime, start_iter):
    from dataset import get_segmentation_dataset
    dataset = get_segmentation_dataset(
        args.dataset, root=args.data_dir, list_path=args.data_list,
        max_iters=args.num_steps * args.batch_size, crop_size=args.input_size,
        scale=args.random_scale, mirror=args.random_mirror, ignore_label=args.ignore_label)
    sampler = IterationSampler(len(dataset), args.batch_size, args.num_steps, start_iter, args.seed,
                               runtime.rank, runtime.world_size)
    return DataLoader(PositionSeeded(dataset, args.seed), batch_size=sampler.local_batch, sampler=sampler,
                      num_workers=args.num_workers, pin_memory=runtime.device.type == "cuda",
                      generator=torch.Generator())  # own generator: never draws from the global RNG


def make_amp(args, device, log):
    """(autocast context factory, GradScaler)."""
    if not args.amp:
        return (lambda: torch.autocast(device.type, enabled=False)), torch.amp.GradScaler("cuda",
                                                                                         enabled=False)
    if device.type == "cuda":
        return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")
    log.warning("--amp on CPU uses bfloat16 autocast; very slow on CPUs without native bf16")
    return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), torch.amp.GradScaler("cuda",
                                                                                       enabled=False)


def save_all(args, runtime, model, optimizer, scaler, snapshot_iter, next_iter, snapshot=True):
    """CS_scenes_<snapshot_iter>.pth (plain state_dict) + the resume file, both atomic, rank 0 only."""
    rngs = distributed.all_gather_object(rng_state(), runtime)
    if runtime.is_main:
        if snapshot:
            save_snapshot(model, args.snapshot_dir, snapshot_iter)
        save_resume(os.path.join(args.snapshot_dir, "resume.pth"), model, optimizer, next_iter, args,
                    scaler, rngs)
    distributed.barrier(runtime)


def mean_over_ranks(value, runtime):
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=runtime.device)
    return distributed.all_reduce_sum(tensor, runtime).item() / runtime.world_size


def main(argv=None):
    args = parse_args("train", argv)
    runtime = distributed.setup(args)
    log = setup_logging(args.log_file, runtime.rank)
    try:
        return _train(args, runtime, log)
    finally:
        distributed.cleanup()


def _train(args, runtime, log):
    import inplace_abn
    from utils.criterion import build_criterion
    if args.resume == "auto":  # continue if a resume file is there, else start normally
        path = os.path.join(args.snapshot_dir, "resume.pth")
        args.resume = path if os.path.isfile(path) else None
        log.info(f"--resume auto: {'continuing from ' + path if args.resume else 'no resume file, fresh start'}")
    log.info("train.py arguments:")
    print_args(args, log.info)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed + runtime.rank)
    torch.backends.cudnn.benchmark = True  # faithful
    os.makedirs(args.snapshot_dir, exist_ok=True)

    model = build_model(args, log)
    resume_state = load_resume(args.resume, args, args.trust_checkpoint) if args.resume else None
    model.to(runtime.device)
    accel.prepare_model(model, runtime.device, args.channels_last)
    criterion = build_criterion(args, model).to(runtime.device)
    # faithful: ONE param group (backbone and heads share lr; weight decay on BN and biases too).
    optimizer = accel.build_sgd([{"params": [p for p in model.parameters() if p.requires_grad],
                                  "lr": args.learning_rate}], lr=args.learning_rate,
                                momentum=args.momentum, weight_decay=args.weight_decay,
                                device=runtime.device)
    autocast, scaler = make_amp(args, runtime.device, log)
    start = args.start_iters
    if resume_state is not None:
        start = restore_resume(resume_state, model, optimizer, scaler, runtime.rank)
        log.info(f"resumed from {args.resume} at iteration {start}")
    model, criterion = wrap_parallel(model, criterion, runtime)
    step_model, step_criterion = accel.maybe_compile(model, criterion, args.compile)
    mode = (f"DDP, {runtime.world_size} processes" if runtime.distributed else
            f"DataParallel over GPUs {list(runtime.dp_devices)}" if runtime.dp_devices else "1 process")
    log.info(f"model {model_name(args)} on {runtime.device} ({mode}, global batch {args.batch_size}); "
             f"InPlace-ABN backend: {inplace_abn.backend_name()}")
    if start >= args.num_steps:
        log.info(f"nothing to do: iteration {start} >= --num-steps {args.num_steps}")
        return model
    loader = build_loader(args, runtime, start)
    writer = summary_writer(args.snapshot_dir, enabled=runtime.is_main)
    model.train()
    bar = tqdm(total=args.num_steps, initial=start, disable=not runtime.is_main, desc="train",
               dynamic_ncols=True)
    tic = time.time()
    with StopRequest() as stop:
        for it, (images, labels, _, _) in zip(range(start, args.num_steps), loader):
            if mean_over_ranks(stop.requested, runtime) > 0:
                save_all(args, runtime, model, optimizer, scaler, it, it, snapshot=False)
                log.warning(f"stopped at iteration {it}; continue with --resume auto")
                break
            lr = adjust_learning_rate(optimizer, it, args)
            images = images.to(runtime.device, non_blocking=True)      # (N, 3, H, W)
            labels = labels.long().to(runtime.device, non_blocking=True)  # (N, H, W)
            with autocast():
                preds = step_model(images)
                loss = step_criterion(preds, labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at iteration {it} (lr {lr:.3g}); "
                                         "lower --learning-rate or check the labels")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_value = mean_over_ranks(loss.item(), runtime)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if it % LOG_EVERY == 0 or it == args.num_steps - 1:
                log.info(f"iter = {it} of {args.num_steps} completed, loss = {loss_value:.4f}, "
                         f"lr = {lr:.3e}, {time.time() - tic:.1f}s")
            if writer is not None and it % TB_EVERY == 0:
                writer.add_scalar("learning_rate", lr, it)
                writer.add_scalar("loss", loss_value, it)
            # faithful: CS_scenes_<num_steps>.pth at the last iteration, and CS_scenes_<i> when
            # i % save_pred_every == 0 (so CS_scenes_0 holds the weights after the first step).
            if it >= args.num_steps - 1:
                save_all(args, runtime, model, optimizer, scaler, args.num_steps, args.num_steps)
                log.info(f"saved {os.path.join(args.snapshot_dir, f'CS_scenes_{args.num_steps}.pth')}")
            elif it % args.save_pred_every == 0:
                save_all(args, runtime, model, optimizer, scaler, it, it + 1)
    bar.close()
    if writer is not None:
        writer.close()
    return model


if __name__ == "__main__":
    sys.exit(run_main(main))
