"""[mailchimp] settings: env over TOML, validated into a frozen dataclass, never showing the key."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from supportersync.config import Secret, load_settings
from supportersync.errors import ConfigError
from supportersync.mailchimp.settings import is_configured, load_mailchimp_settings

KEY = "0123456789abcdef0123456789abcdef-us21"


def raw(**values: Any) -> dict[str, Any]:
    return {"api_key": Secret(KEY), "audience_id": "abc123", **values}


def test_defaults() -> None:
    s = load_mailchimp_settings(raw())
    assert s.datacenter == "us21"
    assert s.api_url == "https://us21.api.mailchimp.com/3.0"
    assert (s.status_if_new, s.on_consent_withdrawn, s.on_deleted) == ("subscribed", "unsubscribe", "leave")
    assert s.merge_fields["first_name"] == "FNAME" and s.merge_fields["lifetime_amount"] == "GIFTTOTAL"
    assert all(len(tag) <= 10 for tag in s.merge_fields.values())
    assert s.tag_segments == ("value_tier", "engagement", "frequency")
    assert s.create_merge_fields is True and s.max_connections == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.audience_id = "other"  # type: ignore[misc]


def test_env_variables_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[mailchimp]\naudience_id = "from-file"\nstatus_if_new = "pending"\ntag_prefix = "Giving: "\n'
                    'on_deleted = "archive"\n[mailchimp.merge_fields]\nlifetime_amount = "TOTAL"\nfrequency = ""\n')
    settings = load_settings(env={"SUPPORTERSYNC_MAILCHIMP_API_KEY": KEY,
                                  "SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID": "from-env",
                                  "SUPPORTERSYNC_MAILCHIMP_API_URL": "http://127.0.0.1:9/3.0"}, config_path=path)
    s = load_mailchimp_settings(settings.org().mailchimp)
    assert s.audience_id == "from-env" and s.api_url == "http://127.0.0.1:9/3.0"
    assert s.status_if_new == "pending" and s.tag_prefix == "Giving: " and s.on_deleted == "archive"
    assert s.merge_fields["lifetime_amount"] == "TOTAL" and "frequency" not in s.merge_fields
    assert isinstance(s.api_key, Secret)


def test_neither_key_nor_audience_means_inactive_and_half_is_an_error() -> None:
    assert not is_configured({})
    assert is_configured({"audience_id": "x"})
    with pytest.raises(ConfigError, match="SUPPORTERSYNC_MAILCHIMP_API_KEY"):
        load_mailchimp_settings({"audience_id": "x"})
    with pytest.raises(ConfigError, match="SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID"):
        load_mailchimp_settings({"api_key": Secret(KEY)})


@pytest.mark.parametrize("values, message", [
    ({"status_if_new": "subscribed!"}, "status_if_new must be 'subscribed' or 'pending'"),
    ({"on_consent_withdrawn": "delete"}, "on_consent_withdrawn must be 'unsubscribe' or 'leave'"),
    ({"on_deleted": "delete"}, "on_deleted must be 'leave' or 'archive'"),
    ({"tag_prefix": ""}, "tag_prefix must be a non-empty string"),
    ({"merge_fields": {"lifetime_amount": "LIFETIMEAMOUNT"}}, "at most 10 characters"),
    ({"merge_fields": {"gift_count": "9LIVES"}}, "not a valid merge tag"),
    ({"merge_fields": {"gift_count": "FNAME"}}, "both use the merge tag 'FNAME'"),
    ({"merge_fields": {"birthday": "BDAY"}}, "Unknown key"),
    ({"tag_segments": ["value_tier", "mood"]}, "unknown segment kind"),
    ({"max_connections": 20}, "max_connections must be between 1 and 10"),
    ({"create_merge_fields": "yes"}, "create_merge_fields must be true or false"),
    ({"colour": "blue"}, r"Unknown key\(s\) colour in \[mailchimp\]"),
    ({"api_url": "ftp://x"}, "must be an http"),
    ({"api_url": "https://us6.api.mailchimp.com/3.0"}, "datacenter 'us6'.*belongs to 'us21'"),
])
def test_bad_settings_name_the_setting(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_mailchimp_settings(raw(**values))


@pytest.mark.parametrize("key", ["0123456789abcdef0123456789abcdef", "short-us21", "0123456789abcdef01234567-",
                                 "0123456789abcdef0123456789abcdef-us 21"])
def test_a_key_of_the_wrong_shape_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(ConfigError, match="does not look like a Mailchimp API key") as info:
        load_mailchimp_settings(raw(api_key=Secret(key)))
    assert key not in str(info.value) and key[:16] not in str(info.value)


def test_the_key_never_shows_in_reprs() -> None:
    s = load_mailchimp_settings(raw())
    assert KEY not in repr(s) and KEY not in str(s)


def test_a_config_file_holding_the_key_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[mailchimp]\napi_key = "{KEY}"\naudience_id = "a"\n')
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load_settings(env={}, config_path=path)
    assert KEY not in str(info.value)
    os.chmod(path, 0o600)
    assert load_mailchimp_settings(load_settings(env={}, config_path=path).org().mailchimp).datacenter == "us21"
