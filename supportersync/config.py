"""Settings: environment variables first, then an optional TOML file, then defaults.

Validated once by :func:`load_settings` into frozen dataclasses. Every error names the
setting (its environment variable or TOML key) and what to do.

Secrets (Classy client secret, Mailchimp API key, database passwords) are wrapped in
:class:`Secret`, whose `repr`/`str` never show the value. A TOML file that holds a
secret must be readable by its owner alone.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from supportersync.errors import ConfigError

ENV_PREFIX = "SUPPORTERSYNC_"
DEFAULT_CLASSY_API_URL = "https://api.classy.org/2.0"
DEFAULT_CLASSY_TOKEN_URL = "https://api.classy.org/oauth2/auth"
DEFAULT_ORG = "default"


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "supportersync" / "config.toml"


def default_database_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(base) / "supportersync" / "supportersync.db"


class Secret:
    """A value that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ClassySettings:
    client_id: str | None = None
    client_secret: Secret | None = None
    organization_id: int | None = None
    api_url: str = DEFAULT_CLASSY_API_URL
    token_url: str = DEFAULT_CLASSY_TOKEN_URL
    requests_per_minute: int = 1200
    """Our own budget, well under Classy's 1,800/minute per application, so we never cause 429s."""
    timeout_seconds: float = 60.0
    max_retries: int = 6
    per_page: int = 100
    concurrency: int = 4
    """Pages fetched at once during a full sync (within the request budget)."""

    def require(self, org_name: str) -> None:
        """Stop before touching anything when a credential is missing."""
        where = "" if org_name == DEFAULT_ORG else f" (organization {org_name!r}: [organizations.{org_name}])"
        missing = [
            name
            for name, value in (
                ("SUPPORTERSYNC_CLASSY_CLIENT_ID / classy.client_id", self.client_id),
                ("SUPPORTERSYNC_CLASSY_CLIENT_SECRET / classy.client_secret", self.client_secret),
                ("SUPPORTERSYNC_CLASSY_ORGANIZATION_ID / classy.organization_id", self.organization_id),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"Classy is not configured{where}: missing {', '.join(missing)}.",
                hint="Set the environment variables or the config file (see docs/configuration.md), "
                "or try everything without an account: `supportersync demo`.",
            )


@dataclass(frozen=True)
class SyncSettings:
    safety_lag_seconds: int = 120
    """The cursor never moves past run start minus this lag (late commits at the source)."""
    lookback_seconds: int = 0
    """Extra overlap re-read before the cursor on every incremental run."""
    delete_guard_ratio: float = 0.5
    """A full sync that sees fewer than this share of the rows we hold marks nothing deleted and fails."""
    heartbeat_seconds: int = 15
    stale_after_seconds: int = 900
    """A running job whose heartbeat is older than this is reported as stale."""


@dataclass(frozen=True)
class OrgSettings:
    name: str
    classy: ClassySettings
    mailchimp: Mapping[str, Any] = field(default_factory=dict)
    """Raw [mailchimp] settings for this organization; the plugin validates them."""

    @property
    def organization_id(self) -> int:
        self.classy.require(self.name)
        assert self.classy.organization_id is not None
        return self.classy.organization_id


@dataclass(frozen=True)
class Settings:
    database_url: str
    config_path: Path | None
    organizations: Mapping[str, OrgSettings]
    sync: SyncSettings = field(default_factory=SyncSettings)
    segments: Mapping[str, Any] = field(default_factory=dict)
    """Raw [segments] table; supportersync.stats validates it."""
    plugins: Mapping[str, Any] = field(default_factory=dict)
    """Raw per-plugin tables ([plugins.NAME]) for third-party plugins."""
    load_plugins: tuple[str, ...] | None = None
    """None: every installed plugin; otherwise only these (empty: none)."""
    log_format: str = "text"
    database_password: Secret | None = None

    def org(self, name: str | None = None) -> OrgSettings:
        """The organization to work on: `--org NAME`, else the only one configured."""
        if name:
            try:
                return self.organizations[name]
            except KeyError:
                known = ", ".join(sorted(self.organizations)) or "none"
                raise ConfigError(
                    f"Unknown organization {name!r} (--org); configured: {known}.",
                    hint="Add it as [organizations.NAME] in the config file.",
                ) from None
        if len(self.organizations) == 1:
            return next(iter(self.organizations.values()))
        if DEFAULT_ORG in self.organizations and self.organizations[DEFAULT_ORG].classy.organization_id:
            return self.organizations[DEFAULT_ORG]
        names = ", ".join(sorted(n for n in self.organizations if n != DEFAULT_ORG))
        raise ConfigError(f"Several organizations are configured ({names}): pick one with --org NAME.")

    @property
    def redacted_database_url(self) -> str:
        return redact_url(self.database_url)


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid database URL>"


# -- loading -------------------------------------------------------------------

_CLASSY_KEYS: dict[str, type] = {
    "client_id": str,
    "client_secret": Secret,
    "organization_id": int,
    "api_url": str,
    "token_url": str,
    "requests_per_minute": int,
    "timeout_seconds": float,
    "max_retries": int,
    "per_page": int,
    "concurrency": int,
}
_SYNC_KEYS: dict[str, type] = {
    "safety_lag_seconds": int,
    "lookback_seconds": int,
    "delete_guard_ratio": float,
    "heartbeat_seconds": int,
    "stale_after_seconds": int,
}
_MAILCHIMP_ENV = {"api_key": "SUPPORTERSYNC_MAILCHIMP_API_KEY",
                  "audience_id": "SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID",
                  "api_url": "SUPPORTERSYNC_MAILCHIMP_API_URL"}
_TOP_KEYS = {"database_url", "log_format", "classy", "sync", "organizations", "segments", "mailchimp",
             "plugins", "load_plugins"}
_SECRET_KEYS = {"client_secret", "api_key", "database_url"}


def load_settings(env: Mapping[str, str] | None = None, config_path: Path | str | None = None) -> Settings:
    """Read env, then the TOML file, then defaults; raise ConfigError naming the bad setting."""
    env = dict(os.environ if env is None else env)
    path, explicit = _config_location(env, config_path)
    data: dict[str, Any] = {}
    if path is not None and path.exists():
        data = _read_toml(path)
    elif explicit:
        raise ConfigError(
            f"Config file {path} (SUPPORTERSYNC_CONFIG) does not exist.",
            hint="Create it with `supportersync init` or fix the path.",
        )
    else:
        path = None

    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"Unknown key(s) {', '.join(sorted(unknown))} in {path}.",
                          hint="See docs/configuration.md for the settings that exist.")

    database_url = env.get("SUPPORTERSYNC_DATABASE_URL") or data.get("database_url")
    if not database_url:
        database_url = f"sqlite:///{default_database_path(env)}"
    database_url = str(database_url)
    try:
        parsed_url = make_url(database_url)
    except Exception:
        raise ConfigError(
            "SUPPORTERSYNC_DATABASE_URL / database_url is not a valid SQLAlchemy URL.",
            hint="Use sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/dbname.",
        ) from None
    if parsed_url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"SUPPORTERSYNC_DATABASE_URL / database_url uses {parsed_url.get_backend_name()!r}; "
            "supportersync supports sqlite and postgresql.",
        )
    if parsed_url.get_backend_name() == "postgresql" and parsed_url.get_driver_name() not in ("psycopg",):
        # psycopg (3) is what we install; psycopg2 URLs would fail later with an import error.
        database_url = parsed_url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)

    classy_base = _section(data, "classy", _CLASSY_KEYS, "classy")
    classy_base = {**classy_base, **_env_section(env, "SUPPORTERSYNC_CLASSY_", _CLASSY_KEYS)}
    sync = SyncSettings(**{**_section(data, "sync", _SYNC_KEYS, "sync"),
                           **_env_section(env, "SUPPORTERSYNC_SYNC_", _SYNC_KEYS)})
    _check_sync(sync)

    mailchimp_base = dict(data.get("mailchimp") or {})
    for key, var in _MAILCHIMP_ENV.items():
        if env.get(var):
            mailchimp_base[key] = env[var]
    if mailchimp_base.get("api_key") is not None and not isinstance(mailchimp_base["api_key"], Secret):
        mailchimp_base["api_key"] = Secret(str(mailchimp_base["api_key"]))

    organizations: dict[str, OrgSettings] = {}
    default_classy = _classy(classy_base, "classy")
    organizations[DEFAULT_ORG] = OrgSettings(DEFAULT_ORG, default_classy, mailchimp_base)
    named = data.get("organizations") or {}
    if not isinstance(named, dict):
        raise ConfigError("[organizations] must be a table of tables, e.g. [organizations.my-charity].")
    for name, table in named.items():
        if not isinstance(table, dict):
            raise ConfigError(f"[organizations.{name}] must be a table.")
        own = {k: v for k, v in table.items() if k != "mailchimp"}
        unknown = set(own) - set(_CLASSY_KEYS)
        if unknown:
            raise ConfigError(f"Unknown key(s) {', '.join(sorted(unknown))} in [organizations.{name}].")
        values = {**classy_base, **_typed(own, _CLASSY_KEYS, f"organizations.{name}")}
        mailchimp = {**mailchimp_base, **dict(table.get("mailchimp") or {})}
        if mailchimp.get("api_key") is not None and not isinstance(mailchimp["api_key"], Secret):
            mailchimp["api_key"] = Secret(str(mailchimp["api_key"]))
        organizations[name] = OrgSettings(name, _classy(values, f"organizations.{name}"), mailchimp)
    if named and not default_classy.organization_id:
        # The top-level [classy] only provides defaults that named organizations inherit.
        del organizations[DEFAULT_ORG]

    load_plugins: tuple[str, ...] | None = None
    if "SUPPORTERSYNC_LOAD_PLUGINS" in env:
        load_plugins = tuple(p.strip() for p in env["SUPPORTERSYNC_LOAD_PLUGINS"].split(",") if p.strip())
    elif "load_plugins" in data:
        load_plugins = tuple(str(p) for p in data["load_plugins"])

    log_format = env.get("SUPPORTERSYNC_LOG_FORMAT") or data.get("log_format") or "text"
    if log_format not in ("text", "json"):
        raise ConfigError(f"SUPPORTERSYNC_LOG_FORMAT / log_format must be text or json, not {log_format!r}.")

    return Settings(
        database_url=database_url,
        config_path=path,
        organizations=organizations,
        sync=sync,
        segments=dict(data.get("segments") or {}),
        plugins=dict(data.get("plugins") or {}),
        load_plugins=load_plugins,
        log_format=log_format,
        database_password=Secret(parsed_url.password) if parsed_url.password else None,
    )


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)


