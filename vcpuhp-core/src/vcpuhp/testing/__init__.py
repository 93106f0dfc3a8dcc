"""Testing aids shipped in the wheel: the backend conformance suite and what it is made of.

* :mod:`vcpuhp.testing.suite` -- the conformance suite; a backend's tests
  collect it with ``from vcpuhp.testing.suite import *`` and run it with
  ``pytest --vcpuhp-backend=NAME``;
* :mod:`vcpuhp.testing.pytest_plugin` -- its options, capability handling and
  fixtures (loaded automatically through the ``pytest11`` entry point);
* :mod:`vcpuhp.testing.guest` -- the guest OS's side of the hotplug protocol,
  played over the machine API (for backends that execute no guest code, and
  for tests that play the guest by hand);
* :mod:`vcpuhp.testing.probe` -- a backend watched from outside (call
  records, vCPU objects, failure injection);
* :mod:`vcpuhp.testing.resources` -- threads, file descriptors and vCPU
  objects, counted by the suite itself;
* :mod:`vcpuhp.testing.rig` -- a machine under test with all of the above.

See ``docs/authoring.md`` in the source repository for a walk-through.
"""
