# New (the original let two trainings share a snapshot dir). MIT License.
"""One training per snapshot dir: an OS-level lock on ``<snapshot-dir>/.train.lock``.

``fcntl.flock`` is held for the life of the process and released by the kernel when the process ends,
however it ends (kill -9 included), so a stale lock file never blocks a new run. The file records who
holds it (pid, host, start time, command line) so that a refused run can name the other process.
"""
import fcntl
import logging
import os
import shlex
import socket
import sys
import time

from utils.errors import ConfigError

LOCK_NAME = ".train.lock"


class SnapshotDirLock:
    """``with SnapshotDirLock(dir):`` or ``acquire()`` / ``release()``; ConfigError when held elsewhere."""

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self._handle = None

    def acquire(self):
        os.makedirs(self.directory, exist_ok=True)
        handle = open(self.path, "a+")  # never truncate before we hold the lock
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # EWOULDBLOCK: another process holds it
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise ConfigError(
                f"--snapshot-dir {self.directory} is in use by another training ({holder}). Wait for it "
                "to finish, stop it (it writes resume.pth; continue later with --resume auto), or use "
                "another --snapshot-dir.") from None
        except OSError as err:  # a filesystem without locks (some network mounts): warn, run unlocked
            handle.close()
            logging.getLogger("ocnet").warning(
                f"WARNING: cannot lock {self.path} ({err.strerror}); a second training on this "
                "--snapshot-dir would not be detected")
            return self
        handle.seek(0)
        handle.truncate()
        command = " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv)
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {command[:300]}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self):
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
