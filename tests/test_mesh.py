"""The mesh layer: rows of a global batch per process, zero-weight padding for evaluation,
batch-size checks, and the jax.distributed arguments read from the environment."""
import jax
import numpy as np
import pytest

from seqjax.errors import UsageError
from seqjax.training import mesh as mesh_lib


def test_pad_rows_repeats_the_last_row_with_weight_zero():
    batch = {"x": np.arange(6).reshape(3, 2), "weight": np.ones((3, 2), np.float32)}
    out = mesh_lib.pad_rows(batch, 4, "weight")
    np.testing.assert_array_equal(out["x"], [[0, 1], [2, 3], [4, 5], [4, 5]])
    np.testing.assert_array_equal(out["weight"], [[1, 1], [1, 1], [1, 1], [0, 0]])
    assert batch["weight"].sum() == 6  # the input is not modified
    assert mesh_lib.pad_rows(batch, 3, "weight")["x"].shape == (3, 2)
    assert mesh_lib.pad_rows({"w": np.ones(1)}, 3, "w")["w"].tolist() == [1, 0, 0]


def test_one_process_holds_every_row_and_shard_batch_round_trips():
    mesh = mesh_lib.make_mesh()
    n = mesh.devices.size
    assert mesh_lib.process_rows(mesh, 4 * n) == slice(0, 4 * n)
    x = np.arange(8 * n, dtype=np.float32).reshape(4 * n, 2)
    out = mesh_lib.shard_batch({"x": x}, mesh)["x"]
    assert out.sharding.spec == jax.sharding.PartitionSpec("data")
    np.testing.assert_array_equal(np.asarray(out), x)


def test_check_batch_size_messages():
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(mesh.devices.size * 2, mesh)
    with pytest.raises(UsageError, match=r"data.batch_size=0 must be a positive integer"):
        mesh_lib.check_batch_size(0, mesh)


def test_distributed_kwargs_from_the_environment():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert mesh_lib.distributed_kwargs(env) == {
        "coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3,
        "initialization_timeout": 120, "heartbeat_timeout_seconds": 30}
    # SLURM / TPU / Open MPI: nothing given, JAX detects the rest
    assert mesh_lib.distributed_kwargs({"SEQJAX_INIT_TIMEOUT_S": "7"}) == {
        "initialization_timeout": 7, "heartbeat_timeout_seconds": 30}
    with pytest.raises(UsageError, match=r"JAX_NUM_PROCESSES='two' must be an integer"):
        mesh_lib.distributed_kwargs({"JAX_NUM_PROCESSES": "two"})
    assert mesh_lib.initialize_distributed(False, {}) is False
