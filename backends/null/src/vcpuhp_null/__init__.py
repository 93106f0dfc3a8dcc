"""The ``null`` accelerator: vCPUs that execute nothing, driven by a test driver.

Like QEMU's qtest accelerator, the "guest" is a program outside the machine:
:class:`GuestDriver` in Python, or the line protocol of :mod:`vcpuhp_null.protocol`
over a socket.
"""

from vcpuhp_null.backend import NullBackend, NullUnparkedBackend, NullVcpu
from vcpuhp_null.driver import GuestDriver

__all__ = ["GuestDriver", "NullBackend", "NullUnparkedBackend", "NullVcpu"]
