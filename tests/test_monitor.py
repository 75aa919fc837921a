"""utils/monitor.py: the device-side finiteness flag and loss window, read back only at sync points."""
import os
import signal

import torch

from utils.distributed import Runtime
from utils.monitor import LoopMonitor, StopRequest

CPU = Runtime(torch.device("cpu"))


def params():
    return [torch.ones(3), torch.zeros(2, 2), torch.empty(0), torch.arange(4)]  # int and empty: ignored


def test_finite_steps_give_the_loss_statistics():
    mon = LoopMonitor(params(), CPU.device)
    for it, loss in enumerate((4.0, 2.0, 3.0)):
        mon.update(torch.tensor(loss), it)
    state = mon.sync(False, CPU)
    assert state.first_bad == -1 and not state.stop and state.skipped == 0
    assert state.loss == 3.0 and state.window_loss == 3.0  # (4 + 2 + 3) / 3
    mon.update(torch.tensor(1.0), 3)
    assert mon.sync(True, CPU).window_loss == 1.0 and mon.sync(True, CPU).stop  # window was reset


def test_nonfinite_parameter_after_the_step_names_the_first_iteration():
    ps = params()
    mon = LoopMonitor(ps, CPU.device)
    mon.update(torch.tensor(1.0), 10)
    ps[1][0, 1] = float("inf")       # the step at iteration 11 blew a parameter up
    mon.update(torch.tensor(2.0), 11)
    ps[0][0] = float("nan")
    mon.update(torch.tensor(float("nan")), 12)
    state = mon.sync(False, CPU)
    assert state.first_bad == 11 and state.bad_loss == 2.0  # the loss was finite, the weights were not


def test_nonfinite_loss_is_a_divergence_without_gradscaler_only():
    mon = LoopMonitor(params(), CPU.device)
    mon.update(torch.tensor(float("inf")), 5)
    assert mon.sync(False, CPU).first_bad == 5
    amp = LoopMonitor(params(), CPU.device, check_loss=False)   # GradScaler skips such steps
    amp.update(torch.tensor(float("inf")), 5)
    amp.update(torch.tensor(2.0), 6)
    state = amp.sync(False, CPU)
    assert state.first_bad == -1 and state.skipped == 1 and state.window_loss == 2.0


def test_update_does_not_synchronise(monkeypatch):
    """No host read in update(): Tensor.item / tolist / __bool__ are never called."""
    mon = LoopMonitor(params(), CPU.device)

    def forbidden(*a, **k):
        raise AssertionError("host synchronisation in LoopMonitor.update")
    for name in ("item", "tolist", "__bool__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for it in range(5):
        mon.update(torch.tensor(float(it)), it)
    monkeypatch.undo()
    assert mon.sync(False, CPU).window_loss == 2.0


def test_stop_request_records_the_signal():
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        with StopRequest() as stop:
            os.kill(os.getpid(), sig)
            assert stop.requested and stop.exit_status == status


def test_a_model_source_follows_replaced_buffers():
    model = torch.nn.BatchNorm1d(3)
    mon = LoopMonitor(model, CPU.device)
    assert len(mon.tensors) == 4  # weight, bias, running_mean, running_var (not num_batches_tracked)
    model.running_var = torch.full((3,), float("nan"))  # a new tensor object, as some .to() calls make
    mon.sync(False, CPU)  # refreshes the list
    mon.update(torch.tensor(1.0), 7)
    assert mon.sync(False, CPU).first_bad == 7


def test_minus_inf_is_caught_and_large_finite_values_are_not():
    ps = [torch.tensor([1e30, -1e30, 3e37]), torch.tensor([2.0, -3.0])]
    mon = LoopMonitor(ps, CPU.device)
    mon.update(torch.tensor(1.0), 0)
    ps[1][1] = float("-inf")
    mon.update(torch.tensor(1.0), 1)
    assert mon.sync(False, CPU).first_bad == 1
