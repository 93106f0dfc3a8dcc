"""The Unicorn Python binding, seen as ``Any`` by the type checker, imported once.

The binding ships ``py.typed``, but its package ``__init__`` re-exports through
a Python 2 / 3 switch, so mypy resolves ``unicorn.Uc`` to the wrong class
(wrong constructor, no ``ctl_*`` or ``cpr_*`` methods). Importing through
this module keeps the rest of the package strictly typed against what the
binding really provides at run time, and lets the backend class load (and
say why it is not viable) when Unicorn is missing.
"""

from __future__ import annotations

import importlib
from typing import Any


class _MissingUcError(Exception):
    """Stands in for ``unicorn.UcError`` when the binding cannot be imported."""


unicorn: Any = None
arm64: Any = None
const: Any = None
UcError: type[Exception] = _MissingUcError
"""Raised by every failing binding call; ``errno`` holds the ``UC_ERR_*`` value."""
IMPORT_ERROR: Exception | None = None
"""Why the binding could not be imported (``None`` when it was)."""

try:
    unicorn = importlib.import_module("unicorn")
    arm64 = importlib.import_module("unicorn.arm64_const")
    const = importlib.import_module("unicorn.unicorn_const")
    UcError = unicorn.UcError
except Exception as exc:  # ImportError, or a broken shared library (OSError)
    IMPORT_ERROR = exc
