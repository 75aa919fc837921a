"""Errors a user can cause and fix: a bad flag, a missing or corrupt file, a wrong dataset layout, a
checkpoint of another model, a diverging run.

The scripts' entry point prints an :class:`OCNetError` as one ``ERROR:`` message (no traceback unless
``OCNET_DEBUG=1``) and exits with status 2; any other exception is a bug and keeps its traceback. Each
subclass also derives from the matching built-in exception, so callers that catch ``ValueError`` or
``FileNotFoundError`` keep working.
"""

__all__ = ["OCNetError", "ConfigError", "MissingFileError", "DatasetError", "CheckpointError",
           "UnknownNameError", "DivergenceError"]


class OCNetError(Exception):
    """Base class: an error in the user's input or environment, reported without a traceback."""


class ConfigError(OCNetError, ValueError):
    """A bad flag or option value (name the flag and the accepted values)."""


class MissingFileError(OCNetError, FileNotFoundError):
    """A file or folder the user named (or that a default names) does not exist."""


class DatasetError(OCNetError, ValueError):
    """A wrong dataset layout, a bad list line, an unreadable image or an out-of-range label."""


class CheckpointError(OCNetError, ValueError):
    """An unreadable, corrupt, untrusted or mismatching checkpoint file."""


class UnknownNameError(OCNetError, KeyError):
    """An unknown registry name (model, dataset, preset); the message lists the valid names."""

    def __str__(self):  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class DivergenceError(OCNetError, FloatingPointError):
    """Training produced a non-finite loss or non-finite parameters."""
