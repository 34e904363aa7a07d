"""The one training loop. Every experiment runs through :func:`train`.

Per step: one jit-compiled, buffer-donating ``train_step(state, batch)`` on a batch
sharded over the mesh's ``data`` axis. The host only touches device values at log,
eval and checkpoint points. Everything needed to continue exactly where a run
stopped — params, optimizer state, step, RNG, recurrent carry, epoch, position in
the epoch, metric accumulators, best-so-far, plateau and early-stopping counters —
is in the checkpoint, so a killed and resumed run ends bit-identical to an
uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import signal
import threading
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from seqjax import config as config_lib
from seqjax.errors import TrainingError
from seqjax.tasks import make_task
from seqjax.tasks.base import Task
from seqjax.training import mesh as mesh_lib
from seqjax.training import optim
from seqjax.training.checkpoint import Checkpoints, restore_average
from seqjax.training.logger import MetricLogger, progress_bar


@flax.struct.dataclass
class TrainState:
    """Everything on device that a step reads or writes."""

    step: jax.Array  # int32 []
    params: Any
    opt_state: Any
    rng: jax.Array  # uint32 [2]: base key; step s uses fold_in(rng, s)
    carry: Any  # recurrent state threaded across batches (stateful tasks), else None
    lr_scale: jax.Array  # float32 []: plateau multiplier on the learning rate
    sums: dict  # train metric sums since the last log point
    bad_step: jax.Array  # int32 []: first step with a non-finite loss, -1 if none


@dataclasses.dataclass
class Engine:
    """A task compiled for a mesh: the jitted steps and the optimizer."""

    cfg: ml_collections.ConfigDict
    task: Task
    mesh: jax.sharding.Mesh
    tx: optax.GradientTransformation
    steps_per_epoch: int
    total_steps: int
    train_step: Callable
    eval_step: Callable

    def init_state(self) -> TrainState:
        rng = jax.random.PRNGKey(self.cfg.seed)
        init_rng, step_rng = jax.random.split(rng)
        params = self.task.init_params(init_rng)
        batch_size = self.cfg.data.batch_size
        carry = self.task.initial_carry(batch_size)
        state = TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=self.tx.init(params),
            rng=step_rng,
            carry=carry,
            lr_scale=jnp.ones((), jnp.float32),
            sums=self.zero_sums(),
            bad_step=-jnp.ones((), jnp.int32),
        )
        state = mesh_lib.replicate(state, self.mesh)
        if carry is not None:
            state = state.replace(carry=mesh_lib.shard_batch(carry, self.mesh))
        return state

    def zero_sums(self) -> dict:
        batch = self.task.init_batch()
        shapes = jax.eval_shape(
            lambda p, b, c: self.task.loss(p, b, c, jax.random.PRNGKey(0), False)[1][0],
            jax.eval_shape(self.task.init_params, jax.random.PRNGKey(0)),
            batch,
            self.task.initial_carry(len(next(iter(batch.values())))),
        )
        return jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), shapes)

    def reset_carry(self, state: TrainState) -> TrainState:
        if state.carry is None:
            return state
        return state.replace(carry=mesh_lib.shard_batch(self.task.initial_carry(self.cfg.data.batch_size), self.mesh))

    def evaluate(self, params, split: str) -> dict[str, float]:
        """Task metrics of ``params`` on every example of ``split``."""
        sums, carry, tokens, t0 = None, None, 0, time.perf_counter()
        for batch in self.task.eval_batches(split):
            if carry is None and self.task.stateful:
                carry = mesh_lib.shard_batch(self.task.initial_carry(len(next(iter(batch.values())))), self.mesh)
            tokens += self.task.tokens(batch)
            metrics, carry = self.eval_step(params, mesh_lib.shard_batch(batch, self.mesh), carry)
            sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
        host = {k: float(v) for k, v in jax.device_get(sums).items()}
        out = self.task.summarize(host)
        out["tokens_per_s"] = tokens / max(time.perf_counter() - t0, 1e-9)
        return out


def build(cfg: ml_collections.ConfigDict, data_dir: str | None = None, task: Task | None = None) -> Engine:
    """Task + optimizer + jitted steps for ``cfg`` on all devices."""
    task = task or make_task(cfg, data_dir)
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(cfg.data.batch_size, mesh)
    spe = task.steps_per_epoch()
    total = optim.total_steps(cfg, spe)
    tx = optim.make_optimizer(cfg, spe, total)
    use_scale = cfg.schedule.name == "plateau"

    def train_step(state: TrainState, batch) -> TrainState:
        rng = jax.random.fold_in(state.rng, state.step)

        def objective(params):
            return task.loss(params, batch, state.carry, rng, True)

        (loss, (metrics, carry)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        if use_scale:
            updates = jax.tree.map(lambda u: u * state.lr_scale.astype(u.dtype), updates)
        bad = jnp.where((state.bad_step < 0) & ~jnp.isfinite(loss), state.step, state.bad_step)
        return state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            carry=carry,
            sums=jax.tree.map(jnp.add, state.sums, metrics),
            bad_step=bad,
        )

    def eval_step(params, batch, carry):
        _, (metrics, carry) = task.loss(params, batch, carry, jax.random.PRNGKey(0), False)
        return metrics, carry

    return Engine(
        cfg=cfg,
        task=task,
        mesh=mesh,
        tx=tx,
        steps_per_epoch=spe,
        total_steps=total,
        train_step=jax.jit(train_step, donate_argnums=0),
        eval_step=jax.jit(eval_step),
    )


# ----------------------------------------------------------------------------- loop


@dataclasses.dataclass
class Progress:
    """Host-side loop position, saved as JSON beside each checkpoint."""

    epoch: int = 0  # 0-based epoch being trained
    position: int = 0  # batches of that epoch already consumed
    epoch_sums: dict = dataclasses.field(default_factory=dict)  # train sums of this epoch so far
    tokens: int = 0  # training tokens seen
    wall_s: float = 0.0  # training wall time so far (all sessions)
    best: float | None = None
    best_step: int = -1
    best_metrics: dict = dataclasses.field(default_factory=dict)
    bad_evals: int = 0  # evaluations since the last improvement (plateau / early stopping)
    last_eval: dict = dataclasses.field(default_factory=dict)


def default_workdir(cfg: ml_collections.ConfigDict) -> pathlib.Path:
    return pathlib.Path("ckpt") / f"{cfg.experiment}-{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def _is_better(task: Task, metrics: dict, best: dict) -> bool:
    """Main metric first; on a tie (e.g. accuracy 1.0 twice) the lower loss wins."""
    if not best:
        return True
    sign = 1.0 if task.lower_is_better else -1.0
    new = (sign * metrics[task.main_metric], metrics["loss"])
    old = (sign * best[task.main_metric], best["loss"])
    return new < old


class _Interrupted(Exception):
    pass


class _StopRequests:
    """SIGTERM / SIGINT (Ctrl-C) during training only *request* a stop: the loop checks
    :attr:`signal` between steps, where the train state is whole (an exception raised in
    the middle of a step could leave the donated state deleted and nothing to save), then
    checkpoints and exits. A second signal stops at once. Installed only in the main thread
    (Python delivers signals there); elsewhere the previous handlers stay."""

    def __init__(self, echo):
        self.signal, self._echo, self._previous = None, echo, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        self._echo(f"{signal.Signals(signum).name}: stopping after this step with a checkpoint (again: stop now)")


def train(
    cfg: ml_collections.ConfigDict,
    workdir: str | pathlib.Path | None = None,
    data_dir: str | None = None,
    *,
    stop_after: int | None = None,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train (or resume) ``cfg`` in ``workdir``; returns the summary written to summary.json.

    ``stop_after``: leave the loop after that many steps of *this* call, checkpointing
    as a kill would find it — used by tests of resume equivalence.
    """
    workdir = pathlib.Path(workdir) if workdir else default_workdir(cfg)
    workdir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0
    engine = build(cfg, data_dir)
    task, spe, total = engine.task, engine.steps_per_epoch, engine.total_steps
    if is_main:
        (workdir / "config.json").write_text(config_lib.to_json(cfg) + "\n")
        task.save_assets(workdir)

    ckpt = Checkpoints(workdir, keep=cfg.train.keep_checkpoints)
    logger = MetricLogger(workdir, enabled=is_main)
    state = engine.init_state()
    prog = Progress()
    restored = ckpt.restore_latest(state)
    if restored is not None:
        state, meta = restored
        prog = Progress(**meta)
        logger.truncate_after(int(state.step))
        echo(f"resuming {workdir} from step {int(state.step)} (epoch {prog.epoch + 1}, batch {prog.position})")

    eval_every = cfg.train.eval_every or spe
    ckpt_every = cfg.train.checkpoint_every or eval_every
    log_every = max(1, cfg.train.log_every)
    step = int(state.step)
    calls_left = stop_after if stop_after is not None else math.inf

    def checkpoint(state: TrainState) -> None:
        if int(state.bad_step) >= 0:
            return  # never overwrite the last good checkpoint with a diverged state
        ckpt.save(int(state.step), state, dataclasses.asdict(prog))

    def flush_train_logs(state: TrainState, t_last: float, tokens_since: int) -> TrainState:
        sums = {k: float(v) for k, v in jax.device_get(state.sums).items()}
        if int(state.bad_step) >= 0:
            raise TrainingError(
                f"non-finite loss at step {int(state.bad_step) + 1}; stopped, the last good checkpoint in "
                f"{workdir}/checkpoints is kept (lower optim.lr or set optim.clip_norm)"
            )
        for k, v in sums.items():
            prog.epoch_sums[k] = prog.epoch_sums.get(k, 0.0) + v
        if sums.get("count", 1) > 0:
            m = task.summarize(sums)
            m["lr"] = optim.lr_at(cfg, int(state.step) - 1, spe, total, float(state.lr_scale))
            m["tokens_per_s"] = tokens_since / max(time.perf_counter() - t_last, 1e-9)
            logger.write(int(state.step), prog.epoch + 1, "train", m)
            bar.set_postfix(loss=f"{m['loss']:.4f}", tok_s=f"{m['tokens_per_s']:.0f}", refresh=False)
        return state.replace(sums=jax.tree.map(jnp.zeros_like, state.sums))

    def run_eval(state: TrainState) -> TrainState:
        m = engine.evaluate(state.params, "valid")
        prog.last_eval = m
        logger.write(int(state.step), prog.epoch + 1, "valid", m)
        if _is_better(task, m, prog.best_metrics):
            prog.best, prog.best_step, prog.best_metrics, prog.bad_evals = m[task.main_metric], int(state.step), m, 0
            ckpt.save_best(int(state.step), state.params, {"step": int(state.step), **m})
        else:
            prog.bad_evals += 1
            if cfg.schedule.name == "plateau" and prog.bad_evals % max(cfg.schedule.patience, 1) == 0:
                state = state.replace(lr_scale=state.lr_scale * cfg.schedule.factor)
        bar.write(f"step {int(state.step)} epoch {prog.epoch + 1}: valid " + _fmt(m))
        return state

    # SIGTERM (a scheduler killing the job) and Ctrl-C: checkpoint between steps, then exit.
    stop = _StopRequests(echo).__enter__()
    bar = progress_bar(total, step, cfg.train.progress)
    t_session = time.perf_counter()
    wall0 = prog.wall_s
    stopped_early = False
    try:
        t_last, tokens_since = time.perf_counter(), 0
        while step < total and not stopped_early:
            if prog.position >= spe:
                prog.epoch, prog.position, prog.epoch_sums = prog.epoch + 1, 0, {}
                state = engine.reset_carry(state)
            for batch in task.train_batches(prog.epoch, start=prog.position):
                if step >= total or calls_left <= 0:
                    break
                state = engine.train_step(state, mesh_lib.shard_batch(batch, engine.mesh))
                step += 1
                calls_left -= 1
                prog.position += 1
                n = task.tokens(batch)
                prog.tokens += n
                tokens_since += n
                bar.update(1)
                epoch_done = prog.position >= spe
                if step % log_every == 0 or epoch_done or step >= total:
                    state = flush_train_logs(state, t_last, tokens_since)
                    t_last, tokens_since = time.perf_counter(), 0
                if epoch_done and prog.epoch_sums.get("count", 1) > 0:
                    logger.write(step, prog.epoch + 1, "train_epoch", task.summarize(prog.epoch_sums))
                if step % eval_every == 0 or step >= total:
                    state = run_eval(state)
                    t_last = time.perf_counter()
                    patience = cfg.train.early_stop_patience
                    if patience and prog.bad_evals >= patience:
                        bar.write(f"early stopping at step {step}: no improvement in {patience} evaluations")
                        stopped_early = True
                if step % ckpt_every == 0 or step >= total or stopped_early:
                    prog.wall_s = wall0 + time.perf_counter() - t_session
                    checkpoint(state)
                if stopped_early:
                    break
                if stop.signal is not None:
                    raise KeyboardInterrupt
            if calls_left <= 0:
                raise _Interrupted
    except (KeyboardInterrupt, _Interrupted) as e:
        # The unlogged metric sums stay in the checkpointed state: resuming logs exactly
        # the rows an uninterrupted run would have.
        prog.wall_s = wall0 + time.perf_counter() - t_session
        if jax.tree.leaves(state) and all(not leaf.is_deleted() for leaf in jax.tree.leaves(state)
                                          if isinstance(leaf, jax.Array)):
            checkpoint(state)
            saved = f"checkpoint saved in {workdir}"
        else:  # a second signal inside a step: the last periodic checkpoint stands
            saved = f"the last checkpoint in {workdir} stands"
        ckpt.close()
        bar.close()
        logger.close()
        stop.__exit__()
        if isinstance(e, KeyboardInterrupt):
            echo(f"interrupted at step {step}; {saved}; run the same command to resume")
            raise KeyboardInterrupt from None
        return {"interrupted_at": step, "workdir": str(workdir)}
    except BaseException:
        ckpt.close()
        bar.close()
        logger.close()
        stop.__exit__()
        raise
    bar.close()
    stop.__exit__()
    prog.wall_s = wall0 + time.perf_counter() - t_session
    ckpt.wait()

    summary = finish(engine, state, prog, ckpt, workdir)
    ckpt.close()
    logger.write(step, prog.epoch + 1, "test", (summary.get("average") or summary["best"]).get("test", {}))
    logger.close()
    if is_main:
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def finish(engine: Engine, state: TrainState, prog: Progress, ckpt: Checkpoints, workdir: pathlib.Path) -> dict:
    """Final evaluation: valid + test of the final params and of the best params (and, with
    ``train.final_params=average``, of the mean of the best and the kept checkpoints, which
    then also feed the task's final report, e.g. translation BLEU)."""
    task = engine.task
    final_valid = prog.last_eval or engine.evaluate(state.params, "valid")
    final_test = engine.evaluate(state.params, "test")
    best_params = state.params
    if prog.best_step not in (-1, int(state.step)):
        got = ckpt.restore_best(state.params)
        if got is not None:
            best_params = mesh_lib.replicate(got[0], engine.mesh)
    best_test = final_test if best_params is state.params else engine.evaluate(best_params, "test")
    report_params, average = best_params, None
    if engine.cfg.train.get("final_params", "best") == "average":
        got = restore_average(ckpt, state.params)
        if got is not None:
            report_params = mesh_lib.replicate(got[0], engine.mesh)
            average = {"steps": got[1]["averaged_steps"], "valid": engine.evaluate(report_params, "valid"),
                       "test": engine.evaluate(report_params, "test")}
    summary = {
        "experiment": f"{engine.cfg.experiment}:{engine.cfg.preset}",
        "workdir": str(workdir),
        "steps": int(state.step),
        "epochs": prog.epoch + (1 if prog.position >= engine.steps_per_epoch else 0),
        "wall_s": round(prog.wall_s, 1),
        "train_tokens_per_s": round(prog.tokens / max(prog.wall_s, 1e-9), 1),
        "main_metric": task.main_metric,
        "final": {"valid": final_valid, "test": final_test},
        "best": {"step": prog.best_step, "valid": prog.best_metrics or final_valid, "test": best_test},
        "device": f"{jax.device_count()}x {jax.devices()[0].device_kind}",
    }
    if average is not None:
        summary["average"] = average
    report = dict(task.final_report(report_params))
    (summary.get("average") or summary["best"])["test"].update(report.pop("test", {}))
    summary.update(report)
    return summary


def _fmt(m: dict) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, (int, float)) and k != "tokens_per_s")
