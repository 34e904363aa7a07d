"""An example user cell (docs/cells.md "Add a cell"): run it with --set model.cell=mycells:MyCell."""
import jax
import jax.numpy as jnp
from flax import linen as nn


class MyCell(nn.RNNCellBase):
    """A gated Elman cell: h' = (1 - z) * h + z * tanh(x W + h U), z = σ(x W_z + h U_z).

    Carry: h [batch, features]. ``dtype`` is the compute dtype (model.dtype reaches it).
    """

    features: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, h, x):
        """h [batch, features], x [batch, in] -> (h', h')."""
        gates = nn.Dense(2 * self.features, dtype=self.dtype, name="x")(x)
        gates += nn.Dense(2 * self.features, use_bias=False, dtype=self.dtype, name="h")(h)
        z, n = jnp.split(gates, 2, axis=-1)
        z = jax.nn.sigmoid(z)
        h = ((1 - z) * h + z * jnp.tanh(n)).astype(h.dtype)
        return h, h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        return jnp.zeros(tuple(input_shape[:-1]) + (self.features,))

    @property
    def num_feature_axes(self):
        return 1
