"""seqjax.runtime.xla_flags: the executable's XLA:CPU schedule flag, and the user's choice wins."""

import os

import pytest

from seqjax.runtime import xla_flags

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


@pytest.mark.parametrize(
    "before, after, changed",
    [
        (None, f"{FLAG}=false", True),
        (
            "--xla_force_host_platform_device_count=4",
            f"--xla_force_host_platform_device_count=4 {FLAG}=false",
            True,
        ),
        (f"{FLAG}=true", f"{FLAG}=true", False),  # the user's choice wins
    ],
)
def test_adds_the_flag_unless_the_user_chose(monkeypatch, before, after, changed):
    if before is None:
        monkeypatch.delenv("XLA_FLAGS", raising=False)
    else:
        monkeypatch.setenv("XLA_FLAGS", before)
    assert xla_flags.prefer_depth_first_schedule() is changed
    assert os.environ["XLA_FLAGS"] == after
