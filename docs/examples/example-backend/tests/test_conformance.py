"""The vcpuhp conformance suite, run on this backend: pytest --vcpuhp-backend=example."""

from vcpuhp.testing.suite import *  # noqa: F403
