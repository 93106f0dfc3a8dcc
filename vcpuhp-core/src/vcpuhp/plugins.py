"""Plugin loading and backend discovery.

Backends are found by name in the ``vcpuhp.backends`` entry-point group
and through the ``vcpuhp_register_backends`` hook. A
backend that fails to load is recorded and reported when it is asked for
(and by ``vcpuhp backends``); the others still work.

Plugins come from the ``vcpuhp.plugins`` group, selected and configured per
machine by :class:`~vcpuhp.plugin_settings.PluginSettings`. Loading fails
*closed*: a plugin that cannot be imported, that implements a hook vcpuhp does
not have (pluggy's ``check_pending``; a misspelt ``vcpuhp_cpu_pluged``), whose
entry-point name differs from its class's ``name``, or that rejects its
options is recorded as a :class:`LoadFailure`, and a machine refuses to be
built with it (:meth:`PluginManager.check`) unless it is disabled by name.
``vcpuhp plugins`` lists what was loaded, from where, with which options, and
what failed.

An entry point may name a module or object with hook implementations (it
takes no options), or a class, instantiated once per machine as
``cls(options)`` with its options (``Mapping[str, str]``); a class may
declare ``name`` (it must equal the entry-point name) and ``options`` (the
option names it takes, each with a one-line description, for listings).
Functions named ``vcpuhp_*`` are hook implementations whether or not they are
marked with :data:`~vcpuhp.hookspec.hookimpl` (as pytest does for
``pytest_*``), so a misspelt one is caught.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Final

import pluggy

from vcpuhp import hookspec
from vcpuhp.backend import AcceleratorBackend, Viability
from vcpuhp.errors import BackendNotFound, BackendNotViable, PluginError
from vcpuhp.plugin_settings import PluginSettings

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


@dataclass(frozen=True)
class LoadFailure:
    """An entry point (or plugin) that could not be loaded."""

    group: str
    name: str
    error: str
    origin: str = ""
    """Where it comes from: ``entry point NAME = VALUE in distribution D V``."""
    hint: str = ""
    """What the user can do about it (default: how to disable the plugin)."""

    def advice(self) -> str:
        """:attr:`hint`, or how to disable the plugin."""
        return self.hint or disable_hint(self.name)


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as a machine's plugin manager sees it (``vcpuhp plugins``)."""

    name: str
    status: str
    """``loaded``, ``disabled`` (by name), ``not enabled`` (autoload off) or ``failed``."""
    entry_point: str = ""
    """``NAME = module:attr`` for an installed plugin; empty for one passed in from Python."""
    distribution: str = ""
    """The distribution that installs it, with its version."""
    module: str = ""
    """The file its code comes from."""
    options: Mapping[str, str] = field(default_factory=dict)
    hooks: tuple[str, ...] = ()
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "status": self.status, "entry_point": self.entry_point,
                "distribution": self.distribution, "module": self.module,
                "options": dict(self.options), "hooks": list(self.hooks), "error": self.error}


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
            hints = "; ".join(f"{n}: pip install {d}" for n, d in sorted(missing.items()))
            lines.append(f"Known backends you can install: {hints}.")
        broken = [f for f in self.failures if f.group == BACKEND_GROUP]
        for failure in broken:
            lines.append(
                f"Backend {failure.name!r} is installed but failed to load: {failure.error}"
            )
        lines.append(f"Third-party backends register in the {BACKEND_GROUP!r} entry-point group.")
        return "\n".join(lines)


