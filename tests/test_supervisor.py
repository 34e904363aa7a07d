"""seqjax/runtime/supervisor.py: JAX's fatal block on a survivor becomes one line; other output,
absl errors that are not fatal included, is relayed byte for byte."""
import io

from seqjax.runtime import supervisor

FATAL = (
    b"E1202 00:48:15.363812   21174 coordination_service.cc:1549] [23] Use error polling to propagate "
    b"the following error to all tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending "
    b"heartbeats):\n1\nThe tasks have crashed. Check the task logs.\n"
    b"F1202 00:48:15.364493   21185 client.h:80] Terminating process because the JAX distributed service "
    b"detected fatal errors. This most likely indicates that another task died\n"
    b"*** Check failure stack trace: ***\n    @     0x7f7a54840634  absl::LogMessage::SendToLog()\n"
)


def relay(*chunks: bytes) -> tuple[supervisor._Relay, bytes]:
    out = io.BytesIO()
    r = supervisor._Relay(out)
    for c in chunks:
        r.feed(c)
    return r, out.getvalue()


def test_fatal_block_becomes_one_line_with_the_last_checkpoint(tmp_path):
    for step in ("4", "8", "8.orbax-checkpoint-tmp-1"):
        (tmp_path / "checkpoints" / step).mkdir(parents=True)
    head = f"training sequences:tiny in {tmp_path}\nstep 3: train loss=0.5\n".encode()
    r, out = relay(head[:10], head[10:] + FATAL[:50], FATAL[50:])  # split mid-line: reassembled
    assert out == head and r.fatal()
    assert r.summary() == (
        "seqjax: error: the run ended: process 1 stopped sending heartbeats (JAX's coordination service); "
        f"the last checkpoint in {tmp_path} is step 8; relaunch the same command on every process to resume")


def test_resumed_run_names_its_directory(tmp_path):
    r, _ = relay(f"resuming {tmp_path} from step 8 (epoch 1, batch 4)\n".encode() + FATAL)
    assert r.workdir == str(tmp_path) and f"no checkpoint in {tmp_path} yet" in r.summary()


def test_other_absl_errors_and_progress_bars_are_relayed_unchanged(monkeypatch):
    warn = b"E1202 00:48:15.363812   21174 some.cc:12] a harmless error\ncontinued\n"
    r, out = relay(b"10%|#   \r20%|##  \r", warn)
    assert out == b"10%|#   \r20%|##  \r" and not r.fatal()  # held while it may still turn fatal
    monkeypatch.setattr(supervisor, "HOLD_S", 0.0)
    r.tick()
    r.feed(b"step 4\n")
    assert r.out.getvalue() == b"10%|#   \r20%|##  \r" + warn + b"step 4\n"


def test_only_multi_process_commands_are_supervised():
    assert supervisor.wanted(["train", "sequences:tiny", "--distributed"], {})
    assert supervisor.wanted(["train"], {"JAX_COORDINATOR_ADDRESS": "h:1"})
    assert not supervisor.wanted(["train", "sequences:tiny"], {})
    assert not supervisor.wanted(["train", "--distributed"], {supervisor.CHILD_ENV: "1"})
