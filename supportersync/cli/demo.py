"""`supportersync demo`: the whole product on simulated accounts, in under a minute."""

from __future__ import annotations

from pathlib import Path

import typer
import typer.main

from supportersync.cli import app
from supportersync.cli.common import fail, handle_errors, stdout
from supportersync.demo import Demo, DemoFailed, Step, prepare_folder
from supportersync.errors import ExitCode


class _Console:
    """Renders the demo's progress on stdout."""

    def section(self, title: str) -> None:
        stdout.print(f"\n[bold]{title}[/]", highlight=False)

    def step(self, step: Step, *, show_output: bool) -> None:
        verdict = "ok" if step.exit_code == 0 else f"exit {step.exit_code}"
        stdout.print(f"[cyan]$ {step.command}[/]  [dim]({verdict}, {step.seconds:.1f} s)[/]", highlight=False)
        text = step.stdout.rstrip()
        if show_output and text:
            typer.echo(text)
        if step.stderr.strip() and (step.exit_code != 0 or show_output):
            typer.echo(step.stderr.rstrip(), err=step.exit_code != 0)

    def note(self, text: str) -> None:
        stdout.print(text, highlight=False, markup=False)


@app.command("demo")
@handle_errors
def demo_command(
    folder: Path | None = typer.Option(None, "--dir", help="Put the demo database and config here (default: a new "
                                       "temporary folder, printed)."),
) -> None:
    """See everything work without any account: simulated Classy and Mailchimp on loopback.

    Runs the real commands (db upgrade, config check, a full sync with statistics and
    the Mailchimp push, an incremental sync after changes at the source, jobs, stats,
    status) against a demo SQLite database. Your own configuration and database are
    never read or written.
    """
    target = prepare_folder(folder)
    stdout.print("[bold]supportersync demo[/]: the whole product on simulated accounts, no credentials needed.",
                 highlight=False)
    demo = Demo(target, _Console(), commands=typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    try:
        result = demo.run()
    except DemoFailed as exc:
        raise fail(str(exc), ExitCode.FAILED) from None
    db_url = f"sqlite:///{result.database}"
    stdout.print(f"\n[bold]Done in {result.seconds:.0f} s.[/] The demo database is {result.database}", highlight=False)
    for line in (
        "Look around in it (the simulators are gone, so `run` would fail, but everything else works):",
        f"  export SUPPORTERSYNC_CONFIG={result.config} SUPPORTERSYNC_DATABASE_URL={db_url}",
        "  supportersync jobs list; supportersync status; sqlite3 " + str(result.database),
        f"Remove it with: rm -r {result.folder}",
        "Your own account next: `supportersync init` (see docs/getting-started.md).",
    ):
        stdout.print(line, highlight=False, markup=False)
