from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supportersync.config import load_settings
from supportersync.errors import ConfigError
from supportersync.stats.segments import DEFAULT_SEGMENTS, DEFAULT_SEGMENTS_TOML, load_segments

D = Decimal


def _with(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {kind: list(entries)}


@pytest.mark.parametrize(
    ("amount", "label"),
    [(None, "Prospect"), (D("0.01"), "First-Time"), (D("24.99"), "First-Time"), (D("25"), "Small"),
     (D("99.99"), "Small"), (D("100"), "Regular"), (D("499.99"), "Regular"), (D("500"), "Committed"),
     (D("1000"), "Major"), (D("4999.99"), "Major"), (D("5000"), "Principal"), (D("9999.99"), "Principal"),
     (D("10000"), "Transformational"), (D("123456789.12"), "Transformational")],
)
def test_default_value_tiers_include_min_and_exclude_max(amount: Decimal | None, label: str) -> None:
    assert DEFAULT_SEGMENTS.value_tiers.label_for(amount) == label


@pytest.mark.parametrize(
    ("days", "label"),
    [(None, "Never Donated"), (0, "Recent"), (30, "Recent"), (31, "Active"), (90, "Active"), (91, "Warm"),
     (180, "Warm"), (181, "Cooling"), (365, "Cooling"), (366, "Lapsed"), (730, "Lapsed"), (731, "Dormant"),
     (10_000, "Dormant")],
)
def test_default_engagement_bands_include_both_ends(days: int | None, label: str) -> None:
    assert DEFAULT_SEGMENTS.engagement.label_for(days) == label


@pytest.mark.parametrize(
    ("count", "label"),
    [(None, "No Gifts"), (1, "One-Time"), (2, "Repeat"), (3, "Repeat"), (4, "Frequent"), (10, "Frequent"),
     (11, "Loyal"), (25, "Loyal"), (26, "Champion"), (500, "Champion")],
)
def test_default_frequency_bands(count: int | None, label: str) -> None:
    assert DEFAULT_SEGMENTS.frequency.label_for(count) == label


def test_no_gifts_is_its_own_label_never_a_band() -> None:
    for seg in DEFAULT_SEGMENTS.kinds:
        assert seg.none not in {band.name for band in seg.bands}
    assert DEFAULT_SEGMENTS.frequency.label_for(None) == "No Gifts"


def test_defaults_are_the_documented_toml() -> None:
    assert load_segments({}) == DEFAULT_SEGMENTS
    assert load_segments(None) == DEFAULT_SEGMENTS
    assert load_segments(DEFAULT_SEGMENTS_TOML) == DEFAULT_SEGMENTS


def test_a_toml_kind_replaces_its_default_and_leaves_the_others(tmp_path: Any) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        """
[[segments.value_tiers]]
name = "Not yet"
none = true

[[segments.value_tiers]]
name = "Under 50.50"
min = 0
max = 50.50

[[segments.value_tiers]]
name = "Big"
min = 50.50
"""
    )
    settings = load_settings(env={"HOME": str(tmp_path)}, config_path=config)
    segments = load_segments(settings.segments)
    assert segments.value_tiers.labels == ("Not yet", "Under 50.50", "Big")
    assert segments.value_tiers.label_for(D("50.49")) == "Under 50.50"
    assert segments.value_tiers.label_for(D("50.50")) == "Big"
    assert segments.engagement == DEFAULT_SEGMENTS.engagement
    assert segments.frequency == DEFAULT_SEGMENTS.frequency


def test_bands_may_be_written_in_any_order() -> None:
    entries = list(reversed(DEFAULT_SEGMENTS_TOML["frequency"]))
    assert load_segments({"frequency": entries}) == DEFAULT_SEGMENTS


