"""Shared test setup: data from $SEQJAX_DATA (CI: ../shared/data), helpers to run the CLI."""
from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
if "SEQJAX_DATA" not in os.environ and SHARED.is_dir():
    os.environ["SEQJAX_DATA"] = str(SHARED)


def data_dir_or_skip(name: str) -> pathlib.Path:
    root = pathlib.Path(os.environ.get("SEQJAX_DATA", "data"))
    if not (root / name).is_dir():
        pytest.skip(f"dataset {name} not under SEQJAX_DATA={root}")
    return root


@pytest.fixture
def run_cli(capsys):
    """Run ``seqjax ARGS...`` in-process: returns (exit code, stdout, stderr)."""
    from seqjax.cli import main

    def run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.gpu`` tests run only where JAX's default backend is a GPU."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import jax

    if jax.default_backend() != "gpu":
        skip = pytest.mark.skip(reason="needs a GPU (JAX's default backend is not gpu)")
        for item in gpu_items:
            item.add_marker(skip)
