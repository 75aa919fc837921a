"""utils/cli.py: one ERROR line and status 2 for OCNetError, tracebacks for bugs, DataLoader unwrapping."""
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from utils.cli import run_main, user_message
from utils.errors import CheckpointError, DatasetError, UnknownNameError


@pytest.fixture
def no_debug(monkeypatch):
    monkeypatch.delenv("OCNET_DEBUG", raising=False)


def test_user_error_is_one_message_with_status_2(capsys, no_debug):
    def bad():
        raise UnknownNameError("unknown model 'resnet101_base'; valid names: a, b")
    assert run_main(bad) == 2
    err = capsys.readouterr().err
    assert err == "ERROR: unknown model 'resnet101_base'; valid names: a, b\n(set OCNET_DEBUG=1 for the traceback)\n"


def test_status_from_main(no_debug):
    assert run_main(lambda: None) == 0
    assert run_main(lambda: {"mIoU": 0.5}) == 0   # eval.py returns its results
    assert run_main(lambda: 130) == 130           # train.py after Ctrl-C
    assert run_main(lambda: True) == 0            # a bool is not a status


def test_bugs_keep_their_traceback(no_debug):
    def bug():
        raise KeyError("a real bug")  # a built-in error is not a user error any more
    with pytest.raises(KeyError):
        run_main(bug)
    with pytest.raises(ValueError):
        run_main(lambda: int("x"))


def test_debug_reraises(monkeypatch):
    monkeypatch.setenv("OCNET_DEBUG", "1")

    def bad():
        raise CheckpointError("x.pth: cannot be read")
    with pytest.raises(CheckpointError):
        run_main(bad)


class Broken(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i == 2:
            raise DatasetError("label /data/b.png: values [40] are outside 0..18 and 255 (check --num-classes)")
        return torch.zeros(1)


def test_dataloader_worker_errors_are_unwrapped(capsys, no_debug):
    """Oracle: the message raised in the worker, verbatim (torch wraps it in a 'Caught ... Original
    Traceback' text of ~20 lines)."""
    def main():
        for _ in DataLoader(Broken(), batch_size=1, num_workers=1):
            pass
    with pytest.raises(DatasetError) as wrapped:
        main()
    assert "Original Traceback" in str(wrapped.value)  # what PyTorch gives us
    assert user_message(wrapped.value) == ("label /data/b.png: values [40] are outside 0..18 and 255 "
                                           "(check --num-classes)")
    assert run_main(main) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("ERROR: label /data/b.png: values [40] are outside 0..18 and 255 "
                                   "(check --num-classes)")
    assert len(err.splitlines()) == 2 and "Traceback" not in err


def test_multiline_worker_message_is_kept():
    text = ("Caught CheckpointError in DataLoader worker process 3.\nOriginal Traceback (most recent call "
            "last):\n  File \"x.py\", line 1, in f\nutils.errors.CheckpointError: first line\nsecond line\n")
    assert user_message(CheckpointError(text)) == "first line\nsecond line"
    assert user_message(CheckpointError("plain")) == "plain"
