"""The project's error types: each carries a message written for the user (what failed, where, the fix).

The CLI prints these without a traceback; any other exception is a bug and keeps its traceback.
"""


class QilinError(Exception):
    """An error the user can act on; its message names the file, record or setting and the fix."""


class ModelNotAvailableError(QilinError):
    """A model directory or hub id could not be found locally and could not be downloaded."""


class CheckpointFormatError(QilinError):
    """A checkpoint's files are not in a format we can read."""


class DataError(QilinError):
    """An input data file or record is malformed."""
