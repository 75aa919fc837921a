# New (the original checked nothing and synchronised the host every iteration). MIT License.
"""What the training loop watches without stalling the device: stop signals, finiteness, the loss.

* :class:`StopRequest`: SIGINT / SIGTERM set a flag; the loop saves ``resume.pth`` at the next
  iteration boundary and exits 130 / 143. A second SIGINT interrupts at once.
* :class:`LoopMonitor`: per step it only queues device work: an ``isfinite`` of the loss and of one
  reduction (sum / L1 norm) of every parameter and floating buffer after the optimizer step, folded
  into "the first bad iteration", and a running sum of the loss. :meth:`LoopMonitor.sync` reads it all
  back with ONE host transfer (plus ONE all-reduce under torchrun, which also carries the stop flags),
  and the loop calls it only every ``LOG_EVERY`` iterations and before every save.
"""
import signal
from dataclasses import dataclass

import torch

from utils import distributed
from utils.cli import EXIT_SIGINT, EXIT_SIGTERM

_NO_BAD = -1


class StopRequest:
    """Context manager: SIGINT/SIGTERM set ``requested`` (and ``exit_status``: 130 or 143)."""

    def __init__(self):
        self.requested = False
        self.exit_status = 0
        self._old = {}

    def _handler(self, signum, frame):
        if not self.requested:
            self.exit_status = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
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


@dataclass
class SyncResult:
    """What :meth:`LoopMonitor.sync` read back (over all processes)."""
    stop: bool            # some process was asked to stop
    first_bad: int        # first iteration with a non-finite loss/parameter, or -1
    bad_loss: float       # the loss at that iteration (this process's; NaN/inf or finite)
    loss: float           # the current iteration's loss, averaged over the processes
    window_loss: float    # mean finite loss since the previous sync (NaN if none)
    skipped: int          # steps whose loss was not finite (only counted when ``check_loss`` is off)


class LoopMonitor:
    """Device-side finiteness flag and loss statistics of the training loop.

    Args:
        source: the model (its parameters and floating buffers are checked; the list is refreshed at
            every sync, so a later ``.to()`` that replaces buffers is followed), or a list of tensors.
        device: where the statistics live (the training device).
        check_loss: a non-finite loss is a divergence (True without AMP's GradScaler; with it, the
            scaler skips such steps, so only the parameters are checked and the skips are counted).
    """

    def __init__(self, source, device, check_loss=True):
        self.source = source
        self._collect()
        self.check_loss = check_loss
        self.device = device
        self.first_bad = torch.full((), _NO_BAD, dtype=torch.int64, device=device)
        self.bad_loss = torch.zeros((), dtype=torch.float64, device=device)
        self.window = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, count, skipped
        self.loss = torch.zeros((), dtype=torch.float64, device=device)

    def _collect(self):
        tensors = (list(self.source.parameters()) + list(self.source.buffers())
                   if isinstance(self.source, torch.nn.Module) else list(self.source))
        self.tensors = [t for t in tensors if t.is_floating_point() and t.numel() > 0]

    @torch.no_grad()
    def update(self, loss, iteration):
        """Record iteration ``iteration`` (call after optimizer.step()); queues device work only."""
        loss = loss.detach().to(torch.float64)
        # One reduction per tensor whose result is NaN/inf iff the tensor holds NaN/inf (or values so
        # large, |x| summing past ~3e38, that the next forward overflows anyway): on CUDA one multi-tensor
        # L1 norm (a few launches), on the CPU plain sums (no launch cost; the L1/inf norms are slower).
        if self.tensors and self.tensors[0].is_cuda:
            sums = torch._foreach_norm(self.tensors, 1)
        else:
            sums = [t.sum() for t in self.tensors]
        ok = torch.isfinite(torch.stack([s.float() for s in sums])).all()
        loss_ok = torch.isfinite(loss)
        if self.check_loss:
            ok = ok & loss_ok
        newly_bad = (self.first_bad == _NO_BAD) & ~ok
        self.first_bad = torch.where(newly_bad, iteration, self.first_bad)
        self.bad_loss = torch.where(newly_bad, loss, self.bad_loss)
        self.window += torch.stack([torch.where(loss_ok, loss, 0.0), loss_ok.double(), (~loss_ok).double()])
        self.loss = loss

    def sync(self, stop_requested, runtime):
        """Read the statistics back (one host transfer; one all-reduce under torchrun) and reset the
        loss window. Every process must call it at the same iterations."""
        bad = (self.first_bad != _NO_BAD).double()
        stop = torch.tensor(float(stop_requested), dtype=torch.float64, device=self.device)
        packed = torch.cat([torch.stack([stop, bad, self.loss]), self.window])
        packed = distributed.all_reduce_sum(packed, runtime)
        stop_n, bad_n, loss_sum, window_sum, window_n, skipped = packed.tolist()
        first_bad = _NO_BAD
        if bad_n > 0:  # rare path: every process sees bad_n > 0, so all take part in the reduction
            big = torch.iinfo(torch.int64).max
            first = torch.where(self.first_bad == _NO_BAD, big, self.first_bad).reshape(1)
            first_bad = int(distributed.all_reduce_min(first, runtime).item())
        bad_loss = float(self.bad_loss.item()) if bad_n > 0 else float("nan")
        result = SyncResult(stop=stop_n > 0, first_bad=first_bad, bad_loss=bad_loss,
                            loss=loss_sum / runtime.world_size,
                            window_loss=window_sum / window_n if window_n else float("nan"),
                            skipped=int(skipped))
        self.window.zero_()
        self._collect()
        return result
