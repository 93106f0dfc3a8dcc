"""The shipped conformance suite, run on the backend chosen with --vcpuhp-backend."""

from vcpuhp.testing.suite import *  # noqa: F403
