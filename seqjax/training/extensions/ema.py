"""An exponential moving average of the params: ``train.ema=DECAY`` (0: off).

State ``TrainState.ext["ema"]``: a params-shaped float32 tree, the initial params at step
0; after each optimizer step ``ema <- decay * ema + (1 - decay) * params`` (inside the
jitted step, so it is checkpointed and resumes exactly). Evaluation, the best checkpoint
(``best/``) and the final report score the EMA instead of the trained params;
``--checkpoint ema`` restores the EMA of the newest checkpoint and ``--checkpoint latest``
the trained params. ``train.final_params=average`` is refused beside it: the mean of
``best/`` (an EMA) and the kept checkpoints (trained params) would mix the two.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.errors import UsageError
from seqjax.training.extensions.base import Extension, register


@register
class EMA(Extension):
    name = "ema"
    view = "ema"

    switch = "train.ema"

    def __init__(self, cfg, task):
        super().__init__(cfg, task)
        if cfg.train.get("final_params", "best") == "average":
            raise UsageError("train.ema with train.final_params=average would average the EMA of best/ with "
                             "the trained params of the kept checkpoints; set train.final_params=best")

    def init(self, params):
        return jax.tree.map(lambda p: jnp.array(p, jnp.float32, copy=True), params)

    def update(self, ema, params, step):
        d = jnp.float32(self.cfg.train.ema)
        return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p.astype(jnp.float32), ema, params)

    def eval_params(self, ema, params):
        return jax.tree.map(lambda e, p: e.astype(p.dtype), ema, params)
