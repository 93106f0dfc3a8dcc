"""The CPU a vCPU presents to its guest: the ID registers it reads, as this machine has it.

Unicorn's CPU models are QEMU's (``cortex-a57``, ``cortex-a72``, ``max``),
built with EL2 and EL3 and without a GIC, and their ID registers say so. The
machine is QEMU ``virt`` without ``virtualization`` and ``secure``: the guest
runs at EL1 with no hypervisor and no secure firmware (``hvc`` is the PSCI
conduit, ``smc`` is UNDEFINED), in Non-secure state, with a GICv3 whose CPU
interface system registers the backend emulates. A guest that reads the ID
registers and believes them must find every feature they announce usable,
so the engine answers ``MRS`` of these registers (at EL1; at EL0 they stay
UNDEFINED, for the OS to emulate) with the values below, as KVM answers them
for a host CPU: Unicorn's own value with the fields of :data:`PRESENTED`
replaced.

What the ``max`` model loses, and why:

* **SVE** (``ID_AA64PFR0_EL1.SVE``): its registers and instructions trap to
  EL3 (``CPTR_EL3.EZ`` is 0) and this machine has no EL3 to take the trap:
  they are UNDEFINED, as on a CPU without SVE.
* **Pointer authentication** (``ID_AA64ISAR1_EL1.APA/API/GPA/GPI``): the key
  registers trap to EL3 (``SCR_EL3.APK`` is 0), likewise UNDEFINED. Its
  hint-space instructions (``paciasp``, ``autiasp``) are NOPs, as the
  architecture says for a CPU without it; the non-hint ones (``pacia``,
  ``retaa``) are not made UNDEFINED (Unicorn decodes them by its own view
  of the CPU), a known divergence no guest that reads the ID registers meets.

What every model gains:

* **``CTR_EL0.IDC``** (no data cache clean to the Point of Unification is
  needed for instruction-to-data coherence): true of the emulation, which has
  no data cache, and it spares the guest a ``DC CVAU`` per cache line before
  each ``IC IVAU`` -- both trap to the backend (see
  :mod:`~vcpuhp_tcg_unicorn.coherence`). ``DIC`` stays 0: each engine keeps
  its own translations, so ``IC IVAU`` is what tells the others that code
  changed. ``CTR_EL0`` is also readable at EL0 when ``SCTLR_EL1.UCT`` allows
  it, and reads the same there.

Every engine of a machine has the same model, so every CPU -- cold-booted or
hot-plugged -- presents the same features (Linux refuses a secondary CPU
whose features differ from the boot CPU's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

Sysreg = tuple[int, int, int, int, int]
"""``(op0, op1, CRn, CRm, op2)``."""

ID_AA64PFR0_EL1: Final = (3, 0, 0, 4, 0)
ID_AA64ISAR1_EL1: Final = (3, 0, 0, 6, 1)
ID_PFR1_EL1: Final = (3, 0, 0, 1, 1)
CTR_EL0: Final = (3, 3, 0, 0, 1)
EL0_READABLE: Final = frozenset({CTR_EL0})
"""Of the registers presented, those EL0 may read (when ``SCTLR_EL1.UCT`` is set)."""


@dataclass(frozen=True)
class PresentedField:
    """A 4-bit ID register field and the value the guest reads in it."""

    register: Sysreg
    register_name: str
    name: str
    shift: int
    value: int
    why: str
    width: int = 4

    def apply(self, register_value: int) -> int:
        """``register_value`` with this field set to :attr:`value`."""
        mask = ((1 << self.width) - 1) << self.shift
        return (register_value & ~mask) | (self.value << self.shift)


PRESENTED: Final = (
    PresentedField(ID_AA64PFR0_EL1, "ID_AA64PFR0_EL1", "EL2", 8, 0,
                   "no EL2: the guest runs at EL1 and hvc is the PSCI conduit"),
    PresentedField(ID_AA64PFR0_EL1, "ID_AA64PFR0_EL1", "EL3", 12, 0,
                   "no EL3: smc is UNDEFINED and the guest is Non-secure"),
    PresentedField(ID_AA64PFR0_EL1, "ID_AA64PFR0_EL1", "GIC", 24, 1,
                   "the GICv3 CPU interface system registers (ICC_*), emulated"),
    PresentedField(ID_AA64PFR0_EL1, "ID_AA64PFR0_EL1", "SVE", 32, 0,
                   "SVE traps to EL3, which this machine does not have"),
    PresentedField(ID_AA64ISAR1_EL1, "ID_AA64ISAR1_EL1", "APA", 4, 0,
                   "pointer authentication keys trap to EL3"),
    PresentedField(ID_AA64ISAR1_EL1, "ID_AA64ISAR1_EL1", "API", 8, 0,
                   "pointer authentication keys trap to EL3"),
    PresentedField(ID_AA64ISAR1_EL1, "ID_AA64ISAR1_EL1", "GPA", 24, 0,
                   "generic pointer authentication keys trap to EL3"),
    PresentedField(ID_AA64ISAR1_EL1, "ID_AA64ISAR1_EL1", "GPI", 28, 0,
                   "generic pointer authentication keys trap to EL3"),
    PresentedField(ID_PFR1_EL1, "ID_PFR1_EL1", "Security", 4, 0,
                   "no EL3 (the AArch32 view)"),
    PresentedField(ID_PFR1_EL1, "ID_PFR1_EL1", "Virtualization", 12, 0,
                   "no EL2 (the AArch32 view)"),
    PresentedField(ID_PFR1_EL1, "ID_PFR1_EL1", "GIC", 28, 1,
                   "the GICv3 CPU interface system registers (the AArch32 view)"),
    PresentedField(CTR_EL0, "CTR_EL0", "IDC", 28, 1,
                   "no data cache: IC IVAU needs no DC CVAU before it", width=1),
)
"""Every field the machine presents differently from Unicorn's CPU model."""


def presented_id_registers(read: Callable[[Sysreg], int]) -> Mapping[Sysreg, int]:
    """What the guest reads from each register :data:`PRESENTED` changes.

    ``read`` gives Unicorn's own value of a register (``uc_reg_read`` of the CP register).
    """
    values: dict[Sysreg, int] = {}
    for field in PRESENTED:
        current = values.get(field.register)
        if current is None:
            current = read(field.register)
        values[field.register] = field.apply(current)
    return values


__all__ = ["CTR_EL0", "EL0_READABLE", "ID_AA64ISAR1_EL1", "ID_AA64PFR0_EL1", "ID_PFR1_EL1",
           "PRESENTED", "PresentedField", "Sysreg", "presented_id_registers"]
