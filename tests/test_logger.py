"""utils/logger.py: stdout + file logging, rank filtering, optional TensorBoard."""
from utils.logger import get_logger, setup_logging, summary_writer


def test_file_and_rank(tmp_path, capsys):
    path = tmp_path / "logs" / "train.log"
    log = setup_logging(str(path), rank=0)
    log.info("iter = 1 of 2 completed")
    assert "iter = 1 of 2 completed" in path.read_text()
    assert "iter = 1 of 2" in capsys.readouterr().out
    log = setup_logging("", rank=1)
    log.info("hidden")
    log.warning("shown")
    out = capsys.readouterr().out
    assert "hidden" not in out and "shown" in out
    assert get_logger() is log


def test_summary_writer(tmp_path):
    # tensorboard is in requirements.txt: the writer must exist and write an event file
    assert summary_writer(str(tmp_path), enabled=False) is None
    writer = summary_writer(str(tmp_path))
    assert writer is not None, "tensorboard is missing: pip install -r requirements.txt"
    writer.add_scalar("loss", 1.0, 0)
    writer.close()
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_summary_writer_without_tensorboard_is_none(tmp_path, monkeypatch):
    # the code must still run where the package is absent: no writer, no file, no error
    import utils.logger as logger
    monkeypatch.setattr(logger, "has_tensorboard", False)
    assert logger.summary_writer(str(tmp_path)) is None
    assert list(tmp_path.iterdir()) == []
