# Port of OCNet.pytorch train.py (679a45b). MIT License.
"""Train an OCNet model on Cityscapes (or the synthetic demo set).

    python train.py --network resnet101 --method asp_oc_dsn --random-mirror --random-scale \
        --batch-size 8 --num-steps 40000 --restore-from ./pretrained_model/resnet101-imagenet.pth
    torchrun --nproc_per_node=4 train.py --gpu 0,1,2,3 ...      # DDP, --batch-size stays global
    python train.py ... --resume auto                            # continue exactly after a stop

Exit status (through ``run_main``): 0 when done; 2 with one ``ERROR:`` message for a user error or a
diverging run (nothing non-finite is ever written); 130 / 143 after Ctrl-C / SIGTERM once ``resume.pth``
is written.
"""
import os
import random
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from utils import accel, distributed
from utils.checkpoint import load_checkpoint, remove_stale_temps, save_snapshot, snapshot_path
from utils.cli import EXIT_SIGTERM, run_main
from utils.errors import DivergenceError, MissingFileError, OCNetError
from utils.logger import setup_logging, summary_writer
from utils.monitor import LoopMonitor, StopRequest
from utils.options import model_kwargs, model_name, parse_args, print_args
from utils.parallel import wrap_parallel
from utils.pretrained import CSAIL_URL, load_pretrained
from utils.resume import RESUME_NAME, load_resume, resolve_resume, restore_resume, rng_state, save_resume
from utils.runlock import SnapshotDirLock
from utils.sampler import IterationSampler, PositionSeeded
from utils.schedule import adjust_learning_rate
from utils.visualize import log_training_images

TB_EVERY = 100  # faithful: the original wrote TensorBoard scalars every 100 iterations
LOG_EVERY = 10  # the loop reads the loss / finiteness flag (and, under torchrun, agrees on a stop) this often


