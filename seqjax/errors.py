"""User-facing errors. The CLI turns each into one line on stderr and its exit code.

Exit codes (docs/design.md): 0 done; 2 usage or config error; 3 data error; 1 anything else.
"""


class SeqjaxError(Exception):
    """Base class: an error a user can act on; ``str(err)`` is the one line shown."""

    exit_code = 1


class UsageError(SeqjaxError, ValueError):
    """Bad command line or config: unknown key, wrong type, bad value (exit 2)."""

    exit_code = 2


class DataError(SeqjaxError):
    """Missing dataset, malformed row, bad checksum (exit 3)."""

    exit_code = 3


class TrainingError(SeqjaxError):
    """Training cannot go on, e.g. a non-finite loss (exit 1); checkpoints are kept."""

    exit_code = 1
