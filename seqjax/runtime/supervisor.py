"""One line instead of JAX's fatal block when a peer of a multi-process run dies.

When one process of a ``--distributed`` run dies, JAX's coordination service ends every
survivor within its heartbeat timeout with ``LOG(FATAL)``: a C++ abort and a 30-line absl
stack trace that Python cannot catch. The ``seqjax`` executable therefore runs a
multi-process command in a child process and relays the child's stderr: an absl error
block is held back while it is being written, and if the child then dies of the
distributed service's fatal error the block becomes one line naming the failure, the run
directory and its last checkpoint (which the abort cannot harm: checkpoints are committed
atomically). Any other block is relayed unchanged. SIGTERM and SIGINT are forwarded, so a
scheduler's stop request still checkpoints; the exit code is the child's (1 after the
abort). One process runs without a supervisor.
"""
from __future__ import annotations

import os
import pathlib
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

#: set in the child so it does not supervise itself again
CHILD_ENV = "SEQJAX_SUPERVISED"
_ABSL = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")
_WORKDIR = re.compile(rb"^(?:training \S+ in |resuming )(\S.*?)(?: from step \d+.*)?$")
_FATAL_MARK = b"JAX distributed service detected fatal errors"
HOLD_S = 3.0  # an absl block no fatal line follows within this time is relayed as it is


def wanted(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> bool:
    """A multi-process command (``--distributed`` or a coordinator in the environment) not
    already running under a supervisor."""
    return env.get(CHILD_ENV) != "1" and ("--distributed" in argv or bool(env.get("JAX_COORDINATOR_ADDRESS")))


class _Relay:
    """stderr bytes of the child -> our stderr, absl error blocks held until judged."""

    def __init__(self, out):
        self.out, self.partial, self.held, self.held_at = out, b"", [], 0.0
        self.workdir: str | None = None

    def feed(self, chunk: bytes) -> None:
        data = self.partial + chunk
        pieces = re.split(rb"(?<=[\n\r])", data)
        self.partial = pieces.pop() if not data.endswith((b"\n", b"\r")) else b""
        for line in filter(None, pieces):
            self._line(line)

    def _line(self, line: bytes) -> None:
        if m := _WORKDIR.match(line.rstrip()):
            self.workdir = m.group(1).decode(errors="replace")
        if _ABSL.match(line) and line[:1] in b"EF":
            self.held.append(line)
            self.held_at = time.monotonic()
        elif self.held and not _ABSL.match(line):
            self.held.append(line)  # the continuation lines of a held message
        else:
            self.release()
            self._write(line)

    def release(self) -> None:
        for line in self.held:
            self._write(line)
        self.held = []

    def tick(self) -> None:
        if self.held and time.monotonic() - self.held_at > HOLD_S and not self.fatal():
            self.release()

    def fatal(self) -> bool:
        return any(_FATAL_MARK in line for line in self.held)

    def _write(self, line: bytes) -> None:
        self.out.write(line)
        self.out.flush()

    def summary(self) -> str:
        """The one line replacing a held fatal block."""
        text = b"".join(self.held).decode(errors="replace")
        m = re.search(r"unhealthy \(stopped sending heartbeats\):\s*([\d,\s]+?)\s*\n", text)
        who = f"process {', '.join(m.group(1).split())} stopped sending heartbeats" if m else (
            "another process of the run failed or cannot be reached")
        where = ""
        if self.workdir:
            ckpts = pathlib.Path(self.workdir) / "checkpoints"
            steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
            where = (f"; the last checkpoint in {self.workdir} is step {max(steps)}" if steps
                     else f"; no checkpoint in {self.workdir} yet")
        return (f"seqjax: error: the run ended: {who} (JAX's coordination service){where}; "
                "relaunch the same command on every process to resume")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the supervisor dies (Linux), so a killed
    process of the run is gone whole, as its peers' heartbeats expect."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run(argv: Sequence[str]) -> int:
    """``python -m seqjax argv`` in a child process, its stderr relayed; the exit code."""
    env = {**os.environ, CHILD_ENV: "1"}
    # its own session: a terminal's Ctrl-C reaches the child once, through us
    proc = subprocess.Popen([sys.executable, "-m", "seqjax", *argv], stderr=subprocess.PIPE, env=env,
                            start_new_session=True, preexec_fn=_die_with_parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: proc.poll() is None and proc.send_signal(s))
    relay, fd = _Relay(sys.stderr.buffer), proc.stderr.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            relay.feed(chunk)
        relay.tick()
    if relay.partial:
        relay.feed(b"\n")
    code = proc.wait()
    if relay.fatal():
        print(relay.summary(), file=sys.stderr)
        return 1
    relay.release()
    return code if code >= 0 else 128 - code
