"""Recurrent layers: one direction over time, bidirectional, and stacks.

All inputs are batch-major, ``[batch, time, features]``. Variable lengths are
given as ``seq_lengths: [batch]``: past its length a row's carry stops changing
and its outputs are exactly zero, so a padded batch gives the same numbers as
each sequence run alone. With ``seq_lengths=None`` every row is full length
and the time loop does no masking work at all.

Any ``flax.linen.RNNCellBase`` runs in these layers. ``Recurrent`` hands each call to the
first time loop of the registry in seqjax/core/loops.py that applies, by the backend and
what the cell declares (``seqjax.core.cellbase``): a fused cell runs in
``seqjax.core.recurrence.recurrence`` (or cuDNN, for exactly-LSTM cells), a linear cell
(minGRU, minLSTM) in ``linear_recurrence``, any other cell in an ``nn.scan`` over its
``__call__``, all with the same length semantics. Carries come from ``cell.initialize_carry``.

Parameter layout of ``Stacked`` (cells as in ``seqjax.core.cells``)::

    params["layer_0"]["cell"]["ih"|"hh"]["kernel"|"bias"]               unidirectional
    params["layer_0"]["forward"|"backward"]["cell"]["ih"|"hh"][...]     bidirectional
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.core import FrozenDict

from seqjax.core import weight_drop as weight_drop_lib
from seqjax.core.cells import make_cell, supports
from seqjax.core.loops import LoopCall, select_loop
from seqjax.core.newton import NewtonOptions
from seqjax.core.recurrence import project, stacked_recurrence

Array = jax.Array
Carry = Any

MERGES = ("concat", "sum")
BACKENDS = ("scan", "flax_scan", "cudnn", "newton")
PARALLEL_SCANS = ("auto", "on", "off")


def _shapes(tree) -> Any:
    return jax.tree.map(lambda x: tuple(jnp.shape(x)), tree)


def _checked_carry(given: Carry | None, zero: Carry, where: str) -> Carry:
    """``given`` if it has the structure and shapes of ``zero`` (zeros if None), else a
    ValueError naming both."""
    if given is None:
        return zero
    if jax.tree.structure(given) != jax.tree.structure(zero) or any(
        jnp.shape(a) != jnp.shape(b) for a, b in zip(jax.tree.leaves(given), jax.tree.leaves(zero))
    ):
        raise ValueError(f"initial_carry must have shapes {_shapes(zero)} {where}, got {_shapes(given)}")
    return given


def _check_inputs(inputs: Array, seq_lengths: Array | None) -> None:
    if jnp.ndim(inputs) != 3:
        raise ValueError(f"inputs must be [batch, time, features], got shape {jnp.shape(inputs)}")
    if seq_lengths is None:
        return
    batch, time, _ = inputs.shape
    if jnp.shape(seq_lengths) != (batch,):
        raise ValueError(
            f"seq_lengths must have shape [batch] = ({batch},) for inputs of shape"
            f" {inputs.shape}, got shape {jnp.shape(seq_lengths)}"
        )
    if not isinstance(seq_lengths, jax.core.Tracer):
        lengths = np.asarray(seq_lengths)
        if lengths.min() < 0 or lengths.max() > time:
            raise ValueError(
                f"seq_lengths must lie in [0, time={time}] for inputs of shape"
                f" {inputs.shape}, got values from {lengths.min()} to {lengths.max()}"
            )


def _merge(merge: str, a: Array, b: Array) -> Array:
    if merge == "concat":
        return jnp.concatenate([a, b], axis=-1)
    if merge == "sum":
        return a + b
    raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")


class Recurrent(nn.Module):
    """Runs a cell over time with a scan (one direction).

    The input projection ``x @ W_ih + b_ih`` of all time steps is one matmul
    before the scan; only the recurrent step is inside it, and with the default
    backend the recurrent weight gradient is one matmul after it
    (``seqjax.core.recurrence``). Parameters are broadcast across time, so compile time
    does not grow with sequence length.

    Attributes:
      cell: any ``flax.linen.RNNCellBase``, e.g. ``LSTMCell(200)`` or
        ``flax.linen.GRUCell(200)``; its declared capabilities and ``backend`` pick the
        time loop (seqjax/core/loops.py).
      reverse: run from the last valid step of each row to its first. Only
        the valid prefix of each row is reversed, so the final carry is the
        state after reading position 0.
      unroll: scan unroll factor.
      backend: "scan" (everywhere): a ``lax.scan`` over the cell's step whose backward
        pass computes ``dW_hh`` as one matmul after the time loop
        (``seqjax.core.recurrence``); "flax_scan": ``nn.scan`` over the cell with plain
        autodiff (the reference: the same numbers up to float summation order; it
        accumulates ``dW_hh`` inside the backward loop, which is slower at large H);
        "cudnn": on a GPU, a forward ``LSTMCell`` layer runs as one cuDNN kernel
        (``jax.experimental.rnn.lstm``) with the same parameters and results (up to
        float rounding); anything else (CPU/TPU, other cells, ``reverse``, a cell
        ``dtype``) falls back to "scan"; "newton": all time steps at once by Newton
        iterations, each a parallel scan (``seqjax.core.newton``; linear cells run their parallel
        scan, which is their one Newton step), with the same results (to the tolerance
        ``newton``) and gradients by the implicit function theorem.
      remat: recompute each time step in the backward pass instead of storing its
        activations (``jax.checkpoint`` of the step): training memory for long
        sequences drops to the carries; costs one more forward step per step.
      recurrent_dropout: Gal & Ghahramani's dropout on the recurrent state: one mask per
        sequence on what the step reads of the carry (h for fused and linear cells, every
        carry leaf for other cells; an LSTM's c too), reused at every step; training only.
      weight_drop: DropConnect on the recurrent weights (``seqjax.core.weight_drop``): one mask
        over ``W_hh`` per call, shared by the batch and every step; training only.
      parallel_scan: linear cells only: "on" runs the recurrence parallel in time (log
        space), "off" as a sequential scan, "auto" parallel on GPU/TPU only.
      newton: tolerance, iterations and damping of ``backend="newton"``. Its iteration
        count, convergence flag and last update are sown as ``intermediates/newton``.
    """

    cell: nn.RNNCellBase
    reverse: bool = False
    unroll: int = 1
    backend: str = "scan"
    remat: bool = False
    recurrent_dropout: float = 0.0
    parallel_scan: str = "auto"
    newton: NewtonOptions = NewtonOptions()
    weight_drop: float = 0.0

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        seq_lengths: Array | None = None,
        initial_carry: Carry | None = None,
        *,
        reverse: bool | None = None,
        deterministic: bool = True,
    ) -> tuple[Array, Carry]:
        """Runs the layer.

        Args:
          inputs: [batch, time, features].
          seq_lengths: [batch] ints in [0, time], or None for full-length rows.
          initial_carry: the cell's carry for batch rows (e.g. (c, h) with
            [batch, H] each for an LSTM), or None for zeros.
          reverse: overrides the ``reverse`` attribute for this call.
          deterministic: disables recurrent dropout; otherwise a "dropout" rng is needed.

        Returns:
          (outputs [batch, time, H], final_carry): the final carry of each row is
          its carry at its last valid step.
        """
        reverse = self.reverse if reverse is None else reverse
        _check_inputs(inputs, seq_lengths)
        batch, _, features = inputs.shape
        if self.parallel_scan not in PARALLEL_SCANS:
            raise ValueError(f"parallel_scan must be one of {PARALLEL_SCANS}, got {self.parallel_scan!r}")

        zero = self.cell.initialize_carry(jax.random.key(0), (batch, features))
        carry = _checked_carry(initial_carry, zero, f"for inputs of shape {inputs.shape}")
        dropping = self.recurrent_dropout > 0 and not deterministic
        drop_w = weight_drop_lib.for_layer(self, deterministic)  # cell params -> masked, or None
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        call = LoopCall(self, inputs, seq_lengths, carry, reverse, dropping, drop_w)
        return select_loop(call).run(call)

    @nn.nowrap
    def recurrent_mask(self, shape: tuple[int, ...]) -> Array:
        """One recurrent-dropout factor per row and unit: 0 or 1/(1-p), float32 ``shape``."""
        keep = 1.0 - self.recurrent_dropout
        return jax.random.bernoulli(self.make_rng("dropout"), keep, shape).astype(jnp.float32) / keep


class Bidirectional(nn.Module):
    """A forward and a backward ``Recurrent`` over the same inputs.

    ``backward`` always runs reversed (its ``reverse`` attribute is overridden),
    ``forward`` always forward.

    Attributes:
      forward: the forward-direction layer.
      backward: the backward-direction layer.
      merge: "concat" (outputs [batch, time, 2H]) or "sum" ([batch, time, H]).
    """

    forward: Recurrent
    backward: Recurrent
    merge: str = "concat"

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        seq_lengths: Array | None = None,
        initial_carry: tuple[Carry, Carry] | None = None,
        *,
        deterministic: bool = True,
    ) -> tuple[Array, tuple[Carry, Carry]]:
        """inputs [batch, time, features] -> (outputs, (fwd_carry, bwd_carry)).

        ``initial_carry`` is a (fwd, bwd) pair or None for zeros; ``deterministic`` as
        in ``Recurrent``.
        """
        fwd_init, bwd_init = (None, None) if initial_carry is None else initial_carry
        fwd, fwd_carry = self.forward(inputs, seq_lengths, fwd_init, reverse=False,
                                      deterministic=deterministic)
        bwd, bwd_carry = self.backward(inputs, seq_lengths, bwd_init, reverse=True,
                                       deterministic=deterministic)
        return _merge(self.merge, fwd, bwd), (fwd_carry, bwd_carry)


def hidden_sizes(hidden: int | Sequence[int], layers: int = 1) -> tuple[int, ...]:
    """Per-layer hidden sizes: ``hidden`` repeated ``layers`` times if an int."""
    if isinstance(hidden, numbers.Integral):
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        return (int(hidden),) * layers
    sizes = tuple(int(h) for h in hidden)
    if not sizes or layers not in (1, len(sizes)):
        raise ValueError(f"hidden={list(sizes)} gives {len(sizes)} layers, which contradicts layers={layers}")
    return sizes


def zero_carry(
    cell: str | Any,
    hidden_sizes: Sequence[int],
    batch: int,
    bidirectional: bool = False,
    dtype: Any = jnp.float32,
    cell_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Carry, ...]:
    """Zero carries with the structure that ``Stacked`` returns, from each layer's
    ``cell.initialize_carry`` (``cell`` as in ``seqjax.core.cells.make_cell``).

    One entry per layer: the cell's carry for [batch, H] (h; (c, h) for an LSTM), or a
    (fwd, bwd) pair of those when bidirectional.
    """

    def one(size):
        carry = make_cell(cell, size, **dict(cell_kwargs or {})).initialize_carry(
            jax.random.key(0), (batch, size))
        return jax.tree.map(lambda c: jnp.zeros(jnp.shape(c), dtype), carry)

    return tuple((one(s), one(s)) if bidirectional else one(s) for s in hidden_sizes)


class Stacked(nn.Module):
    """A stack of (optionally bidirectional) recurrent layers.

    The defaults are the config's (``model.*`` in ``seqjax.config.SCHEMA``): ``Stacked()``
    builds the layers that ``seqjax train`` builds from the default keys.

    Attributes:
      cell: a registered cell name ("rnn", "lstm", "gru", "mingru", "flax_gru", ...), an
        import path "package.module:ClassName" or a cell class (``seqjax.core.cells.make_cell``).
      hidden: hidden size of every layer, or one size per layer.
      layers: number of layers when ``hidden`` is an int.
      dropout: dropout rate on the inputs of layers 2..L (not on the output).
      variational: one dropout mask per sequence, reused at every time step.
      bidirectional: each layer is a ``Bidirectional`` pair.
      merge: how bidirectional outputs are merged: "concat" or "sum".
      cell_kwargs: passed to ``make_cell`` (activation, init, init_scale,
        forget_bias, dtype, ...); a mapping or a tuple of (key, value) pairs.
      unroll: scan unroll factor.
      backend: "scan", "flax_scan", "cudnn" (GPU LSTM layers) or "newton" (see ``Recurrent``).
      remat: recompute time steps in the backward pass (see ``Recurrent``).
      wavefront: run the layers of a unidirectional stack in one time loop, layer l at
        time step k - l in iteration k (``seqjax.core.recurrence.stacked_recurrence``): the
        same numbers up to float rounding, and the layers' steps run side by side.
        Applies with ``backend="scan"``, 2+ layers of a fused cell, no ``bidirectional``
        and no recurrent dropout; otherwise the layers run one after the other.
      recurrent_dropout: dropout on the recurrent state (see ``Recurrent``).
      weight_drop: DropConnect on each layer's recurrent weights in training (see ``Recurrent``);
        the wavefront then runs only eval steps.
      parallel_scan: "auto" | "on" | "off": linear cells' loop (see ``Recurrent``).
      newton: options of ``backend="newton"`` (see ``Recurrent``).
    """

    cell: str = "lstm"
    hidden: int | Sequence[int] = 128
    layers: int = 1
    dropout: float = 0.0
    variational: bool = False
    bidirectional: bool = False
    merge: str = "concat"
    cell_kwargs: Mapping[str, Any] = FrozenDict()
    unroll: int = 1
    backend: str = "scan"
    remat: bool = False
    wavefront: bool = False
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    parallel_scan: str = "auto"
    newton: NewtonOptions = NewtonOptions()

    def _cell(self, size: int) -> nn.RNNCellBase:
        # parent=None: the cell is adopted by (and named after) its Recurrent's field.
        return make_cell(self.cell, size, parent=None, **dict(self.cell_kwargs))

    def _recurrent(self, size: int, **module_kw) -> Recurrent:
        return Recurrent(self._cell(size), unroll=self.unroll, backend=self.backend, remat=self.remat,
                         recurrent_dropout=self.recurrent_dropout, parallel_scan=self.parallel_scan,
                         newton=self.newton, **module_kw)

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        seq_lengths: Array | None = None,
        initial_carry: tuple[Carry, ...] | None = None,
        *,
        deterministic: bool = True,
    ) -> tuple[Array, tuple[Carry, ...]]:
        """Runs the stack.

        Args:
          inputs: [batch, time, features].
          seq_lengths: [batch] ints, or None for full-length rows.
          initial_carry: one carry per layer (structure of ``zero_carry``), or
            None for zeros.
          deterministic: disables dropout; otherwise a "dropout" rng is needed.

        Returns:
          (outputs [batch, time, H_last] ([..., 2*H_last] for bidirectional
          concat), carries): one final carry per layer.
        """
        sizes = hidden_sizes(self.hidden, self.layers)
        if initial_carry is None:
            initial_carry = (None,) * len(sizes)
        elif len(initial_carry) != len(sizes):
            raise ValueError(
                f"initial_carry must have one entry per layer ({len(sizes)}), got {len(initial_carry)}"
            )
        if (self.wavefront and len(sizes) > 1 and not self.bidirectional and self.backend == "scan"
                and self.recurrent_dropout == 0 and (self.weight_drop == 0 or deterministic)
                and supports(self._cell(sizes[0]), "fused")
                and not self.is_initializing()):
            return self._wavefront(sizes, inputs, seq_lengths, initial_carry, deterministic)
        x = inputs
        carries = []
        for i, (size, carry) in enumerate(zip(sizes, initial_carry)):
            if i > 0 and self.dropout > 0:
                broadcast_dims = (1,) if self.variational else ()
                x = nn.Dropout(self.dropout, broadcast_dims=broadcast_dims)(x, deterministic=deterministic)
            if self.bidirectional:
                layer = Bidirectional(
                    self._recurrent(size, weight_drop=self.weight_drop, parent=None),
                    self._recurrent(size, reverse=True, weight_drop=self.weight_drop, parent=None),
                    merge=self.merge,
                    name=f"layer_{i}",
                )
            else:
                layer = self._recurrent(size, weight_drop=self.weight_drop, name=f"layer_{i}")
            x, carry = layer(x, seq_lengths, carry, deterministic=deterministic)
            carries.append(carry)
        return x, tuple(carries)

    def _wavefront(self, sizes, inputs, seq_lengths, initial_carry, deterministic):
        """The stack as one loop (``stacked_recurrence``), with the parameters and dropout
        masks of the layer-by-layer path (same names, same rngs)."""
        _check_inputs(inputs, seq_lengths)
        batch, time, features = inputs.shape
        params = self.variables["params"]
        cells = [self._cell(size) for size in sizes]
        weights = [params[f"layer_{i}"]["cell"] for i in range(len(sizes))]
        carries, masks = [], []
        for i, carry in enumerate(initial_carry):
            zero = cells[i].initialize_carry(None, (batch, sizes[i - 1] if i else features))
            carries.append(_checked_carry(carry, zero, f"for layer {i} at batch size {batch}"))
            if i > 0 and self.dropout > 0 and not deterministic:
                broadcast_dims = (1,) if self.variational else ()
                ones = jnp.ones((batch, time, sizes[i - 1]), inputs.dtype)
                scale = nn.Dropout(self.dropout, broadcast_dims=broadcast_dims)(ones, deterministic=False)
                masks.append(jnp.swapaxes(scale, 0, 1))  # [T, B, H_{i-1}]
        ih0 = weights[0]["ih"]
        if inputs.shape[-1] != ih0["kernel"].shape[0]:
            raise ValueError(
                f"inputs have {inputs.shape[-1]} features (last axis) but the cell's parameters "
                f"expect {ih0['kernel'].shape[0]}"
            )
        dtype = cells[0].dtype
        xp = project(jnp.swapaxes(inputs, 0, 1), ih0["kernel"], ih0["bias"], dtype)  # [T, B, G*H_0]
        valid = None if seq_lengths is None else jnp.arange(time)[:, None] < seq_lengths
        final, ys = stacked_recurrence(
            tuple(c.gates for c in cells), tuple(c.recurrent_input for c in cells),
            tuple(w["hh"]["kernel"] for w in weights), tuple(w["hh"]["bias"] for w in weights),
            tuple(w["ih"]["kernel"] for w in weights[1:]), tuple(w["ih"]["bias"] for w in weights[1:]),
            xp, tuple(carries), valid, tuple(masks) if masks else None,
            unroll=self.unroll, dtype=dtype, remat=self.remat,
        )
        return jnp.swapaxes(ys, 0, 1), tuple(final)

    @nn.nowrap
    def initialize_carry(self, batch_size: int, dtype: Any = jnp.float32):
        """Zero carries for ``batch_size`` rows (see ``zero_carry``)."""
        sizes = hidden_sizes(self.hidden, self.layers)
        return zero_carry(self.cell, sizes, batch_size, self.bidirectional, dtype, self.cell_kwargs)
