# New (the original printed tracebacks). MIT License.
"""The scripts' entry point: one error path for every command-line tool.

``sys.exit(run_main(main))`` runs ``main()`` and returns the process exit status:

* ``main()`` returns normally: its return value when that is an ``int`` (``train.py`` returns 130 or
  143 after an interrupted run has written its resume file), else 0;
* an :class:`utils.errors.OCNetError` (a bad flag, a missing or corrupt file, a diverging run...):
  ``ERROR: <message>`` on stderr, no traceback, status 2. ``OCNET_DEBUG=1`` re-raises it instead;
* an error raised inside a DataLoader worker comes back wrapped by PyTorch ("Caught DatasetError in
  DataLoader worker process 0. Original Traceback ..."): its own message is recovered first;
* anything else is a bug and keeps its traceback.
"""
import os
import re
import sys

from utils.errors import OCNetError

__all__ = ["run_main", "user_message", "EXIT_USER_ERROR", "EXIT_SIGINT", "EXIT_SIGTERM"]

EXIT_USER_ERROR = 2
EXIT_SIGINT = 130   # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM
_WORKER_PREFIX = re.compile(r"^Caught \w+ in .+?\.\nOriginal Traceback")


def user_message(err):
    """The message of ``err`` as the user should read it (a DataLoader worker's wrapping removed)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if not _WORKER_PREFIX.match(text):
        return text
    # torch re-raises ``type(err)(wrapped text)``; the wrapped text ends with the worker's formatted
    # exception "<module>.<Name>: <message>" (or "<Name>: <message>"), possibly over several lines.
    cls = type(err)
    for name in (f"{cls.__module__}.{cls.__qualname__}", cls.__qualname__):
        marker = f"\n{name}: "
        at = text.rfind(marker)
        if at >= 0:
            return text[at + len(marker):].rstrip()
    return text


def run_main(main):
    """Run ``main()`` and return the exit status (see the module docstring); scripts pass it to
    ``sys.exit``."""
    try:
        status = main()
    except OCNetError as err:
        if os.environ.get("OCNET_DEBUG", "") not in ("", "0"):
            raise
        print(f"ERROR: {user_message(err)}\n(set OCNET_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_USER_ERROR
    return status if isinstance(status, int) and not isinstance(status, bool) else 0