def _config_location(env: Mapping[str, str], config_path: Path | str | None) -> tuple[Path | None, bool]:
    if config_path is not None:
        return Path(config_path).expanduser(), True
    if env.get("SUPPORTERSYNC_CONFIG"):
        return Path(env["SUPPORTERSYNC_CONFIG"]).expanduser(), True
    return default_config_path(env), False


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror}.") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from None
    if _holds_secret(data) and os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"Config file {path} holds a secret but others can read it.",
                hint=f"Run `chmod 600 {path}`, or move the secrets to environment variables.",
            )
    return data


def _holds_secret(data: Any) -> bool:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _SECRET_KEYS and key != "database_url" and value:
                return True
            if key == "database_url" and isinstance(value, str) and _url_has_password(value):
                return True
            if _holds_secret(value):
                return True
    return False


def _url_has_password(url: str) -> bool:
    try:
        return bool(make_url(url).password)
    except Exception:
        return False


def _section(data: Mapping[str, Any], name: str, keys: Mapping[str, type], where: str) -> dict[str, Any]:
    table = data.get(name) or {}
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] in the config file must be a table.")
    unknown = set(table) - set(keys)
    if unknown:
        raise ConfigError(f"Unknown key(s) {', '.join(sorted(unknown))} in [{name}].",
                          hint="See docs/configuration.md.")
    return _typed(table, keys, where)


