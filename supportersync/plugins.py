"""Finding plugins and calling them in isolation.

Plugins come from the entry-point group ``supportersync``; the built-in Mailchimp
plugin registers there through our own pyproject like any third-party one.
``SUPPORTERSYNC_LOAD_PLUGINS=a,b`` limits which load (empty: none). A plugin that
fails to import is reported, never fatal. The manager comes from
:func:`make_plugin_manager` and is passed around; nothing is built at import time.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from supportersync import hookspecs
from supportersync.hookspecs import PROJECT, PluginContext, PluginOutcome, SyncResult

log = logging.getLogger(__name__)

HOOK_NAMES = ("plugin_status", "check_plugin", "on_sync_completed", "run_plugin")


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    module: str


@dataclass
class Plugins:
    """A plugin manager plus what could not be loaded."""

    manager: pluggy.PluginManager
    load_errors: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.manager.list_name_plugin() if name is not None)

    def info(self) -> list[PluginInfo]:
        out = []
        for name in self.names():
            plugin = self.manager.get_plugin(name)
            hooks = sorted(
                impl.function.__name__
                for hook_name in HOOK_NAMES
                for impl in getattr(self.manager.hook, hook_name).get_hookimpls()
                if impl.plugin is plugin
            )
            out.append(PluginInfo(name, self.versions.get(name), hooks,
                                  getattr(plugin, "__name__", type(plugin).__name__)))
        return out

    def implementation(self, plugin_name: str, hook_name: str) -> Callable[..., Any] | None:
        plugin = self.manager.get_plugin(plugin_name)
        if plugin is None:
            return None
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            if impl.plugin is plugin:
                return impl.function
        return None


def make_plugin_manager(load: Iterable[str] | None = None, *, extra: Iterable[tuple[str, object]] = (),
                        entry_point_list: Iterable[EntryPoint] | None = None) -> Plugins:
    """Load plugins from entry points (`load` None: all; empty: none) plus `extra` (name, plugin)."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)
    wanted = None if load is None else set(load)
    eps = entry_point_list if entry_point_list is not None else entry_points(group=PROJECT)
    for ep in eps:
        if wanted is not None and ep.name not in wanted:
            continue
        if manager.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            manager.register(plugin, name=ep.name)
            plugins.versions[ep.name] = ep.dist.version if ep.dist else None
        except Exception as exc:  # an import error in one plugin must not stop the others
            plugins.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s could not be loaded: %s", ep.name, exc)
    for name, plugin in extra:
        if wanted is not None and name not in wanted:
            continue
        manager.register(plugin, name=name)
    if wanted:
        for name in wanted - set(plugins.names()) - set(plugins.load_errors):
            plugins.load_errors[name] = "not installed (named in SUPPORTERSYNC_LOAD_PLUGINS)"
    return plugins


@dataclass(frozen=True)
class PluginRun:
    """One plugin's outcome for one job, as recorded in sync_jobs.plugins."""

    name: str
    status: str
    duration_ms: int
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    details: tuple[dict[str, Any], ...] = ()
    message: str | None = None
    """The outcome's message, whatever the status (for a dry run: the plan)."""

    def as_record(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "duration_ms": self.duration_ms,
                "counts": self.counts, "error": self.error, "message": self.message,
                "details": list(self.details[:50])}


def call_isolated(plugins: Plugins, hook_name: str, only: str | None = None, **kwargs: Any) -> list[PluginRun]:
    """Call one hook on every plugin (or `only` one), each in isolation, timing each."""
    runs: list[PluginRun] = []
    for impl in reversed(getattr(plugins.manager.hook, hook_name).get_hookimpls()):
        name = plugins.manager.get_name(impl.plugin) or "?"
        if only is not None and name != only:
            continue
        started = time.monotonic()
        try:
            outcome = impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except Exception as exc:
            log.debug("plugin %s failed:\n%s", name, traceback.format_exc())
            runs.append(PluginRun(name, "failed", _ms(started), error=_describe(exc)))
            continue
        if outcome is None:
            runs.append(PluginRun(name, "succeeded", _ms(started)))
        elif isinstance(outcome, PluginOutcome):
            runs.append(PluginRun(name, outcome.status, _ms(started), dict(outcome.counts),
                                  outcome.message if outcome.status == "failed" else None,
                                  tuple(outcome.details), outcome.message))
        else:
            runs.append(PluginRun(name, "failed", _ms(started),
                                  error=f"returned {type(outcome).__name__}, expected PluginOutcome or None"))
    return runs


def notify_sync_completed(plugins: Plugins, result: SyncResult, context: PluginContext) -> list[PluginRun]:
    return call_isolated(plugins, "on_sync_completed", result=result, context=context)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: BaseException) -> str:
    from supportersync.errors import SupportersyncError

    if isinstance(exc, SupportersyncError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
