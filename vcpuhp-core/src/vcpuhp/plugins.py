"""Plugin loading and backend discovery.

Backends are found by name in the ``vcpuhp.backends`` entry-point group
(read with stevedore) and through the ``vcpuhp_register_backends`` hook.
Plugins come from the ``vcpuhp.plugins`` group. A plugin or backend that fails
to import, or a ``vcpuhp_register_backends`` implementation that raises, is
recorded with its error and reported; it never stops start-up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import pluggy
from stevedore import ExtensionManager

from vcpuhp import hookspec
from vcpuhp.backend import AcceleratorBackend, Viability
from vcpuhp.errors import BackendNotFound, BackendNotViable

_log = logging.getLogger(__name__)

BACKEND_GROUP: Final = "vcpuhp.backends"
PLUGIN_GROUP: Final = "vcpuhp.plugins"
_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9-]*$")

#: Backends the project knows of, with the distribution that provides each.
KNOWN_BACKENDS: Final = {
    "null": "vcpuhp-null",
    "tcg-unicorn": "vcpuhp-tcg-unicorn",
    "kvm": "vcpuhp-kvm",
}


def install_hint(name: str) -> str:
    """How to install the known backend ``name``.

    Its distribution is not on any package index yet, so the hint installs it
    from a vcpuhp source checkout, where it lives in ``backends/<name>``.
    """
    return (f"pip install -e backends/{name} in a vcpuhp source checkout "
            f"({KNOWN_BACKENDS[name]} is not on PyPI yet)")


@dataclass(frozen=True)
class LoadFailure:
    """An entry point that could not be loaded."""

    group: str
    name: str
    error: str


class BackendRegistry:
    """Backend classes by name."""

    def __init__(self) -> None:
        self._classes: dict[str, type[AcceleratorBackend]] = {}
        self.failures: list[LoadFailure] = []

    def add(self, backend: type[AcceleratorBackend]) -> None:
        """Register ``backend`` under its ``name``; a bad or duplicate name is a ValueError."""
        if not (isinstance(backend, type) and issubclass(backend, AcceleratorBackend)):
            raise ValueError(f"{backend!r} is not an AcceleratorBackend subclass")
        name = getattr(backend, "name", None)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"backend {backend.__qualname__} has invalid name {name!r}: "
                "use lower-case letters, digits and '-'"
            )
        existing = self._classes.get(name)
        if existing is not None and existing is not backend:
            raise ValueError(
                f"backend name {name!r} is taken by {existing.__module__}.{existing.__qualname__}"
            )
        self._classes[name] = backend

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes)

    def get(self, name: str) -> type[AcceleratorBackend]:
        """The class registered as ``name``; :class:`BackendNotFound` lists the alternatives."""
        try:
            return self._classes[name]
        except KeyError:
            raise BackendNotFound(self._not_found_message(name)) from None

    def create(self, name: str, options: dict[str, str] | None = None) -> AcceleratorBackend:
        """Instantiate the viable backend ``name``.

        :class:`BackendNotViable` when the backend says it cannot run here, or
        when its ``viability()`` check itself raises (the error is in the message).
        """
        cls = self.get(name)
        try:
            viability = cls.viability()
        except Exception as exc:
            _log.warning("viability check of backend %r failed", name, exc_info=True)
            raise BackendNotViable(
                f"backend {name!r} cannot run here: viability check failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not viability.viable:
            raise BackendNotViable(f"backend {name!r} cannot run here: {viability.reason}")
        return cls(options)

    def describe(self) -> list[dict[str, Any]]:
        """Every registered backend with its viability and capabilities."""
        rows = []
        for name in self.names():
            cls = self._classes[name]
            try:
                viability = cls.viability()
            except Exception as exc:
                viability = Viability.no(f"viability check failed: {exc}")
            rows.append(
                {
                    "name": name,
                    "class": f"{cls.__module__}.{cls.__qualname__}",
                    "viable": viability.viable,
                    "reason": viability.reason,
                    "capabilities": cls.capabilities.as_dict(),
                }
            )
        return rows

    def _not_found_message(self, name: str) -> str:
        installed = ", ".join(self.names()) or "none"
        lines = [f"No vcpuhp backend named {name!r}. Installed backends: {installed}."]
        missing = {n: d for n, d in KNOWN_BACKENDS.items() if n not in self._classes}
        if missing:
            hints = "; ".join(f"{n}: {install_hint(n)}" for n in sorted(missing))
            lines.append(f"Known backends you can install: {hints}.")
        broken = [f for f in self.failures if f.group == BACKEND_GROUP]
        for failure in broken:
            lines.append(
                f"Backend {failure.name!r} is installed but failed to load: {failure.error}"
            )
        lines.append(f"Third-party backends register in the {BACKEND_GROUP!r} entry-point group.")
        return "\n".join(lines)


class PluginManager:
    """The pluggy manager with vcpuhp's hooks, plugins and backends loaded."""

    def __init__(self, plugins: Iterable[object] = (), *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspec.PROJECT)
        self.pm.add_hookspecs(hookspec)
        self.failures: list[LoadFailure] = []
        if load_entry_points:
            self._load_plugins()
        for plugin in plugins:
            self.pm.register(plugin)
        self.backends = BackendRegistry()
        self.backends.failures = self.failures
        if load_entry_points:
            self._load_backends()
        self._register_hook_backends()

    @property
    def hook(self) -> Any:
        """The hook caller (``manager.hook.vcpuhp_...(...)``)."""
        return self.pm.hook

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin object."""
        self.pm.register(plugin, name=name)

    def _record(self, group: str) -> Any:
        def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
            error = f"{type(exc).__name__}: {exc}"
            self.failures.append(LoadFailure(group, entry_point.name, error))

        return on_failure

    def _load_plugins(self) -> None:
        manager = ExtensionManager(
            namespace=PLUGIN_GROUP, invoke_on_load=False,
            on_load_failure_callback=self._record(PLUGIN_GROUP),
        )
        for extension in manager:
            try:
                self.pm.register(extension.plugin, name=extension.name)
            except Exception as exc:
                self.failures.append(LoadFailure(PLUGIN_GROUP, extension.name, str(exc)))

    def _load_backends(self) -> None:
        manager = ExtensionManager(
            namespace=BACKEND_GROUP, invoke_on_load=False,
            on_load_failure_callback=self._record(BACKEND_GROUP),
        )
        for extension in manager:
            try:
                self.backends.add(extension.plugin)
            except ValueError as exc:
                self.failures.append(LoadFailure(BACKEND_GROUP, extension.name, str(exc)))

    def _register_hook_backends(self) -> None:
        """Call every ``vcpuhp_register_backends`` implementation on its own, so one
        that raises is recorded as a :class:`LoadFailure` and the others still run."""
        kwargs = {"register": self.backends}
        # pluggy calls implementations last-registered first; keep that order.
        for impl in reversed(self.pm.hook.vcpuhp_register_backends.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                self.failures.append(LoadFailure(
                    PLUGIN_GROUP, impl.plugin_name,
                    "vcpuhp_register_backends must be a plain hookimpl, not a wrapper",
                ))
                continue
            try:
                impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception as exc:
                _log.warning("plugin %r: vcpuhp_register_backends failed", impl.plugin_name,
                             exc_info=True)
                self.failures.append(LoadFailure(
                    PLUGIN_GROUP, impl.plugin_name,
                    f"vcpuhp_register_backends failed: {type(exc).__name__}: {exc}",
                ))
