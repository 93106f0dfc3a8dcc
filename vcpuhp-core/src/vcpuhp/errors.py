"""The one exception hierarchy of vcpuhp.

Every error the machine raises on bad input derives from :class:`VcpuhpError`
and carries a message that says what was wrong and what is valid. A request
that raises leaves the machine exactly as it was.
"""

from __future__ import annotations


class VcpuhpError(Exception):
    """Root of every error raised by vcpuhp."""


class ConfigError(VcpuhpError, ValueError):
    """A machine configuration (``-smp``, memory size, CPU type ...) is invalid."""


class TopologyError(ConfigError):
    """An ``-smp`` topology is inconsistent or out of range."""


class DeviceError(VcpuhpError):
    """A ``device_add`` / ``device_del`` request was refused (QMP ``GenericError``)."""


class DeviceNotFound(DeviceError):
    """A request named a device id that does not exist (QMP ``DeviceNotFound``)."""


class PolicyRefused(DeviceError):
    """A policy (built in or a plugin's hook) refused the request."""


class StateError(VcpuhpError):
    """The request is not valid in the machine's or the vCPU's current state."""


class BackendError(VcpuhpError):
    """Choosing, loading or running an accelerator backend failed."""


class BackendCallError(BackendError):
    """A backend method the machine called failed; the machine was left as it was.

    :attr:`method` names the contract method; the backend's own error is the
    ``__cause__``.
    """

    def __init__(self, message: str, *, backend: str, method: str) -> None:
        super().__init__(message)
        self.backend = backend
        self.method = method


class ContractViolation(BackendCallError):
    """A backend method raised something the contract does not allow (not a
    :class:`VcpuhpError`); the message names the rule it broke."""


class BackendNotFound(BackendError):
    """No installed backend has the requested name."""


class BackendNotViable(BackendError):
    """The backend is installed but cannot work on this host (the message says why)."""


class GuestError(VcpuhpError):
    """The guest did something invalid (a bad register write, a fault in a vCPU)."""


class GicAccessError(GuestError):
    """A GIC CPU interface was accessed while its CPU is not accessible."""


class PluginError(VcpuhpError):
    """A plugin could not be loaded, validated or configured (the message says
    which plugin, where it comes from, and how to disable it)."""
