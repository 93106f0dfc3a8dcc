"""Pure parts of the tcg-unicorn backend: instruction decoding and the context pool."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from unicorn_testlib import require_unicorn

require_unicorn()

import a64asm as a  # noqa: E402

from vcpuhp.errors import BackendError  # noqa: E402
from vcpuhp_tcg_unicorn.decode import (  # noqa: E402
    HVC_0,
    WFI,
    hvc_immediate,
)
from vcpuhp_tcg_unicorn.pool import TranslationContextError, TranslationContextPool  # noqa: E402

# -- decoding ------------------------------------------------------------------------------


def test_hvc_immediate_is_decoded_and_other_words_are_not_hvc() -> None:
    assert hvc_immediate(HVC_0) == 0
    assert hvc_immediate(a.hvc(0x1234)) == 0x1234
    assert hvc_immediate(a.SMC_0) is None
    assert hvc_immediate(WFI) is None


GNU_AS = shutil.which("aarch64-linux-gnu-as")


@pytest.mark.requires_tool("aarch64-linux-gnu-as", "binutils-aarch64-linux-gnu")
def test_test_assembler_matches_gnu_as(tmp_path: Path) -> None:
    cases = {
        "movz x3, #0x1234, lsl #16": a.movz(3, 0x1234, 16),
        "movk x9, #0xbeef, lsl #48": a.movk(9, 0xBEEF, 48),
        "add x5, x5, #1": a.add_imm(5, 5, 1),
        "sub x6, x6, #1": a.sub_imm(6, 6, 1),
        "cmp x4, #17": a.cmp_imm(4, 17),
        "subs x4, x4, #1": a.subs_imm(4, 4, 1),
        "movz w3, #0x53": a.movz_w(3, 0x53),
        "add x9, x9, x0": a.add_reg(9, 9, 0),
        "ldr x11, [x9, #0x420]": a.ldr(11, 9, 0x420),
        "str x5, [x9, #0x408]": a.str64(5, 9, 0x408),
        "ldr w3, [x1, #0x18]": a.ldr32(3, 1, 0x18),
        "str w3, [x1, #0x100]": a.str32(3, 1, 0x100),
        "strb w3, [x1, #5]": a.strb(3, 1, 5),
        "hvc #0": a.hvc(0),
        "smc #0": a.SMC_0,
        "wfi": a.WFI,
        "eret": a.ERET,
        "isb": a.ISB,
        "msr daifclr, #2": a.msr_daifclr(2),
        "msr daifset, #15": a.msr_daifset(15),
        "mrs x10, S3_0_C12_C12_0": a.mrs(10, *a.ICC_IAR1_EL1),
        "msr S3_0_C12_C12_1, x10": a.msr(*a.ICC_EOIR1_EL1, 10),
        "msr S3_0_C12_C11_5, x3": a.msr(*a.ICC_SGI1R_EL1, 3),
        "msr vbar_el1, x2": a.msr(*a.VBAR_EL1, 2),
        "msr sctlr_el1, x3": a.msr(*a.SCTLR_EL1, 3),
        "msr tcr_el1, x4": a.msr(*a.TCR_EL1, 4),
        "msr ttbr0_el1, x5": a.msr(*a.TTBR0_EL1, 5),
        "msr mair_el1, x6": a.msr(*a.MAIR_EL1, 6),
        "mrs x10, esr_el1": a.mrs(10, *a.ESR_EL1),
        "mrs x10, elr_el1": a.mrs(10, *a.ELR_EL1),
        "mrs x10, far_el1": a.mrs(10, *a.FAR_EL1),
        "mrs x10, spsr_el1": a.mrs(10, *a.SPSR_EL1),
        "blr x1": a.blr(1),
        "mov sp, x3": a.mov_sp(3),
        "dsb sy": a.DSB_SY,
        "tlbi vmalle1": a.TLBI_VMALLE1,
        "tlbi vmalle1is": a.TLBI_VMALLE1IS,
        "dsb ish": a.DSB_ISH,
        "dsb ishst": a.DSB_ISHST,
        "ret": a.RET,
        "ic ivau, x19": a.ic_ivau(19),
        "dc cvau, x19": a.dc_cvau(19),
        "dc zva, x1": a.dc_zva(1),
        "tlbi vae1is, x1": a.tlbi_vae1is(1),
        "tlbi vae1, x1": a.tlbi_vae1(1),
        "ldtr x2, [x1, #8]": a.ldtr(2, 1, 8),
        "sttr x2, [x1]": a.sttr(2, 1),
        "ldur x2, [x1, #-8]": a.ldur(2, 1, -8),
        "str x2, [x1], #16": a.str_post(2, 1, 16),
        "ldp x2, x3, [x1, #16]!": a.ldp_pre(2, 3, 1, 16),
        "ldr x2, [x1, x4, lsl #3]": a.ldr_lsl3(2, 1, 4),
    }
    source = tmp_path / "t.s"
    source.write_text("".join(f"{line}\n" for line in cases))
    obj = tmp_path / "t.o"
    subprocess.run([GNU_AS, "-o", str(obj), str(source)], check=True)
    objcopy = shutil.which("aarch64-linux-gnu-objcopy")
    assert objcopy is not None
    raw = tmp_path / "t.bin"
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    words = [int.from_bytes(raw.read_bytes()[4 * n:4 * n + 4], "little") for n in range(len(cases))]
    for (line, ours), theirs in zip(cases.items(), words, strict=True):
        assert ours == theirs, f"{line}: ours {ours:#010x}, GNU as {theirs:#010x}"


# -- the translation-context pool ----------------------------------------------------------------


def test_pool_counts_registrations_and_never_grows_past_capacity() -> None:
    pool = TranslationContextPool(2)
    first = pool.register(0, engine_id=10, tb_size=1 << 20)
    second = pool.register(3, engine_id=11, tb_size=1 << 20)
    assert (pool.registered, pool.free, pool.peak) == (2, 0, 2)
    full = r"all 2 \(maxcpus\) are registered, by CPUs 0, 3"
    with pytest.raises(TranslationContextError, match=full):
        pool.register(1, engine_id=12, tb_size=1 << 20)
    assert isinstance(TranslationContextError("x"), BackendError)
    pool.unregister(first)
    third = pool.register(1, engine_id=12, tb_size=1 << 20)
    assert third.serial == 3
    assert [c.cpu_index for c in pool.contexts()] == [1, 3]
    pool.unregister(second)
    pool.unregister(third)
    assert pool.stats() == {
        "contexts_capacity": 2, "contexts_registered": 0, "contexts_free": 2, "peak": 2,
        "total_registrations": 3, "total_unregistrations": 3,
    }


def test_pool_refuses_a_second_context_per_cpu_and_stale_unregistration() -> None:
    pool = TranslationContextPool(4)
    context = pool.register(2, engine_id=1, tb_size=4096)
    with pytest.raises(TranslationContextError, match="CPU 2 already holds"):
        pool.register(2, engine_id=2, tb_size=4096)
    pool.unregister(context)
    with pytest.raises(TranslationContextError, match="is not registered"):
        pool.unregister(context)
    assert pool.stats()["total_unregistrations"] == 1
    with pytest.raises(ValueError, match="must be positive"):
        TranslationContextPool(0)


def test_pool_is_exact_under_concurrent_register_and_unregister() -> None:
    pool = TranslationContextPool(8)

    def churn(cpu: int) -> None:
        for _ in range(500):
            pool.unregister(pool.register(cpu, engine_id=cpu, tb_size=1))

    threads = [threading.Thread(target=churn, args=(cpu,)) for cpu in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = pool.stats()
    assert stats["contexts_registered"] == 0
    assert stats["total_registrations"] == stats["total_unregistrations"] == 4000
    assert stats["peak"] <= 8
