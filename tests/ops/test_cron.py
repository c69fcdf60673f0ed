"""`supportersync cron` and crontab.example: absolute paths, no secrets, commands that exist."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from supportersync.cli import app
from supportersync.config import load_settings
from supportersync.cronfile import find_executable, render_crontab

ROOT = Path(__file__).resolve().parents[2]


def cron_commands(text: str) -> list[list[str]]:
    """The supportersync arguments of every job line (environment and comments skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" in line.split(" ", 1)[0]:
            continue
        fields = line.split(None, 5)
        words = shlex.split(fields[5])
        words = words[: next((i for i, w in enumerate(words) if w.startswith(">")), len(words))]
        start = next(i for i, w in enumerate(words) if w.endswith("supportersync"))
        out.append(words[start + 1:])
    return out


def parses(args: list[str]) -> None:
    """The command exists and takes these options (`--help` stops it before it runs)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"{args}: {result.output}"


def installed(args: list[str]) -> bool:
    return args[0] in typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_crontab_for_this_installation(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[classy]\norganization_id = 5\n")
    monkeypatch.setenv("SUPPORTERSYNC_CONFIG", str(config))
    monkeypatch.setenv("SUPPORTERSYNC_LOG_FORMAT", "json")
    monkeypatch.setenv("SUPPORTERSYNC_CLASSY_CLIENT_SECRET", "do-not-print-me")
    result = cli("cron")
    assert result.exit_code == 0, result.output
    text = result.stdout
    executable = find_executable()
    assert Path(executable[0]).is_absolute()
    assert f"SUPPORTERSYNC_CONFIG={config}" in text
    assert "SUPPORTERSYNC_LOG_FORMAT=json" in text
    assert "do-not-print-me" not in result.output
    assert "SUPPORTERSYNC_CLASSY_CLIENT_SECRET is set in this shell but cron will not see it" in result.stderr
    jobs = [line for line in text.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    command = " ".join(executable)
    assert jobs == [
        f"*/15 * * * * {command} run all",
        f"5 3 * * * {command} run all --full",
        f"50 3 * * * {command} stats recompute --all",
        f"30 4 * * 0 {command} jobs prune --older-than 90d",
    ]


def test_several_organizations_get_their_own_lines(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[organizations.north]\norganization_id = 1\n[organizations.south]\norganization_id = 2\n")
    settings = load_settings(env={}, config_path=config)
    plan = render_crontab(settings, env={}, executable=["/opt/ss/bin/supportersync"],
                          log_file=Path("/var/log/supportersync.log"))
    commands = cron_commands(plan.text)
    assert ["run", "all", "--org", "north"] in commands and ["run", "all", "--org", "south"] in commands
    assert "1-59/15 * * * * /opt/ss/bin/supportersync run all --org south >>/var/log/supportersync.log 2>&1" \
        in plan.text
    assert "25 3 * * * /opt/ss/bin/supportersync run all --full --org south" in plan.text
    assert "PATH=/opt/ss/bin:/usr/local/bin:/usr/bin:/bin" in plan.text


def test_percent_signs_are_escaped_in_commands(tmp_path: Path) -> None:
    settings = load_settings(env={}, config_path=None)
    plan = render_crontab(settings, env={}, executable=["/opt/100%/bin/supportersync"])
    assert "'/opt/100\\%/bin/supportersync' run all" in plan.text


def test_every_generated_command_parses(tmp_path: Path) -> None:
    settings = load_settings(env={}, config_path=None)
    for args in cron_commands(render_crontab(settings, env={}, executable=["/x/supportersync"]).text):
        if installed(args):
            parses(args)


def test_crontab_example_uses_commands_that_exist() -> None:
    text = (ROOT / "crontab.example").read_text()
    commands = cron_commands(text)
    assert ["run", "all"] in commands or ["run", "all", "--incremental"] in commands
    assert any(c[:3] == ["run", "all", "--full"] for c in commands)
    assert any(c[:3] == ["stats", "recompute", "--all"] for c in commands)
    assert ["jobs", "prune", "--older-than", "90d"] in commands
    for args in commands:
        if installed(args):
            parses(args)
    for word in ("PATH=", "SUPPORTERSYNC_CONFIG=", "MAILTO", "stderr"):
        assert word in text


def test_parses_rejects_unknown_options() -> None:
    with pytest.raises(AssertionError, match="No such option"):
        parses(["jobs", "prune", "--older", "90d"])
    with pytest.raises(AssertionError):
        parses(["jobs", "purge"])
