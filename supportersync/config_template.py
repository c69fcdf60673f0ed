"""`supportersync init`: the commented config file template, written once and never overwritten.

Everything in the template is commented out, so the written file changes nothing until
the user edits it; docs/configuration.md documents the same settings (a test holds the
two together). The file is created with mode 600 because it is where the secrets go
when they do not come from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from supportersync.config import (
    _CLASSY_KEYS,
    _MAILCHIMP_ENV,
    _SYNC_KEYS,
    ENV_PREFIX,
    default_config_path,
)
from supportersync.errors import ConfigError

TEMPLATE = """\
# supportersync configuration (TOML). Written by `supportersync init`.
#
# Precedence: environment variables first (SUPPORTERSYNC_...), then this file, then the
# defaults shown below. Every setting is documented in docs/configuration.md.
# This file may hold secrets, so it must stay readable by its owner alone (chmod 600);
# supportersync refuses to read a file holding a secret that others can read.
# After editing: `supportersync db upgrade`, then `supportersync config check`.

# Where the local copy lives (env SUPPORTERSYNC_DATABASE_URL). Default: a SQLite file at
# $XDG_DATA_HOME/supportersync/supportersync.db (~/.local/share/supportersync/supportersync.db).
# PostgreSQL: "postgresql+psycopg://USER:PASSWORD@HOST:5432/DBNAME"
# database_url = "sqlite:////var/lib/supportersync/supportersync.db"

# Log lines on stderr: "text" or "json" (for journald or a log collector); env SUPPORTERSYNC_LOG_FORMAT.
# log_format = "text"

# Plugins to load (env SUPPORTERSYNC_LOAD_PLUGINS=a,b). Left out: every installed plugin; []: none.
# load_plugins = ["mailchimp"]

[classy]
# The API application's credentials, from Classy's developer settings, and the organization to sync.
# Env: SUPPORTERSYNC_CLASSY_CLIENT_ID, SUPPORTERSYNC_CLASSY_CLIENT_SECRET, SUPPORTERSYNC_CLASSY_ORGANIZATION_ID.
# client_id = ""
# client_secret = ""
# organization_id = 0
# api_url = "https://api.classy.org/2.0"
# token_url = "https://api.classy.org/oauth2/auth"
# Our own request budget, under Classy's 1,800 requests a minute per application.
# requests_per_minute = 1200
# timeout_seconds = 60.0
# max_retries = 6
# per_page = 100
# Pages fetched at once during a full sync (1-16), within the budget.
# concurrency = 4

[sync]
# The cursor never moves past run start minus this lag, so late commits at Classy are read next time.
# safety_lag_seconds = 120
# Extra overlap re-read before the cursor on every incremental run.
# lookback_seconds = 0
# A full sync that sees fewer than this share of the rows we hold marks nothing deleted and fails.
# delete_guard_ratio = 0.5
# heartbeat_seconds = 15
# A running job whose heartbeat is older than this is reported stale (jobs list, status).
# stale_after_seconds = 900

[mailchimp]
# The built-in Mailchimp plugin stays inactive until both are set.
# Env: SUPPORTERSYNC_MAILCHIMP_API_KEY, SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID (and _API_URL to override the URL).
# api_key = ""
# audience_id = ""
# The other [mailchimp] settings (statuses, tags, merge fields) are in docs/configuration.md.

# Several Classy organizations in one database: one table each, inheriting [classy] and
# [mailchimp]; choose one with `--org NAME`.
# [organizations.my-charity]
# organization_id = 0
# client_id = ""
# client_secret = ""
# [organizations.my-charity.mailchimp]
# audience_id = ""

# Segment bands (value tiers, engagement, frequency): the defaults and their rules are in
# docs/configuration.md. For example:
# [[segments.value_tiers]]
# name = "Prospect"
# none = true
# [[segments.value_tiers]]
# name = "Donor"
# min = 0
# max = 1000
# [[segments.value_tiers]]
# name = "Major"
# min = 1000
"""


def env_vars() -> tuple[str, ...]:
    """Every environment variable that supportersync's settings read."""
    names = [f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}DATABASE_URL", f"{ENV_PREFIX}LOG_FORMAT",
             f"{ENV_PREFIX}LOAD_PLUGINS"]
    names += [f"{ENV_PREFIX}CLASSY_{key.upper()}" for key in _CLASSY_KEYS]
    names += [f"{ENV_PREFIX}SYNC_{key.upper()}" for key in _SYNC_KEYS]
    names += list(_MAILCHIMP_ENV.values())
    return tuple(names)


SECRET_ENV_VARS = (f"{ENV_PREFIX}CLASSY_CLIENT_SECRET", f"{ENV_PREFIX}MAILCHIMP_API_KEY")
"""Never written anywhere by us (the database URL is secret only when it holds a password)."""


def target_path(path: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """Where `init` writes: --path, else $SUPPORTERSYNC_CONFIG, else the default location."""
    env = os.environ if env is None else env
    if path:
        return Path(path).expanduser()
    if env.get(f"{ENV_PREFIX}CONFIG"):
        return Path(env[f"{ENV_PREFIX}CONFIG"]).expanduser()
    return default_config_path(env)


def write_template(path: Path) -> Path:
    """Create `path` with the template, mode 600; refuse (ConfigError) if anything is there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"Cannot create the folder {path.parent}: {exc.strerror}.",
                          hint="Choose another place with --path.") from None
    try:
        # O_EXCL: refusing and creating are one step, so a file that appears meanwhile is never overwritten.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; init never overwrites a config file.",
                          hint="Edit it, move it away first, or write the template elsewhere with --path.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot create {path}: {exc.strerror}.", hint="Choose another place with --path.") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(TEMPLATE)
    os.chmod(path, 0o600)  # the umask may have narrowed it further; never wider
    return path
