"""Optimizers and learning-rate schedules from a config, all optax.

The learning rate is an optax schedule of the step count, except ``plateau``, whose
reductions depend on validation results: the loop keeps a multiplier ``lr_scale`` in the
train state and the step scales the updates by it (for every optimizer here an update
is linear in the learning rate, so this *is* a learning-rate change).
"""

from __future__ import annotations

import ml_collections
import optax

from seqjax.errors import UsageError


def make_schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """``cfg.schedule`` -> ``step -> learning rate``.

    - ``constant``: ``lr``.
    - ``step`` (Zaremba et al.): ``lr * factor ** max(epoch - decay_after, 0)`` where
      ``epoch = step // steps_per_epoch + 1`` counts from 1, so epochs
      ``1..decay_after`` run at ``lr``.
    - ``exponential``: ``lr * decay_rate ** (step / decay_steps)`` (decay_steps 0: one epoch).
    - ``cosine``: linear warm-up over ``warmup_steps`` to ``lr``, then cosine to
      ``lr * min_lr_ratio`` at ``total_steps``.
    - ``plateau``: ``lr`` (the loop multiplies by ``factor`` on validation plateaus).
    """
    s, lr = cfg.schedule, cfg.optim.lr
    if s.name in ("constant", "plateau"):
        return optax.constant_schedule(lr)
    if s.name == "step":
        boundaries = {
            (s.decay_after + k) * steps_per_epoch: s.factor
            for k in range(max(total_steps // max(steps_per_epoch, 1), 1) + 1)
        }
        return optax.piecewise_constant_schedule(lr, boundaries)
    if s.name == "exponential":
        return optax.exponential_decay(
            lr, transition_steps=s.decay_steps or steps_per_epoch, decay_rate=s.decay_rate
        )
    if s.name == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if s.warmup_steps else lr,
            peak_value=lr,
            warmup_steps=s.warmup_steps,
            decay_steps=max(total_steps, s.warmup_steps + 1),
            end_value=lr * s.min_lr_ratio,
        )
    raise UsageError(f"schedule.name={s.name!r}: choose constant, step, exponential, cosine or plateau")


def make_optimizer(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int
) -> optax.GradientTransformation:
    """``cfg.optim`` + ``cfg.schedule`` -> clip (optional) then the optimizer."""
    o = cfg.optim
    lr = make_schedule(cfg, steps_per_epoch, total_steps)
    if o.name == "sgd":
        tx = optax.sgd(lr)
    elif o.name == "momentum":
        tx = optax.sgd(lr, momentum=o.momentum)
    elif o.name == "adam":
        tx = optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps)
    elif o.name == "adamw":
        tx = optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    elif o.name == "rmsprop":
        # Keras' RMSprop (the Keras translation notebook): rho 0.9, eps 1e-7, no momentum.
        tx = optax.rmsprop(lr, decay=0.9, eps=o.eps, momentum=o.momentum or None)
    else:
        raise UsageError(f"optim.name={o.name!r}: choose sgd, momentum, adam, adamw or rmsprop")
    parts = []
    if o.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.clip_norm))
    if o.weight_decay > 0 and o.name != "adamw":
        parts.append(optax.add_decayed_weights(o.weight_decay))
    return optax.chain(*parts, tx)


def lr_at(
    cfg: ml_collections.ConfigDict, step: int, steps_per_epoch: int, total_steps: int, lr_scale: float = 1.0
) -> float:
    """The learning rate used at ``step`` (for logs)."""
    return float(make_schedule(cfg, steps_per_epoch, total_steps)(step)) * lr_scale


def total_steps(cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """``train.steps`` when set, else ``train.epochs`` whole epochs."""
    return cfg.train.steps if cfg.train.steps > 0 else cfg.train.epochs * steps_per_epoch

