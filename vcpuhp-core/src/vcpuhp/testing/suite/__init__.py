"""The backend conformance suite: the contract of :mod:`vcpuhp.backend`, checked from outside.

A backend's test package collects it with one line and runs it with the
backend named explicitly (the pytest plugin refuses to guess)::

    # test_conformance.py
    from vcpuhp.testing.suite import *  # noqa: F403

    $ pytest --vcpuhp-backend=mybackend [--vcpuhp-timeout-scale=20]

Every class checks one part of the contract and every failure message quotes
the rule it checks (``contract: ...``, the wording of
:data:`vcpuhp.backend.RULES`). What the suite counts -- threads, file
descriptors, live vCPU objects, call durations -- it measures itself
(:mod:`vcpuhp.testing.resources`, :mod:`vcpuhp.testing.probe`) rather than
asking the backend. Tests that need a capability are marked
``@pytest.mark.requires(...)``; on a backend without it they run as strict
xfails. On a backend that executes guest code the bundled guest plays the
OS; on one that does not, :class:`vcpuhp.testing.guest.CooperativeGuest`
does. Machines load no plugin unless ``--vcpuhp-plugin`` asks for one.
"""

from vcpuhp.testing.suite.concurrency import TestConcurrency
from vcpuhp.testing.suite.faults import TestFailureInjection
from vcpuhp.testing.suite.guest_code import TestInterruptController, TestRunsTheGuest
from vcpuhp.testing.suite.lifecycle import TestLifecycle, TestParking, TestRegistration
from vcpuhp.testing.suite.locks import TestLockRules
from vcpuhp.testing.suite.power import TestPauseResume, TestReset
from vcpuhp.testing.suite.resources import TestNonBlocking, TestResources
from vcpuhp.testing.suite.stateful import TestRandomHotplug

__all__ = [
    "TestConcurrency",
    "TestFailureInjection",
    "TestInterruptController",
    "TestLifecycle",
    "TestLockRules",
    "TestNonBlocking",
    "TestParking",
    "TestPauseResume",
    "TestRandomHotplug",
    "TestRegistration",
    "TestReset",
    "TestResources",
    "TestRunsTheGuest",
]
