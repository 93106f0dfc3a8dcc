"""The Processor Properties Topology Table, revision 2 (ACPI 6.5 section 5.2.30).

Processor hierarchy nodes (type 0) for every possible CPU: sockets, then
clusters (only when there is more than one per socket), cores, and threads
(only when cores have more than one). Every node carries an ACPI processor
id: sockets, clusters and non-leaf cores their id within their parent; the
leaves (threads, or cores without threads) the CPU index, which equals the
GICC ACPI processor UID and the ``Cxxx._UID``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from vcpuhp.acpi.tables.sdt import HEADER_SIZE, sdt
from vcpuhp.topology import Topology

PPTT_REVISION: Final = 2
NODE_TYPE_PROCESSOR: Final = 0
NODE_SIZE: Final = 20
PHYSICAL_PACKAGE: Final = 1 << 0
ACPI_PROCESSOR_ID_VALID: Final = 1 << 1
PROCESSOR_IS_THREAD: Final = 1 << 2
NODE_IS_LEAF: Final = 1 << 3


def _node(flags: int, parent: int, acpi_id: int) -> bytes:
    return struct.pack("<BBHIIII", NODE_TYPE_PROCESSOR, NODE_SIZE, 0, flags, parent, acpi_id, 0)


def _nodes(topology: Topology) -> Iterator[tuple[int, int, int]]:
    """``(flags, parent offset, acpi id)`` of every node, parents first."""
    smp = topology.smp
    offset = HEADER_SIZE
    parents: dict[tuple[int, ...], int] = {}

    def emit(key: tuple[int, ...], flags: int, parent: int, acpi_id: int) -> tuple[int, int, int]:
        nonlocal offset
        parents[key] = offset
        offset += NODE_SIZE
        return flags, parent, acpi_id

    for slot in topology.slots:
        socket_key = (slot.socket_id,)
        if socket_key not in parents:
            yield emit(socket_key, PHYSICAL_PACKAGE | ACPI_PROCESSOR_ID_VALID, 0, slot.socket_id)
        parent_key: tuple[int, ...] = socket_key
        if smp.clusters > 1:
            cluster_key = (*socket_key, slot.cluster_id)
            if cluster_key not in parents:
                yield emit(cluster_key, ACPI_PROCESSOR_ID_VALID, parents[socket_key],
                           slot.cluster_id)
            parent_key = cluster_key
        leaf = ACPI_PROCESSOR_ID_VALID | NODE_IS_LEAF
        if smp.threads > 1:
            core_key = (*parent_key, -1, slot.core_id)
            if core_key not in parents:
                yield emit(core_key, ACPI_PROCESSOR_ID_VALID, parents[parent_key], slot.core_id)
            yield emit((slot.index, -2), leaf | PROCESSOR_IS_THREAD, parents[core_key],
                       slot.index)
        else:
            yield emit((slot.index, -2), leaf, parents[parent_key], slot.index)


def build_pptt(topology: Topology) -> bytes:
    """The PPTT of ``topology``."""
    body = b"".join(_node(*node) for node in _nodes(topology))
    return sdt(b"PPTT", PPTT_REVISION, body)