def _replace(kind: str, band: str, /, **changes: Any) -> dict[str, Any]:
    """The default entries of `kind`, with `band` changed (a None value removes the key)."""
    entries = []
    for entry in DEFAULT_SEGMENTS_TOML[kind]:
        entry = dict(entry)
        if entry["name"] == band:
            entry.update(changes)
            entry = {k: v for k, v in entry.items() if v is not None}
        entries.append(entry)
    return {kind: entries}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_replace("value_tiers", "First-Time", max=30),
         "segments.value_tiers band 'Small' (25-100) overlaps 'First-Time' (0-30)"),
        (_replace("value_tiers", "First-Time", max=20),
         "segments.value_tiers band 'Small' (25-100) leaves a gap after 'First-Time' (0-20): it should start at 20"),
        (_replace("value_tiers", "First-Time", max=24.99), "leaves a gap after 'First-Time' (0-24.99)"),
        (_replace("engagement", "Active", min=30), "segments.engagement band 'Active' (30-90) overlaps 'Recent' (0-30)"),
        (_replace("engagement", "Active", min=32), "segments.engagement band 'Active' (32-90) leaves a gap"),
        (_replace("frequency", "One-Time", min=0),
         "segments.frequency band 'One-Time' (0-1) starts at 0, but a supporter with a gift has at least 1: "
         "supporters with no gifts get 'No Gifts'"),
        (_replace("value_tiers", "First-Time", min=1), "band 'First-Time' (1-25) leaves a gap"),
        (_replace("frequency", "Champion", max=100), "band 'Champion' (26-100) is the last band but has a max"),
        (_replace("frequency", "Loyal", max=None), "band 'Champion' (26+) overlaps 'Loyal' (11+)"),
        (_replace("frequency", "No Gifts", none=None, min=0, max=0), "segments.frequency has no label for supporters "
         "with no gifts"),
        (_replace("frequency", "One-Time", none=True), "band 'One-Time' is the label for supporters with no gifts"),
        (_with("frequency", {"name": "None A", "none": True}, {"name": "None B", "none": True},
               {"name": "Any", "min": 1}), "several labels for supporters with no gifts ('None A', 'None B')"),
        (_with("frequency", {"name": "Nothing", "none": True}), "segments.frequency has no bands"),
        (_replace("frequency", "Repeat", name="Regular"),
         "Segment name 'Regular' is used by both segments.value_tiers and segments.frequency"),
        (_replace("frequency", "Repeat", name="regular"), "Segment name 'regular' is used by both"),
        (_replace("frequency", "Repeat", name="One-Time"), "segments.frequency uses the name 'One-Time' twice"),
        (_replace("engagement", "Recent", name="Prospect"), "Segment name 'Prospect' is used by both"),
        (_replace("value_tiers", "Small", min=True), "band 'Small' min must be a number, got True"),
        (_replace("value_tiers", "Small", min=-25), "band 'Small' min must be 0 or a positive amount"),
        (_replace("value_tiers", "Small", min=25.001), "band 'Small' min must be whole cents"),
        (_replace("value_tiers", "Small", min="lots"), "band 'Small' min must be a number"),
        (_replace("engagement", "Warm", max=180.5), "band 'Warm' max must be a whole number"),
        (_replace("frequency", "Repeat", max=1), "band 'Repeat' has max 1 below min 2"),
        (_replace("value_tiers", "Small", max=25), "band 'Small' has max 25 not above min 25"),
        (_replace("value_tiers", "Small", min=None), "band 'Small' needs a min"),
        (_replace("value_tiers", "Small", colour="blue"), "band 'Small': unknown key(s) colour"),
        (_replace("value_tiers", "Small", name="x" * 65), "names are at most 64 characters"),
        (_replace("value_tiers", "Small", name=""), "segments.value_tiers entry 3 needs a name"),
        (_replace("value_tiers", "Small", none="yes"), "none must be true or false"),
        ({"value_tiers": {"name": "x"}}, "segments.value_tiers must be a non-empty array of tables"),
        ({"value_tiers": []}, "segments.value_tiers must be a non-empty array of tables"),
        ({"value_tiers": ["Small"]}, "segments.value_tiers entry 1 must be a table"),
        ({"tiers": []}, "Unknown key(s) tiers in [segments]"),
    ],
)
def test_bad_configuration_names_the_band(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_segments(raw)
    assert message in str(info.value)


def test_configuration_errors_stop_the_run_with_usage_exit_code() -> None:
    with pytest.raises(ConfigError) as info:
        load_segments(_replace("frequency", "Repeat", name="Regular"))
    assert info.value.exit_code == 2


def test_toml_written_by_hand_loads() -> None:
    raw = tomllib.loads(
        """
[[segments.frequency]]
name = "Never"
none = true
[[segments.frequency]]
name = "Once"
min = 1
max = 1
[[segments.frequency]]
name = "Again"
min = 2
"""
    )
    assert load_segments(raw["segments"]).frequency.labels == ("Never", "Once", "Again")


@st.composite
def contiguous_bands(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random whole-number bands from 1 up, in any order, with a none label."""
    widths = draw(st.lists(st.integers(1, 20), max_size=6))
    entries: list[dict[str, Any]] = [{"name": "Zero", "none": True}]
    low = 1
    for i, width in enumerate(widths):
        entries.append({"name": f"Band {i}", "min": low, "max": low + width - 1})
        low += width
    entries.append({"name": "Top", "min": low})
    return draw(st.permutations(entries))


@given(contiguous_bands(), st.integers(1, 200))
def test_every_count_lands_in_exactly_one_band(entries: list[dict[str, Any]], count: int) -> None:
    seg = load_segments({"frequency": entries}).frequency
    holding = [b.name for b in seg.bands if b.min <= count and (b.max is None or count <= b.max)]
    assert holding == [seg.label_for(count)]
    assert seg.label_for(None) == "Zero"