def build_model(args, log, resumed=False):
    """The model, initialised from ImageNet (--start-iters 0), a full model (--start-iters > 0) or,
    when ``resumed``, left for the resume file to fill."""
    import network
    model = network.get_segmentation_model(model_name(args), num_classes=args.num_classes,
                                           **model_kwargs(args))
    if resumed:
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
            raise MissingFileError(
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
                      persistent_workers=args.num_workers > 0,
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
    """CS_scenes_<snapshot_iter>.pth (plain state_dict) + the resume file, both atomic, rank 0 only.
    Call it only after LoopMonitor.sync() found everything finite. Returns the paths written."""
    rngs = distributed.all_gather_object(rng_state(), runtime)
    paths = []
    if runtime.is_main:
        if snapshot:
            paths.append(save_snapshot(model, args.snapshot_dir, snapshot_iter))
        paths.append(save_resume(os.path.join(args.snapshot_dir, RESUME_NAME), model, optimizer, next_iter,
                                 args, scaler, rngs))
    distributed.barrier(runtime)
    return paths


def take_snapshot_dir(args, runtime, log):
    """Lock --snapshot-dir for this run (rank 0) and remove a killed save's temporary files. Every
    process learns whether rank 0 succeeded, so none waits for a run that never starts."""
    lock, error = None, None
    if runtime.is_main:
        try:
            lock = SnapshotDirLock(args.snapshot_dir).acquire()
            for path in remove_stale_temps(args.snapshot_dir):
                log.warning(f"removed {path}: the temporary file of a save that was killed")
        except OCNetError as err:
            error = err
    failed = torch.tensor([float(error is not None)], device=runtime.device)
    if distributed.all_reduce_sum(failed, runtime).item() > 0:
        if error is not None:
            raise error
        raise OCNetError(f"rank {runtime.rank}: rank 0 could not take --snapshot-dir (see its message)")
    return lock


def divergence_message(args, it, loss, lr, last_good):
    """One message: where it diverged, what is safe on disk, what to try."""
    where = (f"{', '.join(last_good[1])} (iteration {last_good[0]})" if last_good and last_good[1] else
             "none (this run saved nothing yet)")
    what = "parameters" if np.isfinite(loss) else "loss"
    return (f"training diverged at iteration {it}: non-finite {what} (loss {loss:.4g}, lr {lr:.3g}); nothing "
            f"non-finite was written. Last good checkpoint: {where}. Try a lower --learning-rate (now "
            f"{args.learning_rate:g}, e.g. {args.learning_rate / 10:g}; continue with --resume auto "
            "--resume-override learning-rate) and check the labels (--num-classes, --ignore-label)"
            f"{', or train without --amp' if args.amp else ''}.")


def main(argv=None):
    """Train; returns the exit status (0, or 130 / 143 after an interrupt that wrote resume.pth)."""
    args = parse_args("train", argv)
    runtime = distributed.setup(args)
    log = setup_logging(args.log_file, runtime.rank)
    try:
        return _train(args, runtime, log)
    finally:
        distributed.cleanup()


def _train(args, runtime, log):
    log.info("train.py arguments:")
    print_args(args, log.info)
    lock = take_snapshot_dir(args, runtime, log)
    try:
        return _run(args, runtime, log)
    finally:
        if lock is not None:
            lock.release()


def _run(args, runtime, log):
    import inplace_abn
    from utils.criterion import build_criterion
    resume_path = resolve_resume(args.resume, args.snapshot_dir)  # the one resume decision
    if args.resume == "auto":
        log.info("--resume auto: " + (f"continuing from {resume_path}" if resume_path else
                                      "no resume file, fresh start"))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed + runtime.rank)
    torch.backends.cudnn.benchmark = True  # faithful

    model = build_model(args, log, resumed=resume_path is not None)
    resume_state = (load_resume(resume_path, args, args.trust_checkpoint, args.resume_override, log.warning)
                    if resume_path else None)
    model.to(runtime.device)
    accel.prepare_model(model, runtime.device, args.channels_last)
    criterion = build_criterion(
        model, ohem=args.ohem, ohem_single=args.ohem_single, ohem_thres=args.ohem_thres,
        ohem_keep=args.ohem_keep, dsn_weight=args.dsn_weight, use_weight=args.use_weight,
        ignore_label=args.ignore_label).to(runtime.device)
    # faithful: ONE param group (backbone and heads share lr; weight decay on BN and biases too).
    optimizer = accel.build_sgd([{"params": [p for p in model.parameters() if p.requires_grad],
                                  "lr": args.learning_rate}], lr=args.learning_rate,
                                momentum=args.momentum, weight_decay=args.weight_decay,
                                device=runtime.device)
    autocast, scaler = make_amp(args, runtime.device, log)
    start = args.start_iters
    if resume_state is not None:
        start = restore_resume(resume_state, model, optimizer, scaler, runtime.rank)
        log.info(f"resumed from {resume_path} at iteration {start}")
    monitor = LoopMonitor(model, runtime.device, check_loss=not scaler.is_enabled())
    model, criterion = wrap_parallel(model, criterion, runtime)
    step_model, step_criterion = accel.maybe_compile(model, criterion, args.compile,
                                                       args.compile_mode)
    mode = (f"DDP, {runtime.world_size} processes" if runtime.distributed else
            f"DataParallel over GPUs {list(runtime.dp_devices)}" if runtime.dp_devices else "1 process")
    log.info(f"model {model_name(args)} on {runtime.device} ({mode}, global batch {args.batch_size}); "
             f"InPlace-ABN backend: {inplace_abn.backend_name()}")
    if start >= args.num_steps:
        log.info(f"nothing to do: iteration {start} >= --num-steps {args.num_steps}")
        return 0
    loader = build_loader(args, runtime, start)
    writer = summary_writer(args.snapshot_dir, enabled=runtime.is_main)
    model.train()
    bar = tqdm(total=args.num_steps, initial=start, disable=not runtime.is_main, desc="train",
               dynamic_ncols=True)
    tic = time.time()
    last_good = (start, [resume_path]) if resume_path else None
    lrs = {}
    status = 0
    try:
        with StopRequest() as stop:
            for it, (images, labels, _, _) in zip(range(start, args.num_steps), loader):
                lr = lrs[it] = adjust_learning_rate(optimizer, it, args.learning_rate, args.num_steps,
                                                   args.power, args.min_lr, args.fix_lr)
                images = images.to(runtime.device, non_blocking=True)      # (N, 3, H, W)
                labels = labels.long().to(runtime.device, non_blocking=True)  # (N, H, W)
                accel.mark_step(args.compile_mode)  # a no-op unless CUDA graphs are replayed
                with autocast():
                    preds = step_model(images)
                    loss = step_criterion(preds, labels)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                monitor.update(loss, it)  # device work only: no host synchronisation here
                bar.update(1)
                log_training_images(writer, it, args.save_pred_every if args.image_every is None
                                    else args.image_every, images, labels, preds, args.dataset,
                                    args.save_num_images)
                last = it >= args.num_steps - 1
                save_now = last or it % args.save_pred_every == 0
                local_stop = stop.requested and not runtime.distributed  # a Python flag: no collective
                if not (save_now or local_stop or it % LOG_EVERY == 0):
                    continue
                state = monitor.sync(stop.requested, runtime)
                if state.first_bad >= 0:
                    raise DivergenceError(divergence_message(args, state.first_bad, state.bad_loss,
                                                             lrs.get(state.first_bad, lr), last_good))
                lrs = {}
                bar.set_postfix(loss=f"{state.loss:.4f}", lr=f"{lr:.2e}")
                skipped = f", {state.skipped} steps skipped by GradScaler" if state.skipped else ""
                log.info(f"iter = {it} of {args.num_steps} completed, loss = {state.loss:.4f} "
                         f"(mean since last log {state.window_loss:.4f}{skipped}), lr = {lr:.3e}, "
                         f"{time.time() - tic:.1f}s")
                if writer is not None and it % TB_EVERY == 0:
                    writer.add_scalar("learning_rate", lr, it)
                    writer.add_scalar("loss", state.loss, it)
                # faithful: CS_scenes_<num_steps>.pth at the last iteration, and CS_scenes_<i> when
                # i % save_pred_every == 0 (so CS_scenes_0 holds the weights after the first step).
                if last:
                    paths = save_all(args, runtime, model, optimizer, scaler, args.num_steps, args.num_steps)
                    log.info(f"saved {snapshot_path(args.snapshot_dir, args.num_steps)}")
                elif save_now:
                    paths = save_all(args, runtime, model, optimizer, scaler, it, it + 1)
                    last_good = (it + 1, paths)
                if state.stop and not last:
                    if not save_now:
                        save_all(args, runtime, model, optimizer, scaler, it, it + 1, snapshot=False)
                    log.warning(f"stopped after iteration {it} (resume.pth written); continue with --resume auto")
                    status = stop.exit_status or EXIT_SIGTERM  # a rank told by another one
                    break
    except (RuntimeError, OSError) as err:  # DDP's own all-reduce in backward when a peer died
        lost = distributed.peer_lost(err, runtime, "the training step")
        if lost is None:
            raise
        raise lost from err
    finally:  # the bar ends its line before any ERROR message
        bar.close()
        if writer is not None:
            writer.close()
    return status


if __name__ == "__main__":
    sys.exit(run_main(main))
