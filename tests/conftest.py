"""Shared test setup: data from $SEQJAX_DATA (CI: ../shared/data), one JAX compilation
cache for the whole run, helpers to run the CLI."""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
if "SEQJAX_DATA" not in os.environ and SHARED.is_dir():
    os.environ["SEQJAX_DATA"] = str(SHARED)

# Most of the suite's time is XLA compiling the same few tiny programs again: in every test
# that builds an engine, in both xdist workers and in every `python -m seqjax` subprocess.
# JAX's persistent cache (keyed by the program, its compile options and the backend) is
# shared by all of them through the environment, which the workers and subprocesses inherit;
# it starts empty in each run, so no result depends on an earlier run.
_OWN_CACHE = None  # the cache directory this process made (the xdist controller), removed at the end
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="seqjax-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


# The suite checks numbers (to tolerances) and behaviour, not the speed of the CPU code XLA
# emits, and most of its time is compiling small programs: at LLVM's lowest optimisation
# level they compile faster (34 % less time on the compile-bound recurrence and loss tests).
# Workers and subprocesses inherit the flag through the environment; a level already in
# XLA_FLAGS wins (``XLA_FLAGS=--xla_backend_optimization_level=3 make test`` tests the
# optimised code). The one test pinned to numbers taken at XLA's default level runs in a
# process of its own without the flag (tests/test_sources.py).
_OPT_LEVEL = "--xla_backend_optimization_level"
if _OPT_LEVEL not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_OPT_LEVEL}=0".strip()


def data_dir_or_skip(name: str) -> pathlib.Path:
    root = pathlib.Path(os.environ.get("SEQJAX_DATA", "data"))
    if not (root / name).is_dir():
        pytest.skip(f"dataset {name} not under SEQJAX_DATA={root}")
    return root


@pytest.fixture
def run_cli(capsys):
    """Run ``seqjax ARGS...`` in-process: returns (exit code, stdout, stderr)."""
    from seqjax.app.cli import main

    def run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` first (the rest fill the workers' last minutes evenly, so
    neither waits on the other at the end); ``@pytest.mark.gpu`` tests run only where JAX's
    default backend is a GPU."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order within
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import jax

    if jax.default_backend() != "gpu":
        skip = pytest.mark.skip(reason="needs a GPU (JAX's default backend is not gpu)")
        for item in gpu_items:
            item.add_marker(skip)


def pytest_unconfigure(config):
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
