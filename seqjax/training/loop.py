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

import contextlib
import dataclasses
import functools
import math
import os
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from seqjax.errors import SeqjaxError, TrainingError, UsageError
from seqjax.tasks import make_task
from seqjax.tasks.base import Task
from seqjax.training import extensions as ext_lib
from seqjax.training import mesh as mesh_lib
from seqjax.training import optim
from seqjax.training import rundir as rundir_lib
from seqjax.training.checkpoint import Checkpoints, restore_average
from seqjax.training.hooks import CHECKPOINT, EPOCH_ROW, EVALUATE, LOG, Hook, HookInfo, Hooks
from seqjax.training.logger import MetricLogger, progress_bar


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything on device that a step reads or writes (a pytree)."""

    step: jax.Array  # int32 []
    params: Any
    opt_state: Any
    rng: jax.Array  # uint32 [2]: base key; step s uses fold_in(rng, s)
    carry: Any  # recurrent state threaded across batches (stateful tasks), else None
    lr_scale: jax.Array  # float32 []: plateau multiplier on the learning rate
    sums: dict  # train metric sums since the last log point
    bad_step: jax.Array  # int32 []: first step with a non-finite loss, -1 if none
    # name -> state of each active train-state extension (seqjax/training/extensions); left
    # out of the pytree when empty, so a run without extensions saves (and resumes from) the
    # same checkpoint tree as before extensions existed
    ext: dict = dataclasses.field(default_factory=dict)

    def replace(self, **changes) -> TrainState:
        return dataclasses.replace(self, **changes)


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(TrainState))


def _flatten_state(state: TrainState):
    names = _STATE_FIELDS if state.ext else _STATE_FIELDS[:-1]
    return [(jax.tree_util.GetAttrKey(n), getattr(state, n)) for n in names], names


def _unflatten_state(names, children) -> TrainState:
    return TrainState(**dict(zip(names, children)))


jax.tree_util.register_pytree_with_keys(
    TrainState, _flatten_state, _unflatten_state,
    flatten_func=lambda s: ([getattr(s, n) for n in (_STATE_FIELDS if s.ext else _STATE_FIELDS[:-1])],
                            _STATE_FIELDS if s.ext else _STATE_FIELDS[:-1]))


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
    extensions: list = dataclasses.field(default_factory=list)  # the active ext_lib.Extension objects

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
            ext={e.name: e.init(params) for e in self.extensions},
        )
        state = mesh_lib.replicate(state.replace(carry=None), self.mesh)
        return state.replace(carry=None if carry is None else mesh_lib.shard_batch(carry, self.mesh))

    @functools.cached_property
    def _metric_shapes(self) -> dict:
        batch = self.task.init_batch()
        return jax.eval_shape(
            lambda p, b, c: self.task.loss(p, b, c, jax.random.PRNGKey(0), False)[1][0],
            jax.eval_shape(self.task.init_params, jax.random.PRNGKey(0)),
            batch,
            self.task.initial_carry(len(next(iter(batch.values())))),
        )

    def zero_sums(self) -> dict:
        """float32 zeros shaped like the task's metric sums."""
        return jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), self._metric_shapes)

    def eval_params(self, state: TrainState):
        """The params that evaluation, the best checkpoint and the final report score: the
        trained ones, or what an extension puts in their place (e.g. their EMA)."""
        params = state.params
        for e in self.extensions:
            params = e.eval_params(state.ext[e.name], params)
        return params

    def reset_carry(self, state: TrainState) -> TrainState:
        if state.carry is None:
            return state
        carry = self.task.initial_carry(self.cfg.data.batch_size)
        return state.replace(carry=mesh_lib.shard_batch(carry, self.mesh))

    def evaluate(self, params, split: str) -> dict[str, float]:
        """Task metrics of ``params`` on every example of ``split``, on any device count:
        a batch whose rows do not divide it is padded with rows of weight 0 (the carry of a
        stateful task has the padded rows too), so the metrics equal one device's. The sums
        are accumulated inside the one jitted step: a multi-process run then launches the
        same single program on every process, batch after batch (eager adds between the
        steps could interleave differently on two processes' devices and deadlock gloo)."""
        sums = mesh_lib.replicate(self.zero_sums(), self.mesh)
        carry, tokens, t0 = None, 0, time.perf_counter()
        # tokens_per_s leaves out compilation: a batch of a shape not seen before is waited
        # for and neither its time nor its tokens count (one extra timed run of the last
        # batch when every batch compiled)
        seen, compiling, last = self.__dict__.setdefault("_eval_shapes", set()), 0.0, None
        for batch in self.task.eval_batches(split):
            n = self.task.tokens(batch)
            batch = mesh_lib.pad_rows(batch, self.mesh.devices.size, self.task.weight_key)
            if carry is None and self.task.stateful:
                rows = len(batch[self.task.weight_key])
                carry = mesh_lib.shard_batch(self.task.initial_carry(rows), self.mesh)
            batch = mesh_lib.shard_batch(batch, self.mesh)
            shapes, last = tuple(x.shape for x in jax.tree.leaves(batch)), (batch, carry, n)
            t = time.perf_counter()
            sums, carry = mesh_lib.in_lockstep(self.eval_step(params, batch, carry, sums))
            if shapes in seen:
                tokens += n
            else:
                seen.add(shapes)
                jax.block_until_ready(sums)
                compiling += time.perf_counter() - t
        if not tokens and last is not None:
            t0, compiling, tokens = time.perf_counter(), 0.0, last[2]
            jax.block_until_ready(self.eval_step(params, last[0], last[1], sums))
        host = {k: float(v) for k, v in jax.device_get(sums).items()}
        out = self.task.summarize(host)
        out["tokens_per_s"] = tokens / max(time.perf_counter() - t0 - compiling, 1e-9)
        return out


