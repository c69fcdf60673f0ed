"""`config check`: every connection a run needs, tested without syncing or writing anything.

The parts, in order: the database (opened read-only, its migration compared with the
code's, no table created, no migration run), Classy for each organization (a token,
then one record of one page to prove the organization is readable), then each
installed plugin that is configured, through its `check_plugin` hook. Each result says
what is wrong and never contains a secret.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from supportersync.classy.client import ClassyClient
from supportersync.config import OrgSettings, Settings, redact_url
from supportersync.db.engine import current_revision, first_line, head_revision
from supportersync.errors import SupportersyncError
from supportersync.hookspecs import PluginCheck, PluginContext, PluginStatus
from supportersync.plugins import Plugins

CHECK_MAX_RETRIES = 1
"""A check answers quickly: one retry, not the run's patient backoff."""
CHECK_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class CheckResult:
    part: str
    """What was checked: `database`, `classy`, `classy (org NAME)`, `plugin NAME`."""
    ok: bool
    detail: str
    items: tuple[str, ...] = ()
    """Finer steps (a plugin's own checks), already phrased."""
    inactive: bool = False
    """Not configured and not needed (e.g. a plugin nobody set up): shown, never a failure."""

    def as_json(self) -> dict[str, object]:
        return {"part": self.part, "ok": self.ok, "inactive": self.inactive, "detail": self.detail,
                "items": list(self.items)}


def run_checks(settings: Settings, plugins: Plugins, *, org_name: str | None = None,
               transport: httpx.BaseTransport | None = None) -> Iterator[CheckResult]:
    """Check the database, each organization's Classy access and each plugin; yield as they finish."""
    engine = read_only_engine(settings.database_url)
    try:
        yield check_database(engine, settings.database_url)
        organizations = [settings.org(org_name)] if org_name else list(settings.organizations.values())
        several = len(organizations) > 1
        for org in organizations:
            yield check_classy(org, transport=transport, label="classy" + (f" (org {org.name})" if several else ""))
        for org in organizations:
            yield from check_plugins(settings, org, engine, plugins, suffix=f" (org {org.name})" if several else "")
    finally:
        engine.dispose()


# -- database -------------------------------------------------------------------------


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened with mode=ro, PostgreSQL in read-only transactions.

    Lazy: nothing is opened (or created) until the first connection.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            return sa.create_engine(url)
        uri = Path(database).expanduser().absolute().as_uri() + "?mode=ro"
        return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=30,
                                                                              check_same_thread=False))
    options = parsed.query.get("options") or ""
    if isinstance(options, tuple):
        options = " ".join(options)
    options = (str(options) + " -c default_transaction_read_only=on").strip()
    return sa.create_engine(parsed.update_query_dict({"options": options}),
                            connect_args={"connect_timeout": 10}, pool_pre_ping=True)


def check_database(engine: Engine, url: str) -> CheckResult:
    shown = redact_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if not path.exists():
                return CheckResult("database", False, f"the SQLite file {path} does not exist yet. "
                                   "Run `supportersync db upgrade` to create it (or fix SUPPORTERSYNC_DATABASE_URL).")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        current = current_revision(engine)
    except Exception as exc:
        return CheckResult("database", False, f"cannot open {shown}: {first_line(exc)} "
                           "Check SUPPORTERSYNC_DATABASE_URL (server running, database exists, credentials).")
    head = head_revision()
    if current is None:
        return CheckResult("database", False, f"{shown} is reachable but has no supportersync tables yet. "
                           "Run `supportersync db upgrade`.")
    if current != head:
        return CheckResult("database", False, f"{shown} is at migration {current}; this version needs {head}. "
                           "Run `supportersync db upgrade` (or install the version that upgraded it).")
    return CheckResult("database", True, f"{shown}, schema {current} (read-only check)")


# -- Classy ---------------------------------------------------------------------------


def check_classy(org: OrgSettings, *, transport: httpx.BaseTransport | None = None,
                 label: str = "classy") -> CheckResult:
    try:
        org.classy.require(org.name)
    except SupportersyncError as exc:
        return CheckResult(label, False, str(exc))
    settings = replace(org.classy, max_retries=min(org.classy.max_retries, CHECK_MAX_RETRIES),
                       timeout_seconds=min(org.classy.timeout_seconds, CHECK_TIMEOUT_SECONDS))
    client = ClassyClient(settings, transport=transport)
    try:
        client.check_credentials()
        page = client.list_page("campaigns", page=1, per_page=1, sort="id:asc")
    except SupportersyncError as exc:
        return CheckResult(label, False, str(exc))
    except Exception as exc:  # never let a surprise hide the other checks
        return CheckResult(label, False, f"unexpected {type(exc).__name__} while talking to Classy: {exc}")
    finally:
        client.close()
    return CheckResult(label, True, f"token issued by {settings.token_url}; organization {settings.organization_id} "
                       f"readable ({page.total} campaign(s)) at {settings.api_url}")


# -- plugins --------------------------------------------------------------------------


def check_plugins(settings: Settings, org: OrgSettings, engine: Engine, plugins: Plugins, *,
                  suffix: str = "") -> Iterator[CheckResult]:
    context = PluginContext(settings=settings, org=org, engine=engine)
    for name, problem in sorted(plugins.load_errors.items()):
        wanted = settings.load_plugins is not None and name in settings.load_plugins
        yield CheckResult(f"plugin {name}{suffix}", not (wanted or _has_settings(name, settings, org)),
                          f"could not be loaded: {problem}")
    for name in plugins.names():
        yield _check_plugin(name, settings, org, context, plugins, f"plugin {name}{suffix}")


def _has_settings(name: str, settings: Settings, org: OrgSettings) -> bool:
    """Did the user set anything up for this plugin? Then it must work."""
    if name == "mailchimp":
        return any(value not in (None, "") for value in org.mailchimp.values())
    return bool(settings.plugins.get(name))


def _check_plugin(name: str, settings: Settings, org: OrgSettings, context: PluginContext, plugins: Plugins,
                  label: str) -> CheckResult:
    status_hook = plugins.implementation(name, "plugin_status")
    check_hook = plugins.implementation(name, "check_plugin")
    try:
        status = status_hook(context=context) if status_hook else None
        configured = status is None or not isinstance(status, PluginStatus) or status.configured
        if not configured and not _has_settings(name, settings, org):
            return CheckResult(label, True, f"inactive: {status.detail}" if status and status.detail else "inactive",
                               inactive=True)
        if check_hook is None:
            return CheckResult(label, True, "loaded (it offers no connection check)")
        report = check_hook(context=context)
    except Exception as exc:  # one plugin's bug must not hide the other checks
        return CheckResult(label, False, f"the check itself failed: {type(exc).__name__}: {exc}")
    if not isinstance(report, PluginCheck):
        return CheckResult(label, True, "loaded (its check returned nothing)")
    items = tuple(f"{'ok' if item.ok else 'FAILED'} {item.name}" + (f": {item.detail}" if item.detail else "")
                  for item in report.items)
    if report.ok:
        return CheckResult(label, True, "; ".join(i.name for i in report.items) + " ok" if report.items else "ok",
                           items)
    return CheckResult(label, False, report.problem or "the plugin's check failed", items)