def _typed(table: Mapping[str, Any], keys: Mapping[str, type], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        out[key] = _convert(value, keys[key], f"{where}.{key}")
    return out


def _env_section(env: Mapping[str, str], prefix: str, keys: Mapping[str, type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in keys.items():
        var = prefix + key.upper()
        if env.get(var):
            out[key] = _convert(env[var], kind, var)
    return out


def _convert(value: Any, kind: type, name: str) -> Any:
    try:
        if kind is Secret:
            return value if isinstance(value, Secret) else Secret(str(value))
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a{'n integer' if kind is int else ' number' if kind is float else ' string'}, "
                          f"got {value!r}.") from None


def _classy(values: Mapping[str, Any], where: str) -> ClassySettings:
    settings = ClassySettings(**values)
    for key in ("api_url", "token_url"):
        url = getattr(settings, key)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.{key} (SUPPORTERSYNC_CLASSY_{key.upper()}) must be an http(s) URL, got {url!r}.")
    if settings.requests_per_minute < 0:
        raise ConfigError(f"{where}.requests_per_minute must be 0 (no budget) or positive.")
    if not 1 <= settings.per_page <= 100:
        raise ConfigError(f"{where}.per_page must be between 1 and 100 (Classy's maximum).")
    if not 1 <= settings.concurrency <= 16:
        raise ConfigError(f"{where}.concurrency must be between 1 and 16.")
    if settings.timeout_seconds <= 0:
        raise ConfigError(f"{where}.timeout_seconds must be positive.")
    if settings.max_retries < 0:
        raise ConfigError(f"{where}.max_retries must be 0 or more.")
    return settings


def _check_sync(sync: SyncSettings) -> None:
    if sync.safety_lag_seconds < 0 or sync.lookback_seconds < 0:
        raise ConfigError("sync.safety_lag_seconds and sync.lookback_seconds must be 0 or more.")
    if not 0 <= sync.delete_guard_ratio <= 1:
        raise ConfigError("sync.delete_guard_ratio must be between 0 and 1 (e.g. 0.5).")
    if sync.heartbeat_seconds <= 0 or sync.stale_after_seconds <= sync.heartbeat_seconds:
        raise ConfigError("sync.stale_after_seconds must be larger than sync.heartbeat_seconds (> 0).")
