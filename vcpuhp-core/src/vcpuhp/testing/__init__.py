"""Testing aids shipped in the wheel: the pytest plugin and the backend conformance suite.

A backend author runs the suite against their backend with::

    # test_conformance.py
    from vcpuhp.testing.suite import *  # noqa: F403

    $ pytest --vcpuhp-backend=mybackend
"""
