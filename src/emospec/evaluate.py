"""Deprecated alias of :mod:`emospec.metrics` and :mod:`emospec.bootstrap` (one module, `evaluate`, until 0.x; kept for one release)."""

from .bootstrap import *  # noqa: F401,F403
from .bootstrap import __all__ as _bootstrap_all
from .metrics import *  # noqa: F401,F403
from .metrics import __all__ as _metrics_all

__all__ = [*_metrics_all, *_bootstrap_all]
