# Port of lr_poly / adjust_learning_rate in OCNet.pytorch train.py (679a45b). MIT License.
"""Poly learning-rate schedule, set every iteration before the optimizer step.

    lr(t) = (base - min_lr) * (1 - t / T) ** power + min_lr

With min_lr = 0 this is the original ``base * (1 - t/T)^power`` (no warm-up).
"""


def poly_lr(base_lr, iteration, max_iter, power=0.9, min_lr=0.0):
    """Poly lr at ``iteration`` of ``max_iter``; clamps at min_lr past the end."""
    if max_iter <= 0:
        raise ValueError(f"max_iter must be positive, got {max_iter}")
    frac = max(0.0, 1.0 - float(iteration) / max_iter)
    return (base_lr - min_lr) * frac ** power + min_lr


def adjust_learning_rate(optimizer, iteration, args):
    """Set the lr of every param group for ``iteration`` and return it.

    ``--fix-lr`` keeps ``--learning-rate``. (The original only *printed* a fixed lr while the optimizer
    still followed poly; we fix that bug, see README.)
    """
    if args.fix_lr:
        lr = args.learning_rate
    else:
        lr = poly_lr(args.learning_rate, iteration, args.num_steps, args.power, args.min_lr)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