def make_engine(cfg: ml_collections.ConfigDict, data_dir: str | None = None,
                task: Task | None = None) -> Engine:
    """Task + optimizer + jitted steps for ``cfg`` on all devices."""
    task = task or make_task(cfg, data_dir)
    task.model()  # the builder's checks of model.* (one line, exit 2) before the run begins
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(cfg.data.batch_size, mesh)
    for key in ("eval_batch_size", "test_batch_size"):  # evaluation pads to the devices; 0 = the default
        if key in cfg.data and (not isinstance(cfg.data[key], int) or cfg.data[key] < 0):
            raise UsageError(f"data.{key}={cfg.data[key]!r} must be an integer >= 0 (0: the default)")
    spe = task.steps_per_epoch()
    if spe < 1:
        raise UsageError(f"data.batch_size={cfg.data.batch_size}: larger than the training data holds (an "
                         "epoch has no full batch); lower data.batch_size")
    total = optim.total_steps(cfg, spe)
    tx = optim.make_optimizer(cfg, spe, total)
    use_scale = cfg.schedule.name == "plateau"
    extensions = ext_lib.active(cfg, task)
    loss_fn = task.loss  # (params, batch, carry, rng, train) -> (objective, (metric sums, carry))
    for e in extensions:
        loss_fn = e.wrap_loss(loss_fn)

    def grad_fn(params, batch, carry, rng):
        return jax.value_and_grad(lambda p: loss_fn(p, batch, carry, rng, True), has_aux=True)(params)

    for e in extensions:
        grad_fn = e.wrap_grad(grad_fn)

    def train_step(state: TrainState, batch) -> TrainState:
        rng = jax.random.fold_in(state.rng, state.step)
        (loss, (metrics, carry)), grads = grad_fn(state.params, batch, state.carry, rng)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        if use_scale:
            updates = jax.tree.map(lambda u: u * state.lr_scale.astype(u.dtype), updates)
        bad = jnp.where((state.bad_step < 0) & ~jnp.isfinite(loss), state.step, state.bad_step)
        step = state.step + 1  # traced first, as before extensions: the same program without them
        params = optax.apply_updates(state.params, updates)
        return state.replace(
            step=step,
            params=params,
            opt_state=opt_state,
            carry=carry,
            sums=jax.tree.map(jnp.add, state.sums, metrics),
            bad_step=bad,
            ext={e.name: e.update(state.ext[e.name], params, state.step) for e in extensions},
        )

    def eval_step(params, batch, carry, sums=None):
        """``(metrics, carry)`` of one batch; with ``sums``, ``(sums + metrics, carry)``."""
        _, (metrics, carry) = task.loss(params, batch, carry, jax.random.PRNGKey(0), False)
        return (metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)), carry

    return Engine(
        cfg=cfg,
        task=task,
        mesh=mesh,
        tx=tx,
        steps_per_epoch=spe,
        total_steps=total,
        train_step=jax.jit(train_step, donate_argnums=0),
        eval_step=jax.jit(eval_step),
        extensions=extensions,
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
    # the step whose step hooks (log, evaluation, best params, checkpoint) a stop cut short:
    # saved with the state as it was before them, and run again on resume (-1: none)
    unfinished_step: int = -1

    def copy(self) -> Progress:
        """A copy whose dicts the hooks may update without touching this one."""
        return dataclasses.replace(self, epoch_sums=dict(self.epoch_sums),
                                   best_metrics=dict(self.best_metrics), last_eval=dict(self.last_eval))


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
    checkpoints and exits. A second signal stops at once, except inside :meth:`deferred`
    (a step's bookkeeping), which it lets finish first. Installed only in the main thread
    (Python delivers signals there); elsewhere the previous handlers stay."""

    def __init__(self, echo):
        self.signal, self._echo, self._previous = None, echo, {}
        self._defer, self._kill = False, False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    @contextlib.contextmanager
    def deferred(self):
        """A block that a second signal does not cut: it stops right after the block."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False
        if self._kill:
            raise KeyboardInterrupt

    def _handle(self, signum, frame):
        if self.signal is not None:
            if self._defer:
                self._kill = True
                return
            raise KeyboardInterrupt
        self.signal = signum
        name = signal.Signals(signum).name
        self._echo(f"{name}: stopping after this step with a checkpoint (again: stop now)")


def prepare_workdir(
    cfg: ml_collections.ConfigDict, workdir: str | pathlib.Path | None, *, move_aside: bool = False,
    echo: Callable[[str], None] = print,
) -> rundir_lib.RunDir:
    """The run directory claimed before anything is built (seqjax/training/rundir.py):
    created if needed, writable, locked, and a run recorded there compared with ``cfg``
    (``move_aside``: a different one is moved into ``previous-<time>/``). Refusals are one
    line, exit 2; :meth:`~seqjax.training.rundir.RunDir.commit` once the task is built."""
    path = pathlib.Path(workdir) if workdir else default_workdir(cfg)
    return rundir_lib.RunDir(path, cfg, move_aside=move_aside, echo=echo).prepare()


def train(
    cfg: ml_collections.ConfigDict,
    workdir: str | pathlib.Path | None = None,
    data_dir: str | None = None,
    *,
    stop_after: int | None = None,
    echo: Callable[[str], None] = print,
    hooks: Iterable[Hook | Callable] = (),
    move_aside: bool = False,
) -> dict:
    """Train (or resume) ``cfg`` in ``workdir``; returns the summary written to summary.json.

    ``stop_after``: leave the loop after that many steps of *this* call, checkpointing
    as a kill would find it — used by tests of resume equivalence.
    ``hooks``: :class:`~seqjax.training.hooks.Hook` objects or callables ``fn(info)`` (run
    after every step), added after the built-in hooks and those of ``train.hooks``.
    ``move_aside``: a run of another config recorded in ``workdir`` is moved into
    ``workdir/previous-<time>/`` instead of refused (``seqjax train --move-aside``).
    """
    rundir = prepare_workdir(cfg, workdir, move_aside=move_aside, echo=echo)
    with rundir_lib.starting(rundir):  # a start that fails here leaves nothing behind
        engine = make_engine(cfg, data_dir)
        rundir.commit()
    workdir, session, done, outcome = rundir.path, None, False, "failed"
    try:
        session = _Session(engine, workdir, echo)
        session.rundir = rundir
        rundir.note(start_step=session.step)
        for h in hooks:
            session.hooks.add(h)
        with _StopRequests(echo) as stop:  # SIGTERM / Ctrl-C: checkpoint between steps, then exit
            stop = mesh_lib.agreed_stop(stop, lambda: session.step, echo)  # every process stops together
            try:
                session.run(stop, math.inf if stop_after is None else stop_after)
            except (KeyboardInterrupt, _Interrupted) as e:
                outcome = f"interrupted at step {session.step}"
                if getattr(stop, "alone", False):  # a second signal to one process: the others cannot save
                    saved = f"the last checkpoint in {workdir} stands"
                else:
                    saved = session.save_interrupted()
                if isinstance(e, KeyboardInterrupt):
                    echo(f"interrupted at step {session.step}; {saved}; run the same command to resume")
                    raise KeyboardInterrupt from None
                done = True
                return {"interrupted_at": session.step, "workdir": str(workdir)}
        summary, done, outcome = session.evaluate_and_summarize(), True, "finished"
        return summary
    finally:
        try:
            if session is not None:
                session.close(quiet=not done)
        finally:
            rundir.close(steps=None if session is None else session.step, outcome=outcome)


class _Session:
    """One call of :func:`train`: the run directory's writers, the train state, the loop
    position, and the parts of the loop (step, log, evaluate, checkpoint)."""

    def __init__(self, engine: Engine, workdir: pathlib.Path, echo: Callable[[str], None]):
        cfg = self.cfg = engine.cfg
        self.engine, self.task, self.workdir, self.echo = engine, engine.task, workdir, echo
        self.is_main = jax.process_index() == 0
        self.rundir: rundir_lib.RunDir | None = None  # train() sets it: summary.json and provenance
        if self.is_main:  # config.json: written by RunDir.commit
            self.task.save_assets(workdir)
        self.ckpt = Checkpoints(workdir, keep=cfg.train.keep_checkpoints)
        self.logger = MetricLogger(workdir, enabled=self.is_main, warn=lambda m: echo(f"warning: {m}"))
        self.state, self.prog = engine.init_state(), Progress()
        restored = self.ckpt.restore_latest(self.state)
        if restored is None:
            self.logger.truncate_after(0)  # rows of a start that saved no checkpoint
        else:
            self.state, meta = restored
            self.prog = Progress(**meta)
            # an unfinished step's rows are written again when its hooks run again
            self.logger.truncate_after(int(self.state.step) - (self.prog.unfinished_step >= 0))
            echo(f"resuming {workdir} from step {int(self.state.step)} "
                 f"(epoch {self.prog.epoch + 1}, batch {self.prog.position})")
        self.step = int(self.state.step)
        self.eval_every = cfg.train.eval_every or engine.steps_per_epoch
        self.ckpt_every = cfg.train.checkpoint_every or self.eval_every
        self.log_every = max(1, cfg.train.log_every)
        self.bar = progress_bar(engine.total_steps, self.step, cfg.train.progress)
        self.t_session, self.wall0 = time.perf_counter(), self.prog.wall_s
        self.t_last, self.tokens_since = time.perf_counter(), 0
        self.hooks, self.stop_reason, self._before_hooks = self.builtin_hooks(), None, None

    # -- the loop ----------------------------------------------------------------------
    def run(self, stop: _StopRequests, calls_left: float) -> None:
        """Train to ``total_steps`` or early stopping; raises :class:`_Interrupted` after
        ``calls_left`` steps and KeyboardInterrupt after a stop request."""
        spe, total, prog = self.engine.steps_per_epoch, self.engine.total_steps, self.prog
        self.stop = stop
        if prog.unfinished_step == self.step >= 0 and self.after_step():  # hooks a stop cut short
            return
        while self.step < total:
            if prog.position >= spe:
                prog.epoch, prog.position, prog.epoch_sums = prog.epoch + 1, 0, {}
                self.state = self.engine.reset_carry(self.state)
            for batch in self.task.train_batches(prog.epoch, start=prog.position):
                if self.step >= total or calls_left <= 0:
                    break
                self.train_step(batch)
                calls_left -= 1
                if self.after_step():
                    return
                if stop.signal is not None:
                    raise KeyboardInterrupt
            if calls_left <= 0:
                raise _Interrupted

    def train_step(self, batch) -> None:
        batch_on_mesh = mesh_lib.shard_batch(batch, self.engine.mesh)
        n = self.task.tokens(batch)
        with self.stop.deferred():  # the state and the counters move together
            self.state = mesh_lib.in_lockstep(self.engine.train_step(self.state, batch_on_mesh))
            self.step += 1
            self.prog.position += 1
            self.prog.tokens += n
            self.tokens_since += n
        self.bar.update(1)

    def builtin_hooks(self) -> Hooks:
        """The loop's own step hooks (log, epoch row, evaluate, checkpoint) and eval hooks
        (keep the best params, plateau schedule, early stopping), then ``train.hooks``, then
        the active extensions' hooks."""
        cfg, total = self.cfg, self.engine.total_steps
        hooks = Hooks()
        hooks.add(lambda i: self.flush_train_logs(), name="log", order=LOG,
                  when=lambda i: self.step % self.log_every == 0 or i.epoch_done or self.step >= total)
        hooks.add(lambda i: self.log_epoch(), name="epoch_row", order=EPOCH_ROW,
                  when=lambda i: i.epoch_done and self.prog.epoch_sums.get("count", 1) > 0)
        hooks.add(lambda i: self.run_eval(), name="evaluate", order=EVALUATE,
                  when=lambda i: self.step % self.eval_every == 0 or self.step >= total)
        hooks.add(lambda i: self.checkpoint(), name="checkpoint", order=CHECKPOINT,
                  when=lambda i: self.step % self.ckpt_every == 0 or self.step >= total or self.stop_reason)
        hooks.add(self.keep_best, on="eval", name="keep_best", order=100)
        if cfg.schedule.name == "plateau":
            hooks.add(self.plateau, on="eval", name="plateau", order=200)
        if cfg.train.early_stop_patience:
            hooks.add(self.early_stop, on="eval", name="early_stop", order=300)
        for path in cfg.train.get("hooks", None) or ():
            hooks.add(path)
        for e in self.engine.extensions:
            for h in e.hooks():
                hooks.add(h)
        return hooks

    def after_step(self) -> bool:
        """Run the step hooks that are due; True when one stopped the run (early stopping).

        A stop (a second signal) inside them saves the state as it was before them, marked
        unfinished, so a resumed run runs them again: no evaluation or best update is lost."""
        self.prog.unfinished_step = -1
        self._before_hooks = (self.state, self.prog.copy())
        self.hooks.run("step", HookInfo(self, "step"))
        self._before_hooks = None
        if self.stop_reason:
            self.bar.write(self.stop_reason)
        return self.stop_reason is not None

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def log_epoch(self) -> None:
        prog = self.prog
        self.logger.write(self.step, prog.epoch + 1, "train_epoch", self.task.summarize(prog.epoch_sums))

    def flush_train_logs(self) -> None:
        state, prog = self.state, self.prog
        sums = {k: float(v) for k, v in jax.device_get(state.sums).items()}
        if int(state.bad_step) >= 0:
            raise TrainingError(
                f"non-finite loss at step {int(state.bad_step) + 1}; stopped, the last good checkpoint in "
                f"{self.workdir}/checkpoints is kept (lower optim.lr or set optim.clip_norm)"
            )
        for k, v in sums.items():
            prog.epoch_sums[k] = prog.epoch_sums.get(k, 0.0) + v
        if sums.get("count", 1) > 0:
            m = self.task.summarize(sums)
            e = self.engine
            lr_scale = float(state.lr_scale)
            m["lr"] = optim.lr_at(self.cfg, self.step - 1, e.steps_per_epoch, e.total_steps, lr_scale)
            m["tokens_per_s"] = self.tokens_since / max(time.perf_counter() - self.t_last, 1e-9)
            self.logger.write(self.step, prog.epoch + 1, "train", m)
            self.bar.set_postfix(loss=f"{m['loss']:.4f}", tok_s=f"{m['tokens_per_s']:.0f}", refresh=False)
        self.state = state.replace(sums=jax.tree.map(jnp.zeros_like, state.sums))
        self.t_last, self.tokens_since = time.perf_counter(), 0

    def run_eval(self) -> None:
        """The ``evaluate`` hook: valid metrics of the params, their row, then the eval hooks."""
        prog = self.prog
        m = self.engine.evaluate(self.engine.eval_params(self.state), "valid")
        prog.last_eval = m
        self.logger.write(self.step, prog.epoch + 1, "valid", m)
        self.bar.write(f"step {self.step} epoch {prog.epoch + 1}: valid " + _fmt(m))
        self.hooks.run("eval", HookInfo(self, "eval", m))
        self.t_last = time.perf_counter()

    def keep_best(self, info: HookInfo) -> None:
        """Eval hook: a better evaluation becomes the best (its params saved in ``best/``)."""
        task, prog, m = self.task, self.prog, info.metrics
        if _is_better(task, m, prog.best_metrics):
            prog.best, prog.best_step, prog.best_metrics = m[task.main_metric], self.step, m
            prog.bad_evals = 0
            self.ckpt.save_best(self.step, self.engine.eval_params(self.state), {"step": self.step, **m})
        else:
            prog.bad_evals += 1

    def scored_state(self) -> TrainState:
        """The state with the params evaluation scores (:meth:`Engine.eval_params`)."""
        return self.state.replace(params=self.engine.eval_params(self.state))

    def plateau(self, info: HookInfo) -> None:
        """Eval hook of ``schedule.name=plateau``: every ``schedule.patience`` evaluations
        without improvement multiply the learning rate by ``schedule.factor``."""
        s, bad = self.cfg.schedule, self.prog.bad_evals
        if bad and bad % max(s.patience, 1) == 0:
            self.state = self.state.replace(lr_scale=self.state.lr_scale * s.factor)

    def early_stop(self, info: HookInfo) -> None:
        """Eval hook of ``train.early_stop_patience``: stop after that many evaluations
        without improvement."""
        patience = self.cfg.train.early_stop_patience
        if self.prog.bad_evals >= patience:
            self.request_stop(f"early stopping at step {self.step}: no improvement in {patience} evaluations")

    def checkpoint(self) -> None:
        """The ``checkpoint`` hook: save the state, then fire the checkpoint hooks."""
        if self.save(self.state, self.prog):
            self.hooks.run("checkpoint", HookInfo(self, "checkpoint"))

    def save(self, state: TrainState, prog: Progress) -> bool:
        """Hand ``state`` and ``prog`` to the checkpoint writer; False for a diverged state."""
        prog.wall_s = self.wall0 + time.perf_counter() - self.t_session
        if int(state.bad_step) >= 0:
            return False  # never overwrite the last good checkpoint with a diverged state
        self.ckpt.save(self.step, state, dataclasses.asdict(prog))
        return True

    # -- the ways out --------------------------------------------------------------------
    def save_interrupted(self) -> str:
        """Checkpoint the state a stop request or ``stop_after`` left (the unlogged metric
        sums stay in it: resuming logs exactly the rows an uninterrupted run would have).
        Stopped inside the step hooks, it saves the state from before them, marked
        unfinished (see :meth:`after_step`)."""
        state, prog = self.state, self.prog
        if self._before_hooks is not None:
            state, prog = self._before_hooks
            prog.unfinished_step = self.step
        leaves = [x for x in jax.tree.leaves(state) if isinstance(x, jax.Array)]
        if leaves and not any(x.is_deleted() for x in leaves):
            self.save(state, prog)
            self.ckpt.wait()
            return f"checkpoint saved in {self.workdir}"
        return f"the last checkpoint in {self.workdir} stands"  # a second signal inside a step

    def evaluate_and_summarize(self) -> dict:
        """Final evaluations, the test row of metrics.jsonl and summary.json."""
        self.bar.close()
        self.prog.wall_s = self.wall0 + time.perf_counter() - self.t_session
        self.ckpt.wait()
        summary: dict = {}
        try:
            final_evaluation(self.engine, self.scored_state(), self.prog, self.ckpt, self.workdir,
                             into=summary)
        except Exception as e:  # noqa: BLE001 — what was measured lands, then one line
            raise self.failed_evaluation(summary, e) from (e if os.environ.get("SEQJAX_DEBUG") else None)
        test = (summary.get("average") or summary["best"]).get("test", {})
        self.logger.write(self.step, self.prog.epoch + 1, "test", test)
        self.write_summary(summary, outcome="finished")
        self.hooks.run("end", HookInfo(self, "end", summary))
        return summary

    def write_summary(self, summary: dict, **fields) -> None:
        """summary.json (atomic, with the run's provenance; process 0)."""
        if self.rundir is not None:
            self.rundir.write_summary(summary, steps=self.step, **fields)
        elif self.is_main:
            rundir_lib.atomic_write_json(self.workdir / rundir_lib.SUMMARY, summary)

    def failed_evaluation(self, summary: dict, error: Exception) -> Exception:
        """A final evaluation that failed: summary.json still gets what was measured and the
        error; the trained model stays in the checkpoints. Returns the one-line error to
        raise (a SeqjaxError keeps its exit code, anything else exits 1)."""
        line = (str(error).strip().splitlines() or [""])[0][:200]
        summary["error"] = f"the final evaluation failed: {type(error).__name__}: {line}"
        kept = (f"the trained model is kept in {self.workdir}/checkpoints and what was measured in "
                f"{self.workdir}/summary.json")
        try:
            self.write_summary(summary, outcome="failed in the final evaluation")
        except SeqjaxError as e:
            kept = f"the trained model is kept in {self.workdir}/checkpoints ({e})"
        if isinstance(error, SeqjaxError):
            with contextlib.suppress(TypeError):
                return type(error)(f"{error}; {kept}")
        return TrainingError(f"the final evaluation failed ({type(error).__name__}: {line}); {kept}")

    def close(self, quiet: bool = False) -> None:
        """Wait for checkpoint writes and close every writer (the one exit path); ``quiet``
        while another error is on its way out, so that error is the one reported."""
        self.bar.close()
        self.logger.close()
        try:
            self.ckpt.close()
        except Exception:
            if not quiet:
                raise


def final_evaluation(
    engine: Engine, state: TrainState, prog: Progress, ckpt: Checkpoints, workdir: pathlib.Path,
    into: dict | None = None,
) -> dict:
    """Final evaluation: valid + test of the final params and of the best params (and, with
    ``train.final_params=average``, of the mean of the best and the kept checkpoints, which
    then also feed the task's final report, e.g. translation BLEU). The summary is filled
    into ``into`` as the measurements come, so what was measured stays there if one fails."""
    task = engine.task
    summary = into if into is not None else {}
    summary.update({
        "experiment": f"{engine.cfg.experiment}:{engine.cfg.preset}",
        "workdir": str(workdir),
        "steps": int(state.step),
        "epochs": prog.epoch + (1 if prog.position >= engine.steps_per_epoch else 0),
        "wall_s": round(prog.wall_s, 1),
        "train_tokens_per_s": round(prog.tokens / max(prog.wall_s, 1e-9), 1),
        "main_metric": task.main_metric,
        "device": f"{jax.device_count()}x {jax.devices()[0].device_kind}",
    })
    final_valid = prog.last_eval or engine.evaluate(state.params, "valid")
    summary["final"] = {"valid": final_valid}
    summary["best"] = {"step": prog.best_step, "valid": prog.best_metrics or final_valid}
    final_test = summary["final"]["test"] = engine.evaluate(state.params, "test")
    best_params = state.params
    if prog.best_step not in (-1, int(state.step)):
        got = ckpt.restore_best(state.params)
        if got is not None:
            best_params = mesh_lib.replicate(got[0], engine.mesh)
    best_test = final_test if best_params is state.params else engine.evaluate(best_params, "test")
    summary["best"]["test"] = best_test
    report_params = best_params
    if engine.cfg.train.get("final_params", "best") == "average":
        got = restore_average(ckpt, state.params)
        if got is not None:
            report_params = mesh_lib.replicate(got[0], engine.mesh)
            summary["average"] = {"steps": got[1]["averaged_steps"]}
            summary["average"]["valid"] = engine.evaluate(report_params, "valid")
            summary["average"]["test"] = engine.evaluate(report_params, "test")
    report = dict(task.final_report(report_params))
    (summary.get("average") or summary["best"])["test"].update(report.pop("test", {}))
    summary.update(report)
    return summary


def _fmt(m: dict) -> str:
    shown = {k: v for k, v in m.items() if isinstance(v, (int, float)) and k != "tokens_per_s"}
    return " ".join(f"{k}={v:.4g}" for k, v in shown.items())
