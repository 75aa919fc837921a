"""utils/runlock.py: one training per snapshot dir; the OS releases the lock of a dead process."""
import os
import subprocess
import sys

import pytest

from utils.errors import ConfigError
from utils.runlock import LOCK_NAME, SnapshotDirLock

HOLD = ("import sys, time\nfrom utils.runlock import SnapshotDirLock\n"
        "lock = SnapshotDirLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(60)\n")


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=root, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError) as err:
            SnapshotDirLock(str(tmp_path)).acquire()
        msg = str(err.value)
        assert f"pid {holder.pid} on host" in msg and "in use by another training" in msg
        assert "--snapshot-dir" in msg
    finally:
        holder.kill()  # like kill -9: no cleanup code runs
        holder.wait()
    with SnapshotDirLock(str(tmp_path)) as lock:  # the kernel released it; the stale file does not block
        assert f"pid {os.getpid()}" in open(lock.path).read()
    assert os.path.exists(tmp_path / LOCK_NAME)


def test_release_lets_the_next_run_in(tmp_path):
    first = SnapshotDirLock(str(tmp_path / "new")).acquire()  # creates the folder
    first.release()
    SnapshotDirLock(str(tmp_path / "new")).acquire().release()


def test_a_filesystem_without_locks_warns_and_runs(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl
    import logging

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="ocnet"):
        SnapshotDirLock(str(tmp_path)).acquire().release()
    assert "cannot lock" in caplog.text and "No locks available" in caplog.text
