"""Resource descriptors (ACPI 6.5 section 6.4) and ``ResourceTemplate``."""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod

from vcpuhp.acpi.aml.data import Buffer
from vcpuhp.acpi.aml.encoding import AmlEncodingError

END_TAG = b"\x79\x00"
"""Small End Tag; a zero checksum means "treat as correct"."""


class Descriptor(ABC):
    """One resource descriptor."""

    @abstractmethod
    def encode(self) -> bytes:
        """The descriptor's bytes."""


class Memory32Fixed(Descriptor):
    """``Memory32Fixed (ReadWrite|ReadOnly, base, length)``: large item 0x86."""

    def __init__(self, base: int, length: int, *, writeable: bool = True) -> None:
        for what, value in (("base", base), ("length", length)):
            if not 0 <= value <= 0xFFFF_FFFF:
                raise AmlEncodingError(f"Memory32Fixed {what} {value:#x} does not fit 32 bits")
        self.base = base
        self.length = length
        self.writeable = writeable

    def encode(self) -> bytes:
        return struct.pack("<BHBII", 0x86, 9, int(self.writeable), self.base, self.length)


class Interrupt(Descriptor):
    """``Interrupt (consumer, Level|Edge, ActiveHigh|ActiveLow, Exclusive|Shared) {gsivs}``.

    The Extended Interrupt descriptor (large item 0x89), without a resource source.
    """

    def __init__(
        self,
        *gsivs: int,
        consumer: bool = True,
        edge: bool = False,
        active_low: bool = False,
        shared: bool = False,
        wake: bool = False,
    ) -> None:
        if not 1 <= len(gsivs) <= 255:
            raise AmlEncodingError(f"Interrupt lists 1-255 interrupts, not {len(gsivs)}")
        for gsiv in gsivs:
            if not 0 <= gsiv <= 0xFFFF_FFFF:
                raise AmlEncodingError(f"interrupt number {gsiv:#x} does not fit 32 bits")
        self.gsivs = gsivs
        self.flags = (
            int(consumer) | (int(edge) << 1) | (int(active_low) << 2)
            | (int(shared) << 3) | (int(wake) << 4)
        )

    def encode(self) -> bytes:
        length = 2 + 4 * len(self.gsivs)
        head = struct.pack("<BHBB", 0x89, length, self.flags, len(self.gsivs))
        return head + b"".join(struct.pack("<I", gsiv) for gsiv in self.gsivs)


class ResourceTemplate(Buffer):
    """``ResourceTemplate () {descriptors}``: a Buffer ending in an End Tag."""

    def __init__(self, *descriptors: Descriptor) -> None:
        self.descriptors = descriptors
        super().__init__(b"".join(d.encode() for d in descriptors) + END_TAG)
