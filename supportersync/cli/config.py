"""`supportersync init` and `supportersync config check`: set up, then prove the set-up works."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from supportersync.cli import app
from supportersync.cli.common import CONFIG_OPTION, JSON_OPTION, ORG_OPTION, fail, handle_errors, print_json, stdout
from supportersync.config import load_settings
from supportersync.config_template import target_path, write_template
from supportersync.configcheck import CheckResult, run_checks
from supportersync.errors import ConfigError, ExitCode
from supportersync.logs import setup_logging
from supportersync.plugins import make_plugin_manager

config_app = typer.Typer(help="Check the configuration and every connection.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check", epilog="Exit codes: 0 everything works; 2 a part failed (named in the output).")
@handle_errors
def check_command(
    org: str | None = ORG_OPTION,
    as_json: bool = JSON_OPTION,
    config: str | None = CONFIG_OPTION,
) -> None:
    """Validate the settings and test each connection, without syncing or writing anything.

    The database is opened read-only (no table created, no migration run); Classy is
    asked for a token and one record; each configured plugin runs its own check
    (Mailchimp: key, account, audience). No secret is ever printed.
    """
    results: list[CheckResult] = []
    try:
        settings = load_settings(config_path=config)
        setup_logging(settings.log_format, logging.WARNING)
        results.append(CheckResult("configuration", True, str(settings.config_path) if settings.config_path
                                   else "no config file (environment variables and defaults)"))
        if not as_json:
            _show(results[-1])
        if org:
            settings.org(org)  # an unknown --org is a configuration error, reported like the others
        plugins = make_plugin_manager(settings.load_plugins)
        for result in run_checks(settings, plugins, org_name=org):
            results.append(result)
            if not as_json:
                _show(result)
    except ConfigError as exc:
        results.append(CheckResult("configuration", False, str(exc)))
        if not as_json:
            _show(results[-1])
    failed = [r.part for r in results if not r.ok]
    if as_json:
        print_json({"ok": not failed, "failed": failed, "checks": [r.as_json() for r in results]})
    elif not failed:
        stdout.print("all checks passed", highlight=False)
    if failed:
        if as_json:
            raise typer.Exit(int(ExitCode.USAGE))
        raise fail(f"{', '.join(failed)} failed; see above.", ExitCode.USAGE)


def _show(result: CheckResult) -> None:
    if not result.ok:
        mark = "[bold red]FAILED[/]"
    else:
        mark = "[dim]--[/]    " if result.inactive else "[green]ok[/]    "
    stdout.print(f"{mark} [bold]{result.part}[/]: ", end="", highlight=False)
    stdout.print(result.detail, highlight=False, markup=False)
    for item in result.items:
        stdout.print(f"         {item}", highlight=False, markup=False)


@app.command("init")
@handle_errors
def init_command(
    path: Path | None = typer.Option(None, "--path", help="Write the template here (default: $SUPPORTERSYNC_CONFIG, "
                                     "else ~/.config/supportersync/config.toml)."),
) -> None:
    """Write a commented config file template (mode 600) and say what to do next.

    Never overwrites: if the file exists, nothing is written and the exit code is 2.
    """
    written = write_template(target_path(path))
    stdout.print(f"wrote {written} (mode 600; every setting commented out)", highlight=False)
    steps = [
        f"Edit {written}: set [classy] client_id, client_secret and organization_id (from Classy's "
        "developer settings), and [mailchimp] api_key and audience_id to use Mailchimp. Environment "
        "variables work too (docs/configuration.md).",
        "supportersync db upgrade        # create the tables",
        "supportersync config check      # test the database, Classy and Mailchimp; nothing is written",
        "supportersync run all --full    # the first sync",
        "supportersync cron              # print a crontab for this installation; install it with crontab",
    ]
    if path is not None and target_path(None) != written:
        steps.insert(1, f"export SUPPORTERSYNC_CONFIG={written}   # (or pass --config {written} to every command)")
    stdout.print("Next steps:", highlight=False)
    for number, step in enumerate(steps, start=1):
        stdout.print(f"  {number}. {step}", highlight=False, markup=False)
