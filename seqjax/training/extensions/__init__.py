"""Train-state extensions (:mod:`seqjax.training.extensions.base`); each lives in its own
module, registered by importing it here."""
import seqjax.training.extensions.accumulate  # noqa: F401 — registers train.accumulate
import seqjax.training.extensions.extra_loss  # noqa: F401 — registers train.extra_loss
import seqjax.training.extensions.ntasgd  # noqa: F401 — registers train.ntasgd
import seqjax.training.extensions.variable_bptt  # noqa: F401 — registers data.variable_bptt
from seqjax.training.extensions import ema  # noqa: F401 — registers train.ema
from seqjax.training.extensions.base import EXTENSIONS, Extension, active, register, view_of, views

__all__ = ["EXTENSIONS", "Extension", "active", "register", "view_of", "views"]
