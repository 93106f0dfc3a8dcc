"""Fixtures for the boot-protocol tests."""

from __future__ import annotations

import pytest
from boot_testlib import MakeImage, make_image_bytes


@pytest.fixture
def make_image() -> MakeImage:
    """Factory of synthetic ``Image`` bytes (see :func:`make_image_bytes`)."""
    return make_image_bytes
