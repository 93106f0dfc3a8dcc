"""Which backend a test run targets: the name in ``--vcpuhp-backend NAME[,key=value...]``.

Backend-specific test directories are collected only for their backend (not
skipped elsewhere), so a run can never pass by skipping a backend's tests.
"""

from __future__ import annotations

import pytest


def selected_backend(config: pytest.Config) -> str:
    """The backend's name given to ``--vcpuhp-backend`` ('' when none was given)."""
    return str(config.getoption("--vcpuhp-backend") or "").split(",")[0]
