# Replaces the print statements and tensorboardX writer of OCNet.pytorch (679a45b). MIT License.
"""stdlib logging to stdout (+ an optional file), and TensorBoard when the package is installed."""
import logging
import os
import sys

try:  # optional: torch.utils.tensorboard needs the `tensorboard` package
    from torch.utils.tensorboard import SummaryWriter
    has_tensorboard = True
except ImportError:  # pragma: no cover - depends on the environment
    SummaryWriter = None
    has_tensorboard = False

LOGGER_NAME = "ocnet"


def setup_logging(log_file="", rank=0):
    """Configure the 'ocnet' logger: INFO on rank 0, WARNING elsewhere; also append to ``log_file``."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if log_file and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def get_logger():
    return logging.getLogger(LOGGER_NAME)


def summary_writer(log_dir, enabled=True):
    """A SummaryWriter in ``log_dir``, or None without tensorboard (or when not ``enabled``)."""
    if not enabled or not has_tensorboard:
        return None
    return SummaryWriter(log_dir)
