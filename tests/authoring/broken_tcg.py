"""A tcg-unicorn backend that breaks *pause*: stop/cont do nothing, so the guest runs on."""

from __future__ import annotations

from vcpuhp_tcg_unicorn.backend import UnicornBackend


class IgnoresPause(UnicornBackend):
    """Breaks *pause*: ``pause`` returns at once and every vCPU keeps executing."""

    name = "broken-ignores-pause"

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass
