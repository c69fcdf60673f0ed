"""`supportersync cron`: a crontab for this installation and configuration.

Cron starts jobs with almost no environment (PATH=/usr/bin:/bin, no login shell, no
virtual environment), so the crontab names the executable by its absolute path and
sets what the jobs need. Secrets are never written into it: a setting that exists only
as a secret environment variable in the current shell is named in a warning instead.

The schedule is the one crontab.example documents: an incremental sync every 15
minutes, a daily full sync and statistics recompute, a weekly `jobs prune`. With
several organizations each gets its own lines, a few minutes apart.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from supportersync import __version__
from supportersync.config import Settings, _url_has_password
from supportersync.config_template import SECRET_ENV_VARS, env_vars

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
PRUNE_AFTER = "90d"


@dataclass(frozen=True)
class CronPlan:
    text: str
    warnings: tuple[str, ...]


def find_executable() -> list[str]:
    """The absolute command that runs *this* installation's supportersync.

    The console script next to the running interpreter (a virtual environment's bin/),
    else the interpreter itself with `-m supportersync`. Symlinks are kept: resolving a
    venv's python would step out of the venv.
    """
    python = Path(sys.executable).absolute()
    script = python.parent / "supportersync"
    if script.is_file():
        return [str(script)]
    return [str(python), "-m", "supportersync"]


def render_crontab(settings: Settings, *, env: Mapping[str, str], executable: Sequence[str],
                   user: str = "", host: str = "", log_file: Path | None = None,
                   org_names: Sequence[str] | None = None) -> CronPlan:
    command = " ".join(_cron_quote(part) for part in executable)
    bin_dir = str(Path(executable[0]).parent)
    warnings: list[str] = []
    lines = [
        f"# supportersync crontab{f' for {user}@{host}' if user and host else ''}, "
        f"written by `supportersync cron` (supportersync {__version__}).",
        "# Install: save it and load it with `crontab FILE` (this replaces your crontab), or paste the",
        "# lines below into `crontab -e`. Check it later with `supportersync status --max-age 1h`.",
        "#",
        "# Environment: cron runs jobs with a minimal environment (PATH=/usr/bin:/bin, no login shell,",
        "# no virtual environment), so the commands use absolute paths and the settings they need are",
        "# set below. Secrets belong in the config file (chmod 600), never in a crontab.",
        "#",
        "# Output: a successful run prints nothing. A failure prints a short explanation on stderr",
        "# and exits non-zero (docs/operations.md lists the exit codes); cron mails any output to",
        "# MAILTO (needs a mail transfer agent).",
    ]
    if log_file is not None:
        lines.append(f"# Here every job appends its output to {log_file} instead.")
    else:
        lines.append("# To keep output in a file instead, run `supportersync cron --log-file PATH`; for journald, put")
        lines.append("# `systemd-cat -t supportersync` before each command (and SUPPORTERSYNC_LOG_FORMAT=json).")
    lines += ["", "SHELL=/bin/sh", f"PATH={bin_dir}:{SYSTEM_PATH}" if bin_dir not in SYSTEM_PATH.split(":")
              else f"PATH={SYSTEM_PATH}"]
    if settings.config_path is not None:
        # Environment lines are taken literally (% is special only in commands).
        lines.append(f"SUPPORTERSYNC_CONFIG={Path(settings.config_path).absolute()}")
    for name in env_vars():
        value = env.get(name)
        if not value or name == "SUPPORTERSYNC_CONFIG":
            continue
        if name in SECRET_ENV_VARS or (name == "SUPPORTERSYNC_DATABASE_URL" and _url_has_password(value)):
            warnings.append(f"{name} is set in this shell but cron will not see it, and a secret does not "
                            "belong in a crontab: put it in the config file (chmod 600).")
            continue
        lines.append(f"{name}={value}")
    lines += ["# MAILTO=ops@example.org", ""]

    redirect = f" >>{_cron_quote(str(log_file))} 2>&1" if log_file is not None else ""
    names = list(org_names) if org_names is not None else _org_names(settings)
    for index, name in enumerate(names):
        org = f" --org {_cron_quote(name)}" if name is not None else ""
        label = f" (organization {name})" if name is not None else ""
        full_minute = 5 + 20 * index
        stats_minute = full_minute + 45
        lines += [
            f"# Every 15 minutes: incremental sync{label}; exit 5 (skipped) means the previous run still held the lock.",
            f"{_minutes(index)} * * * * {command} run all{org}{redirect}",
            f"# Daily: full sync{label}, which also finds records deleted at the source.",
            f"{full_minute % 60} {3 + full_minute // 60} * * * {command} run all --full{org}{redirect}",
            f"# Daily: recompute every supporter's statistics{label} (engagement changes with time alone).",
            f"{stats_minute % 60} {3 + stats_minute // 60} * * * {command} stats recompute --all{org}{redirect}",
            "",
        ]
    lines += [
        f"# Weekly, Sunday: keep {PRUNE_AFTER} of job history (all organizations).",
        f"30 4 * * 0 {command} jobs prune --older-than {PRUNE_AFTER}{redirect}",
    ]
    return CronPlan("\n".join(lines) + "\n", tuple(warnings))


def _org_names(settings: Settings) -> list[str | None]:
    names = sorted(settings.organizations)
    if len(names) <= 1:
        return [None]  # one organization: no --org needed
    return names  # type: ignore[return-value]


def _minutes(index: int) -> str:
    offset = index % 15
    return "*/15" if offset == 0 else f"{offset}-59/15"


def _cron_quote(value: str) -> str:
    if value and all(ch.isalnum() or ch in "/._-+:=@," for ch in value):
        return value
    return "'" + value.replace("'", "'\\''").replace("%", "\\%") + "'"
