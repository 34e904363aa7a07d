"""The cell protocol and the cell registry: what the recurrent layers need of a cell.

Any ``flax.linen.RNNCellBase`` runs in ``seqjax.core.layers``; a cell *declares* the faster
loops it supports with class attributes, which the layers read (never its name):

- ``fused = True``: it has ``input_projection``, ``gates``, ``recurrent_input`` and an
  ``hh`` Dense (``seqjax.core.recurrence.recurrence`` and the wavefront stack run it);
- ``cudnn = True``: its math is exactly ``torch.nn.LSTM``'s (cuDNN's kernel computes it);
- ``linear = True``: its recurrence is ``h' = a(x) * h + b(x)`` with ``b > 0`` and it has
  ``coefficients(x) -> (log a, log b)`` (``seqjax.core.recurrence.linear_recurrence``, also
  parallel in time; the min cells of ``seqjax.core.mincells``);
- ``unitwise = True``: unit i's next carry reads only unit i's carry (diagonal recurrent
  weights), so its state Jacobian is one k × k block per unit (k carry leaves) and
  ``backend="newton"`` is exact Newton (the Para cells of ``seqjax.core.paracells``).

A subclass that overrides the methods a capability relies on loses it unless it declares
it again (an ``LSTMCell`` with other gate math does not run under cuDNN).

Cells are built by registered name or import path (:func:`make_cell`); ``@register_cell``
adds a name. This module is the base of the cell modules (``seqjax.core.cells``, ``seqjax.core.mincells``,
``seqjax.core.paracells``, a user's): they import it to register, and it imports none of them
(the built-ins are loaded by name on the registry's first lookup, :data:`BUILTIN_MODULES`).
docs/design.md states the protocol with the rest of the plug-in points.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from seqjax import importpath

Array = jax.Array
Carry = Any

INITS = ("torch", "uniform")


def _uniform(scale: float, offset: float = 0.0, offset_slice: slice | None = None):
    """Initializer drawing U(-scale, scale), plus `offset` on `offset_slice`."""

    def init(key, shape, dtype=jnp.float32):
        value = jax.random.uniform(key, shape, dtype, -scale, scale)
        if offset_slice is not None:
            value = value.at[..., offset_slice].add(offset)
        return value

    return init


class SeqjaxCell(nn.RNNCellBase):
    """The fields every seqjax cell shares (the fused cells here, the min cells in
    seqjax/core/mincells.py) and their check.

    Attributes:
      features: hidden size H.
      weight_init: "torch" draws every weight and bias from
        U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's default); "uniform" from
        U(-init_scale, init_scale). (Not named ``init``, which would shadow
        ``Module.init``.)
      init_scale: half-width of the "uniform" init.
      dtype: computation dtype (None: inferred from inputs and params).
      param_dtype: parameter dtype.
    """

    features: int
    weight_init: str = "torch"
    init_scale: float = 0.1
    dtype: Any = None
    param_dtype: Any = jnp.float32

    num_gates: ClassVar[int]

    def __post_init__(self):
        if self.weight_init not in INITS:
            raise ValueError(f"weight_init must be one of {INITS}, got {self.weight_init!r}")
        super().__post_init__()

    @nn.nowrap
    def init_range(self) -> float:
        """Half-width of every weight's and bias's uniform init."""
        return 1.0 / math.sqrt(self.features) if self.weight_init == "torch" else self.init_scale

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]) -> Carry:
        """Zeros [batch, H] for input_shape (batch, in); `rng` is unused. (A cell whose
        carry is more than h, like the LSTM's (c, h), overrides this.)"""
        del rng
        return jnp.zeros(tuple(input_shape[:-1]) + (self.features,), self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


def make_cell(cell: str | Callable[..., nn.RNNCellBase], features: int, **kw) -> nn.RNNCellBase:
    """Builds a cell of hidden size ``features``.

    Args:
      cell: a registered name (:data:`CELLS`: "rnn", "lstm", "gru", "mingru",
        "flax_lstm", ...), an import path "package.module:ClassName", or a cell class
        (any ``flax.linen.RNNCellBase`` taking ``features``).
      features: hidden size H.
      **kw: constructor fields, e.g. activation (rnn), weight_init (alias ``init``),
        init_scale, forget_bias (lstm), dtype, param_dtype, parent.
    """
    factory, fixed = resolve_cell(cell)
    if "init" in kw:
        kw["weight_init"] = kw.pop("init")
    for key, value in fixed.items():
        if kw.get(key, value) != value:
            raise ValueError(f"cell {cell!r} conflicts with {key}={kw[key]!r}")
    return factory(features=features, **{**kw, **fixed})


def cell_fields(cell: str | Callable[..., nn.RNNCellBase]) -> frozenset[str]:
    """The constructor fields of a cell (name, import path or class), e.g. {"features",
    "weight_init", "dtype", ...}: which config options it can take."""
    factory, fixed = resolve_cell(cell)
    fields = getattr(factory, "__dataclass_fields__", None)
    names = set(fields) if fields is not None else set(inspect.signature(factory).parameters)
    return frozenset(names - set(fixed) - {"parent", "name"})


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, tuple[Callable[..., nn.RNNCellBase], dict]] = {}

#: the modules that register the built-in cells; the registry imports them (by name) on its
#: first lookup, so they may import this module and each other without a circle
BUILTIN_MODULES = ("seqjax.core.cells", "seqjax.core.mincells", "seqjax.core.paracells")


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def register_cell(name: str, **fixed):
    """Class decorator: makes a cell buildable as ``model.cell=name``; ``fixed`` are fields
    that the name sets (e.g. ``activation="relu"``). Returns the class unchanged."""

    def decorate(cls):
        if name in _REGISTRY and _REGISTRY[name][0] is not cls:
            raise ValueError(f"cell name {name!r} is already registered to {_REGISTRY[name][0].__name__}")
        _REGISTRY[name] = (cls, dict(fixed))
        return cls

    return decorate


def registered_cells() -> tuple[str, ...]:
    """The registered cell names, in registration order (the built-ins first)."""
    _load_builtins()
    return tuple(_REGISTRY)


def resolve_cell(cell: str | Callable[..., nn.RNNCellBase]) -> tuple[Callable[..., nn.RNNCellBase], dict]:
    """A name, an import path "package.module:ClassName" or a class -> (class, fixed fields).

    Raises ValueError naming the cell when it is none of these."""
    if not isinstance(cell, str):
        if not callable(cell):
            raise ValueError(f"cell must be a name, an import path or a cell class, got {cell!r}")
        return cell, {}
    if cell not in _REGISTRY:
        _load_builtins()
    if cell in _REGISTRY:
        return _REGISTRY[cell]
    if ":" not in cell:
        raise ValueError(f"cell must be one of {registered_cells()} or package.module:ClassName, "
                         f"got {cell!r}")
    module, _, attr = cell.partition(":")
    try:
        factory = getattr(importpath.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import {attr} from {module} ({e}); is it on PYTHONPATH?") from e
    except Exception as e:  # noqa: BLE001 — the module itself fails: SyntaxError, NameError, ...
        where = f" ({e.filename}, line {e.lineno})" if isinstance(e, SyntaxError) else ""
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"cell {cell!r}: importing {module} fails{where}: {type(e).__name__}: {first}; "
                         "fix the module") from None
    _check_cell_class(factory, cell)
    return factory, {}


def _check_cell_class(factory: Any, cell: str) -> None:
    """ValueError (one line) unless ``factory`` is a ``flax.linen.RNNCellBase`` subclass with
    a ``features`` field (the hidden size every model passes)."""
    if not (isinstance(factory, type) and issubclass(factory, nn.RNNCellBase)):
        what = (f"the class {factory.__module__}.{factory.__qualname__}" if isinstance(factory, type)
                else f"a {type(factory).__name__}")
        raise ValueError(f"cell {cell!r} is {what}, not a cell; give a flax.linen.RNNCellBase subclass "
                         "(docs/design.md: cells)")
    fields = getattr(factory, "__dataclass_fields__", None)
    names = set(fields) if fields is not None else set(inspect.signature(factory).parameters)
    if "features" not in names:
        raise ValueError(f"cell {cell!r} has no 'features' field (its hidden size, which every model "
                         "sets); add `features: int` to the class")


def supports(cell: nn.RNNCellBase, capability: str) -> bool:
    """Whether ``cell`` declares ``capability`` ("fused", "cudnn", "linear" or "unitwise")."""
    return bool(getattr(type(cell), capability, False))
