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


def adjust_learning_rate(optimizer, iteration, base_lr, max_iter, power=0.9, min_lr=0.0,
                         fix_lr=False):
    """Set the lr of every param group for ``iteration`` and return it: ``poly_lr``, or ``base_lr``
    itself with ``fix_lr`` (``--fix-lr``). (The original only *printed* a fixed lr while the
    optimizer still followed poly; we fix that bug, see docs/original-bugs-fixed.md.)
    """
    lr = base_lr if fix_lr else poly_lr(base_lr, iteration, max_iter, power, min_lr)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
