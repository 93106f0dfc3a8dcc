"""A QMP server for a :class:`~vcpuhp.machine.VirtMachine` that QEMU's tooling can drive.

It speaks QEMU's QMP (``docs/interop/qmp-spec.rst``): a greeting, capabilities
negotiation per connection, commands with QEMU's argument checks and error
classes, and events with timestamps, to any number of clients at once.
``qemu.qmp``'s ``QMPClient`` and ``qmp-shell`` work against it unchanged.

Commands (one description in :mod:`vcpuhp.qmp.commands` gives their argument
checks, ``query-commands`` and ``query-qmp-schema``): ``qmp_capabilities``,
``query-commands``, ``query-qmp-schema``, ``query-version``, ``query-status``,
``query-name``, ``query-machines``, ``query-cpu-definitions``,
``query-hotpluggable-cpus``, ``query-cpus-fast``, ``query-acpi-ospm-status``,
``qom-list``, ``qom-get`` (a QOM-like tree of the machine, :mod:`vcpuhp.qom`),
``device-list-properties``, ``human-monitor-command`` (the CLI's monitor, so
``qmp-shell -H`` works), ``device_add``, ``device_del`` (with vcpuhp's
``x-timeout``), ``x-device-unplug-cancel``, ``x-query-cpu-masks`` (the
guest's sysfs masks: ``{"possible": "0-5", "present": "0-5", "enabled":
"0-3", "online": "0-1"}``), ``stop``, ``cont``, ``system_powerdown``,
``quit``. Events: ``DEVICE_DELETED``, ``DEVICE_UNPLUG_GUEST_ERROR``,
``ACPI_DEVICE_OST``, ``SHUTDOWN``, ``RESET``, ``STOP``, ``RESUME``,
``POWERDOWN``.

Which QEMU it behaves as: the greeting and ``query-version`` say QEMU 9.2.0
(:data:`QEMU_VERSION`; the ``package`` string says it is vcpuhp), and the
commands above follow QEMU 9.2's schema, checks and error messages. Two
deliberate differences: ``device_add`` still accepts CPU properties as
strings or integral numbers (``"core-id": "5"``, ``"0x5"``, ``5.0``), as
QEMU 6.2-9.1 did through QemuOpts (deprecated in 6.2, removed in 9.2), and
a repeated ``device_del`` of a CPU whose unplug is pending asks the guest
again, as QEMU's ACPI CPU hotplug does. The vCPU hotplug behaviour itself
(``device_add``/``device_del`` of arm64 CPUs) is that of the RFC v5 series
on QEMU 9.x (see ``shared/seeds``), which released QEMU does not have.

Limits and choices: no out-of-band execution (the greeting offers no
capabilities); a request may be at most :data:`MAX_MESSAGE_SIZE` bytes (64 KiB;
a longer one gets an error and input is skipped to the end of its line); a
client that leaves more than 4 MiB of output unread is disconnected.

Wiring it into ``vcpuhp run --qmp ADDRESS [--qmp-allow-remote]``::

    from vcpuhp.qmp import QmpServer

    server = QmpServer(machine, args.qmp, allow_remote=args.qmp_allow_remote)
    server.start()                    # ConfigError: bad or exposed address, in use ...
    try:
        reason = server.serve_forever()   # "quit", "shutdown" (guest) or "closed"
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        machine.shutdown()            # idempotent; ``quit`` already did it

``ADDRESS`` is ``unix:PATH`` (created with mode 0600; a stale socket is
replaced, a live one or any other file is refused) or ``tcp:HOST:PORT``
(``tcp:127.0.0.1:4444``, ``tcp:[::1]:4444``; port 0 picks one, see
:attr:`QmpServer.bound_address`). A TCP host that is not loopback (including
an empty host, meaning every interface) is refused with :class:`ConfigError`
unless ``allow_remote=True``: QMP has no authentication. Use
:func:`parse_address` to validate the option early.
"""

from vcpuhp.qmp.address import QmpAddress, TcpAddress, UnixAddress, parse_address
from vcpuhp.qmp.framing import MAX_MESSAGE_SIZE
from vcpuhp.qmp.server import CLOSED, QUIT, SHUTDOWN, QmpServer
from vcpuhp.qmp.wire import QEMU_VERSION

__all__ = [
    "CLOSED",
    "MAX_MESSAGE_SIZE",
    "QEMU_VERSION",
    "QUIT",
    "SHUTDOWN",
    "QmpAddress",
    "QmpServer",
    "TcpAddress",
    "UnixAddress",
    "parse_address",
]
