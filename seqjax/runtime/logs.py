"""What the ``seqjax`` executable prints besides its own lines: logging as plain lines, and
orbax's reports from a closed event loop dropped. Applied by :func:`seqjax.app.cli.run`
only (tests, notebooks and ``seqjax sweep`` call :func:`seqjax.app.cli.main`, which sets
nothing process-wide)."""

from __future__ import annotations

import logging
import sys


def plain_lines() -> None:
    """Log records as their message alone. Warnings are whole lines that say "warning: ..."
    themselves; without a handler of our own, absl's first log call (orbax imports it)
    installs logging's default "WARNING:name:" prefix in front of each of them."""
    logging.basicConfig(format="%(message)s")


def drop_closed_loop_reports() -> None:
    """After a checkpoint write fails (a full disk), TensorStore's write threads still call
    back into orbax's event loop, which is closed by then; each callback reports
    ``RuntimeError('Event loop is closed')`` as an unraisable exception, a traceback per
    pending write, around the run's one error line that already says what happened. This
    hook drops exactly that report and passes every other one on."""
    previous = sys.unraisablehook

    def hook(report):
        if report.exc_type is RuntimeError and str(report.exc_value) == "Event loop is closed":
            return
        previous(report)

    sys.unraisablehook = hook
