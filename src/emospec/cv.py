"""Deprecated alias of :mod:`emospec.protocols` (the module's name until 0.x; kept for one release)."""

from .protocols import *  # noqa: F401,F403
from .protocols import __all__  # noqa: F401
