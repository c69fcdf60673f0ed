"""`supportersync init`: a commented template, mode 600, never overwriting."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from supportersync.config import _CLASSY_KEYS, _SYNC_KEYS, load_settings
from supportersync.config_template import TEMPLATE


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_the_template_to_the_default_path(isolated_env: Path, cli) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.output
    target = isolated_env / ".config" / "supportersync" / "config.toml"
    assert target.read_text() == TEMPLATE
    assert mode(target) == 0o600
    assert f"wrote {target}" in result.stdout
    assert "supportersync db upgrade" in result.stdout and "supportersync config check" in result.stdout
    # Everything is commented out: the file loads and changes nothing.
    settings = load_settings()
    assert settings.config_path == target
    assert settings == load_settings(config_path=target)


def test_init_refuses_to_overwrite(isolated_env: Path, cli) -> None:
    target = isolated_env / ".config" / "supportersync" / "config.toml"
    target.parent.mkdir(parents=True)
    target.write_text("# mine\n")
    result = cli("init")
    assert result.exit_code == 2
    assert f"{target} already exists; init never overwrites a config file." in result.stderr
    assert target.read_text() == "# mine\n"


def test_init_path_and_env(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "etc" / "supportersync.toml"
    result = cli("init", "--path", str(chosen))
    assert result.exit_code == 0
    assert mode(chosen) == 0o600
    assert f"export SUPPORTERSYNC_CONFIG={chosen}" in result.stdout
    assert cli("init", "--path", str(chosen)).exit_code == 2

    via_env = tmp_path / "env.toml"
    monkeypatch.setenv("SUPPORTERSYNC_CONFIG", str(via_env))
    assert cli("init").exit_code == 0
    assert via_env.read_text() == TEMPLATE


def test_the_template_names_every_setting() -> None:
    for key in (*_CLASSY_KEYS, *_SYNC_KEYS, "database_url", "log_format", "load_plugins", "api_key", "audience_id"):
        assert f"# {key} = " in TEMPLATE, key


def test_an_edited_template_loads(tmp_path: Path) -> None:
    text = TEMPLATE.replace('# client_id = ""', 'client_id = "abc"').replace("# organization_id = 0",
                                                                          "organization_id = 42")
    path = tmp_path / "c.toml"
    path.write_text(text)
    org = load_settings(env={}, config_path=path).org(None)
    assert (org.classy.client_id, org.classy.organization_id) == ("abc", 42)
