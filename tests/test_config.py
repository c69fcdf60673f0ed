from __future__ import annotations

import os
from pathlib import Path

import pytest

from supportersync.config import (
    DEFAULT_CLASSY_API_URL,
    Secret,
    default_database_path,
    load_settings,
)
from supportersync.errors import ConfigError


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_defaults_without_anything(isolated_env: Path) -> None:
    settings = load_settings(env={"HOME": str(isolated_env)})
    assert settings.database_url == f"sqlite:///{default_database_path({'HOME': str(isolated_env)})}"
    assert settings.config_path is None
    org = settings.org(None)
    assert org.classy.api_url == DEFAULT_CLASSY_API_URL
    with pytest.raises(ConfigError, match="SUPPORTERSYNC_CLASSY_CLIENT_ID"):
        org.classy.require(org.name)


def test_env_wins_over_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'database_url = "sqlite:///from-file.db"\n[classy]\norganization_id = 1\n'
                   'client_id = "file-id"\nrequests_per_minute = 600\n')
    settings = load_settings(env={"SUPPORTERSYNC_CONFIG": str(config),
                                  "SUPPORTERSYNC_DATABASE_URL": "sqlite:///from-env.db",
                                  "SUPPORTERSYNC_CLASSY_CLIENT_ID": "env-id"})
    org = settings.org(None)
    assert settings.database_url == "sqlite:///from-env.db"
    assert org.classy.client_id == "env-id"
    assert org.classy.requests_per_minute == 600
    assert org.classy.organization_id == 1


def test_several_organizations_inherit_defaults(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", """
[classy]
client_id = "agency"
client_secret = "shh"
requests_per_minute = 900

[organizations.alpha]
organization_id = 11

[organizations.beta]
organization_id = 22
client_id = "beta-own"
client_secret = "beta-secret"

[organizations.beta.mailchimp]
audience_id = "beta-list"
""")
    settings = load_settings(env={"SUPPORTERSYNC_CONFIG": str(config)})
    assert sorted(settings.organizations) == ["alpha", "beta"]
    alpha, beta = settings.org("alpha"), settings.org("beta")
    assert (alpha.organization_id, alpha.classy.client_id, alpha.classy.requests_per_minute) == (11, "agency", 900)
    assert (beta.organization_id, beta.classy.client_id) == (22, "beta-own")
    assert beta.mailchimp["audience_id"] == "beta-list"
    with pytest.raises(ConfigError, match="--org"):
        settings.org(None)
    with pytest.raises(ConfigError, match="gamma"):
        settings.org("gamma")


def test_secrets_never_show_in_repr() -> None:
    settings = load_settings(env={"SUPPORTERSYNC_CLASSY_CLIENT_SECRET": "topsecret",
                                  "SUPPORTERSYNC_MAILCHIMP_API_KEY": "abc-us21",
                                  "SUPPORTERSYNC_DATABASE_URL": "postgresql+psycopg://u:dbpass@h/db",
                                  "HOME": "/nonexistent"})
    text = repr(settings)
    assert "topsecret" not in text and "abc-us21" not in text
    assert "dbpass" not in settings.redacted_database_url
    assert settings.org(None).classy.client_secret == Secret("topsecret")


def test_file_with_a_secret_must_be_private(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[classy]\nclient_secret = "shh"\n', mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_settings(env={"SUPPORTERSYNC_CONFIG": str(config)})


@pytest.mark.parametrize(("text", "needle"), [
    ('[classy]\nrequests_per_minute = "lots"\n', "classy.requests_per_minute"),
    ('[classy]\nper_page = 500\n', "per_page"),
    ('[classy]\napi_url = "ftp://x"\n', "api_url"),
    ('[sync]\ndelete_guard_ratio = 3\n', "delete_guard_ratio"),
    ('[sink]\nx = 1\n', "sink"),
    ('database_url = "mysql://x/y"\n', "SUPPORTERSYNC_DATABASE_URL"),
    ("not toml at all = = =", "not valid TOML"),
])
def test_bad_settings_name_themselves(tmp_path: Path, text: str, needle: str) -> None:
    config = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(env={"SUPPORTERSYNC_CONFIG": str(config)})


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"SUPPORTERSYNC_CONFIG": str(tmp_path / "missing.toml")})


def test_bad_env_number_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SUPPORTERSYNC_CLASSY_ORGANIZATION_ID"):
        load_settings(env={"SUPPORTERSYNC_CLASSY_ORGANIZATION_ID": "twelve", "HOME": "/nonexistent"})


def test_load_plugins_env(tmp_path: Path) -> None:
    assert load_settings(env={"SUPPORTERSYNC_LOAD_PLUGINS": "", "HOME": "/x"}).load_plugins == ()
    assert load_settings(env={"SUPPORTERSYNC_LOAD_PLUGINS": "a, b", "HOME": "/x"}).load_plugins == ("a", "b")
    assert load_settings(env={"HOME": "/x"}).load_plugins is None
