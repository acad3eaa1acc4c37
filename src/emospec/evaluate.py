"""Deprecated alias of :mod:`emospec.metrics` (the module's name until 0.x; kept for one release)."""

from .metrics import *  # noqa: F401,F403
from .metrics import __all__  # noqa: F401
