"""vcpuhp's ``tcg-unicorn`` accelerator: Unicorn (QEMU's TCG as a library) runs the vCPUs.

One Unicorn AArch64 engine and one host thread per realized vCPU, all
sharing the machine's RAM buffer; per-thread translation contexts are
accounted for in a pool bounded by ``maxcpus``.
"""

from vcpuhp_tcg_unicorn.backend import UnicornBackend
from vcpuhp_tcg_unicorn.faults import VcpuFault
from vcpuhp_tcg_unicorn.pool import (
    TranslationContext,
    TranslationContextError,
    TranslationContextPool,
)
from vcpuhp_tcg_unicorn.vcpu import UnicornVcpu

__all__ = [
    "TranslationContext",
    "TranslationContextError",
    "TranslationContextPool",
    "UnicornBackend",
    "UnicornVcpu",
    "VcpuFault",
]
