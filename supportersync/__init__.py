"""supportersync: keep a SQL copy of Classy data current, and let plugins react."""

from __future__ import annotations

__version__ = "0.1.0"

from supportersync.hookspecs import (  # noqa: E402  re-exported for plugin authors
    PluginCheck,
    PluginCheckItem,
    PluginContext,
    PluginOutcome,
    PluginStatus,
    SyncResult,
    hookimpl,
)

__all__ = [
    "PluginCheck",
    "PluginCheckItem",
    "PluginContext",
    "PluginOutcome",
    "PluginStatus",
    "SyncResult",
    "__version__",
    "hookimpl",
]
