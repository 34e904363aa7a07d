"""seqjax.app.cli: `main` is pure; the executable (`run`, `python -m seqjax`) applies the
process-wide CPU settings unless SEQJAX_TUNING=0; errors are one line with their exit code."""

import os
import subprocess
import sys

import pytest

from seqjax.app import cli
from seqjax.runtime import malloc, xla_flags


@pytest.fixture
def calls(monkeypatch):
    """Records the two process-wide settings instead of applying them."""
    seen = []
    monkeypatch.setattr(malloc, "keep_freed_memory", lambda: seen.append("malloc") or True)
    monkeypatch.setattr(xla_flags, "prefer_depth_first_schedule", lambda: seen.append("xla") or True)
    return seen


def test_main_changes_no_process_setting(calls, capsys):
    flags = os.environ.get("XLA_FLAGS")
    assert cli.main(["experiments"]) == 0
    assert "sequences:parity" in capsys.readouterr().out
    assert calls == [] and os.environ.get("XLA_FLAGS") == flags


@pytest.mark.parametrize("switch, applied", [(None, ["malloc", "xla"]), ("1", ["malloc", "xla"]), ("0", [])])
def test_run_applies_the_settings_behind_one_switch(calls, monkeypatch, capsys, switch, applied):
    if switch is None:
        monkeypatch.delenv("SEQJAX_TUNING", raising=False)
    else:
        monkeypatch.setenv("SEQJAX_TUNING", switch)
    with pytest.raises(SystemExit) as exit_:
        cli.run(["experiments"])
    assert exit_.value.code == 0 and calls == applied


def test_python_dash_m_is_the_executable():
    """`python -m seqjax` = `seqjax`: the schedule flag is set before the command runs."""
    code = (
        "import os, runpy, sys\n"
        "sys.argv = ['seqjax', 'experiments']\n"
        "try:\n    runpy.run_module('seqjax', run_name='__main__')\n"
        "except SystemExit as e:\n    print(e.code, os.environ.get('XLA_FLAGS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "SEQJAX_TUNING")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.splitlines()[-1] == f"0 {xla_flags.FLAG}=false", out.stderr


def test_errors_are_one_line_with_their_exit_code(capsys):
    assert cli.main(["train", "no_such_experiment"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqjax: error: ") and "no_such_experiment" in err[0]
    assert cli.main(["eval", "/nonexistent/run"]) == 2
    assert "not a run directory" in capsys.readouterr().err