class _Pluggy(pluggy.PluginManager):
    """pluggy's manager, taking every ``vcpuhp_*`` routine as a hook implementation."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(hookspec.PROJECT + "_"):
            try:
                found = inspect.getattr_static(plugin, name)
            except AttributeError:
                return None
            if inspect.isroutine(found) or isinstance(found, (staticmethod, classmethod)):
                return {}
        return opts


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspec) if n.startswith(hookspec.PROJECT + "_"))


def _distribution(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return ""
    return f"{dist.metadata['Name']} {dist.version}"


def _module_file(obj: object) -> str:
    try:
        return inspect.getsourcefile(obj if inspect.ismodule(obj) or inspect.isclass(obj)
                                     else type(obj)) or ""
    except TypeError:
        return ""


def disable_hint(name: str) -> str:
    """How a user disables plugin ``name`` (CLI, machine file, Python)."""
    return (f"disable it with --no-plugin {name}, with disable = [\"{name}\"] under [plugins] "
            f"in the machine file, or PluginSettings(disable={{\"{name}\"}})")


class PluginManager:
    """The pluggy manager with vcpuhp's hooks, the machine's plugins and the backends loaded.

    :param plugins: plugin objects to register besides the installed ones
        (an unknown hook in one of them raises :class:`PluginError` at once).
    :param load_entry_points: ``False`` reads no entry point at all (no
        installed plugin and no installed backend).
    :param settings: which installed plugins to load, with which options
        (default: every installed plugin, without options).
    """

    def __init__(self, plugins: Iterable[object] = (), *, load_entry_points: bool = True,
                 settings: PluginSettings | None = None) -> None:
        self.settings = settings if settings is not None else PluginSettings()
        self.pm = _Pluggy(hookspec.PROJECT)
        self.pm.add_hookspecs(hookspec)
        self.failures: list[LoadFailure] = []
        self._infos: dict[str, PluginInfo] = {}
        self._origins: dict[str, str] = {}
        if load_entry_points:
            self._load_plugins()
        for plugin in plugins:
            self._register_object(plugin)
        self._check_unknown_hooks(strict_for=set())
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
        """Register one more plugin object; :class:`PluginError` if it implements
        a hook vcpuhp does not have (it is not registered then)."""
        registered = self._register_object(plugin, name)
        self._check_unknown_hooks(strict_for={registered})

    # -- what is loaded ---------------------------------------------------------------

    def plugin_failures(self) -> list[LoadFailure]:
        """Plugins that failed to load (backends' failures are not among them)."""
        return [f for f in self.failures if f.group == PLUGIN_GROUP]

    def check(self) -> None:
        """Fail closed: :class:`PluginError` if any plugin failed to load.

        The message names each plugin, where it comes from, what went wrong,
        and how to disable it.
        """
        failures = self.plugin_failures()
        if not failures:
            return
        lines = [f"{len(failures)} plugin(s) failed to load; a machine does not start "
                 "without a plugin it was configured to load:"]
        for failure in failures:
            origin = f" ({failure.origin})" if failure.origin else ""
            lines.append(f"  plugin {failure.name!r}{origin}: {failure.error}; "
                         f"{failure.advice()}")
        raise PluginError("\n".join(lines))

    def infos(self) -> list[PluginInfo]:
        """Every plugin this manager knows of, loaded or not, sorted by name."""
        rows = dict(self._infos)
        for failure in self.plugin_failures():
            known = rows.get(failure.name)
            if known is None or known.status != "failed":
                rows[failure.name] = PluginInfo(
                    failure.name, "failed", entry_point=known.entry_point if known else "",
                    distribution=known.distribution if known else "",
                    module=known.module if known else "",
                    options=self.settings.options_for(failure.name), error=failure.error,
                )
        for name, plugin in self.pm.list_name_plugin():
            if name not in rows and plugin is not None:
                rows[name] = PluginInfo(name, "loaded", module=_module_file(plugin),
                                        hooks=self._hooks_of(plugin))
        return [rows[name] for name in sorted(rows)]

    def _hooks_of(self, plugin: object) -> tuple[str, ...]:
        callers = self.pm.get_hookcallers(plugin) or []
        return tuple(sorted(caller.name for caller in callers))

    # -- loading ------------------------------------------------------------------------

    def _fail(self, name: str, error: str, origin: str = "", hint: str = "") -> None:
        self.failures.append(LoadFailure(PLUGIN_GROUP, name, error, origin, hint))

    def _register_object(self, plugin: object, name: str | None = None) -> str:
        try:
            registered = self.pm.register(plugin, name=name)
        except Exception as exc:
            raise PluginError(f"plugin {name or plugin!r} cannot be registered: {exc}") from exc
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is blocked")
        return registered

    def _load_plugins(self) -> None:
        settings = self.settings
        installed: dict[str, metadata.EntryPoint] = {}
        for entry_point in metadata.entry_points(group=PLUGIN_GROUP):
            installed.setdefault(entry_point.name, entry_point)
        for name in sorted(installed):
            entry_point = installed[name]
            origin = f"entry point {name} = {entry_point.value}"
            dist = _distribution(entry_point)
            if dist:
                origin += f" in distribution {dist}"
            base = PluginInfo(name, "", entry_point=f"{name} = {entry_point.value}",
                              distribution=dist, options=settings.options_for(name))
            if not settings.wants(name):
                status = "disabled" if name in settings.disable else "not enabled"
                self._infos[name] = _with(base, status=status)
                continue
            self._load_one(entry_point, base, origin)
        names = ", ".join(sorted(installed)) or "none"
        fix = ("check the name, or install the plugin (plugins register in the "
               f"{PLUGIN_GROUP!r} entry-point group)")
        for name in sorted(set(settings.enable) - set(installed)):
            self._fail(name, f"no plugin named {name!r} is installed (installed: {names})",
                       hint=fix)
        for name in sorted(settings.disable - set(installed)):
            self._fail(name, f"cannot disable {name!r}: no plugin of that name is installed "
                             f"(installed: {names})", hint=fix)

    def _load_one(self, entry_point: metadata.EntryPoint, base: PluginInfo, origin: str) -> None:
        name = entry_point.name
        options = dict(self.settings.options_for(name))
        try:
            loaded = entry_point.load()
        except Exception as exc:
            _log.warning("plugin %r failed to import", name, exc_info=True)
            self._fail(name, f"cannot be imported: {type(exc).__name__}: {exc}", origin)
            self._infos[name] = _with(base, status="failed")
            return
        base = _with(base, module=_module_file(loaded))
        try:
            plugin = _instantiate(name, loaded, options)
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(name, f"{type(exc).__name__}: {exc}", origin)
            self._infos[name] = _with(base, status="failed")
            return
        self._infos[name] = _with(base, status="loaded", hooks=self._hooks_of(plugin))
        self._origins[name] = origin

    def _check_unknown_hooks(self, strict_for: set[str]) -> None:
        """pluggy's ``check_pending``, per plugin: an implementation of a hook
        vcpuhp does not have unregisters its plugin and is a load failure."""
        known = _hook_names()
        offenders: dict[str, list[str]] = {}
        for hook_name in dir(self.pm.hook):
            if hook_name.startswith("_"):
                continue
            caller = getattr(self.pm.hook, hook_name)
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if not impl.opts.get("optionalhook"):
                    offenders.setdefault(impl.plugin_name, []).append(hook_name)
        for plugin_name, hooks in sorted(offenders.items()):
            problems = []
            for hook in sorted(hooks):
                close = difflib.get_close_matches(hook, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"{hook!r}{hint}")
            error = (f"implements unknown hook(s) {', '.join(problems)}; vcpuhp's hooks are: "
                     f"{', '.join(known)}")
            self.pm.unregister(name=plugin_name)
            info = self._infos.get(plugin_name)
            if info is not None:
                self._infos[plugin_name] = _with(info, status="failed", hooks=())
            if info is None or plugin_name in strict_for:
                raise PluginError(f"plugin {plugin_name!r} {error}")
            self._fail(plugin_name, error, self._origins.get(plugin_name, ""))

    def _load_backends(self) -> None:
        seen: set[str] = set()
        for entry_point in metadata.entry_points(group=BACKEND_GROUP):
            name = entry_point.name
            if name in seen:
                continue  # the first one on sys.path wins, as for imports
            seen.add(name)
            origin = f"entry point {name} = {entry_point.value}"
            try:
                backend = entry_point.load()
            except Exception as exc:
                _log.warning("backend %r failed to import", name, exc_info=True)
                self.failures.append(LoadFailure(BACKEND_GROUP, name,
                                                 f"{type(exc).__name__}: {exc}", origin))
                continue
            declared = getattr(backend, "name", None)
            if declared != name:
                self.failures.append(LoadFailure(
                    BACKEND_GROUP, name,
                    f"entry point {name!r} names {entry_point.value}, whose name is "
                    f"{declared!r}: the entry-point name and the backend's name must be the "
                    "same", origin,
                ))
                continue
            try:
                self.backends.add(backend)
            except ValueError as exc:
                self.failures.append(LoadFailure(BACKEND_GROUP, name, str(exc), origin))

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


def _with(info: PluginInfo, **changes: Any) -> PluginInfo:
    return replace(info, **changes)


def _instantiate(name: str, loaded: object, options: Mapping[str, str]) -> object:
    """The plugin object for entry point ``name``: a class is instantiated with its options."""
    if inspect.isclass(loaded):
        declared = getattr(loaded, "name", name)
        if declared != name:
            raise PluginError(
                f"entry point {name!r} names class {loaded.__qualname__}, whose name is "
                f"{declared!r}: the entry-point name and the plugin's name must be the same"
            )
        takes = getattr(loaded, "options", None)
        if isinstance(takes, Mapping):
            unknown = sorted(set(options) - set(takes))
            if unknown:
                raise PluginError(
                    f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(takes))}"
                )
        factory: Any = loaded
        return factory(options)
    if options:
        raise PluginError(
            f"takes no options (it is a module or object, not a class), but got "
            f"{', '.join(sorted(options))}"
        )
    return loaded
