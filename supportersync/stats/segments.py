"""Segment definitions: value tiers, engagement and frequency, validated once.

Each kind of segment labels every supporter by one statistic::

    kind         TOML key                statistic              a band holds
    value tier   segments.value_tiers    lifetime_amount        min <= amount < max  (money)
    engagement   segments.engagement     days_since_last_gift   min <= days <= max   (whole days)
    frequency    segments.frequency      lifetime_count         min <= count <= max  (whole gifts)

Money bands are half-open (so 25-100 and 100-500 meet at 100 without sharing it); bands
of whole numbers name both ends (Repeat is 2-3 gifts, Frequent 4-10). The last band of
each kind has no `max`. A supporter with no gift at all never reaches the bands: each
kind has exactly one entry with `none = true` for them (Prospect, Never Donated, No
Gifts), so a missing amount, date or count can never fall into a top band.

`load_segments` checks everything once and names the band at fault; docs/segments.md
has the rules and the defaults in TOML form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from supportersync.errors import ConfigError

Bound = Decimal | int

NAME_MAX_LENGTH = 64
"""The width of the label columns in supporter_stats."""


@dataclass(frozen=True)
class Band:
    name: str
    min: Bound
    max: Bound | None
    """None: no upper bound (only the last band)."""


@dataclass(frozen=True)
class Segmentation:
    """One kind of segment: a label for "no gifts" and contiguous bands above it."""

    kind: str
    """The TOML key: value_tiers, engagement or frequency."""
    statistic: str
    """The supporter_stats column the bands are measured on."""
    money: bool
    """True: half-open money bands [min, max); False: whole numbers, both ends included."""
    none: str
    """The label of supporters without any gift."""
    bands: tuple[Band, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.none, *(band.name for band in self.bands))

    def label_for(self, value: Bound | None) -> str:
        """The label for `value`; None means the supporter has no gift."""
        if value is None:
            return self.none
        for band in self.bands:
            if value >= band.min and (band.max is None or (value < band.max if self.money else value <= band.max)):
                return band.name
        raise ValueError(f"{value} is below every band of segments.{self.kind}")

    def describe(self, band: Band) -> str:
        if band.max is None:
            return f"{band.min}+"
        return f"{band.min}-{band.max}"


@dataclass(frozen=True)
class SegmentConfig:
    value_tiers: Segmentation
    engagement: Segmentation
    frequency: Segmentation

    @property
    def kinds(self) -> tuple[Segmentation, Segmentation, Segmentation]:
        return (self.value_tiers, self.engagement, self.frequency)


@dataclass(frozen=True)
class _Kind:
    key: str
    statistic: str
    money: bool
    floor: int
    """Where the first band must start: the smallest value a supporter with a gift can have."""
    unit: str


_KINDS = (
    _Kind("value_tiers", "lifetime_amount", True, 0, "lifetime amount"),
    _Kind("engagement", "days_since_last_gift", False, 0, "days since the last gift"),
    _Kind("frequency", "lifetime_count", False, 1, "number of gifts"),
)

DEFAULT_SEGMENTS_TOML: dict[str, list[dict[str, Any]]] = {
    "value_tiers": [
        {"name": "Prospect", "none": True},
        {"name": "First-Time", "min": 0, "max": 25},
        {"name": "Small", "min": 25, "max": 100},
        {"name": "Regular", "min": 100, "max": 500},
        {"name": "Committed", "min": 500, "max": 1000},
        {"name": "Major", "min": 1000, "max": 5000},
        {"name": "Principal", "min": 5000, "max": 10000},
        {"name": "Transformational", "min": 10000},
    ],
    "engagement": [
        {"name": "Never Donated", "none": True},
        {"name": "Recent", "min": 0, "max": 30},
        {"name": "Active", "min": 31, "max": 90},
        {"name": "Warm", "min": 91, "max": 180},
        {"name": "Cooling", "min": 181, "max": 365},
        {"name": "Lapsed", "min": 366, "max": 730},
        {"name": "Dormant", "min": 731},
    ],
    "frequency": [
        {"name": "No Gifts", "none": True},
        {"name": "One-Time", "min": 1, "max": 1},
        {"name": "Repeat", "min": 2, "max": 3},
        {"name": "Frequent", "min": 4, "max": 10},
        {"name": "Loyal", "min": 11, "max": 25},
        {"name": "Champion", "min": 26},
    ],
}
"""The defaults, in the shape of the [segments] TOML table."""


def load_segments(raw: Mapping[str, Any] | None) -> SegmentConfig:
    """Validate the raw [segments] table; a kind left out keeps its default.

    Raises ConfigError naming the kind and band at fault.
    """
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("[segments] in the config file must be a table.")
    unknown = set(raw) - {kind.key for kind in _KINDS}
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(sorted(unknown))} in [segments]; "
            "expected value_tiers, engagement and frequency.",
            hint="See docs/segments.md.",
        )
    kinds = {kind.key: _segmentation(kind, raw.get(kind.key, DEFAULT_SEGMENTS_TOML[kind.key])) for kind in _KINDS}
    _check_unique_names(kinds.values())
    return SegmentConfig(**kinds)


def _segmentation(kind: _Kind, entries: Any) -> Segmentation:
    where = f"segments.{kind.key}"
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{where} must be a non-empty array of tables ([[{where}]] entries with name, min, max).",
            hint="See docs/segments.md.",
        )
    nones: list[str] = []
    bands: list[Band] = []
    for position, entry in enumerate(entries, 1):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} entry {position} must be a table with name, min and max.")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} entry {position} needs a name.")
        label = f"{where} band {name!r}"
        if len(name) > NAME_MAX_LENGTH:
            raise ConfigError(f"{label}: names are at most {NAME_MAX_LENGTH} characters.")
        unknown = set(entry) - {"name", "none", "min", "max"}
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {', '.join(sorted(unknown))}; use name, min, max or none.")
        none = entry.get("none", False)
        if not isinstance(none, bool):
            raise ConfigError(f"{label}: none must be true or false.")
        if none:
            if "min" in entry or "max" in entry:
                raise ConfigError(f"{label} is the label for supporters with no gifts (none = true): "
                                  "it takes no min or max.")
            nones.append(name)
            continue
        if "min" not in entry:
            raise ConfigError(f"{label} needs a min (or none = true for supporters with no gifts).")
        low = _bound(kind, entry["min"], f"{label} min")
        high = _bound(kind, entry["max"], f"{label} max") if "max" in entry else None
        if high is not None and (high <= low if kind.money else high < low):
            raise ConfigError(f"{label} has max {high} {'not above' if kind.money else 'below'} min {low}.")
        bands.append(Band(name, low, high))

    if not nones:
        raise ConfigError(
            f"{where} has no label for supporters with no gifts.",
            hint=f'Add an entry with none = true, e.g. {{ name = "{DEFAULT_SEGMENTS_TOML[kind.key][0]["name"]}", '
            "none = true }.",
        )
    if len(nones) > 1:
        raise ConfigError(f"{where} has several labels for supporters with no gifts ({', '.join(map(repr, nones))}); "
                          "keep one with none = true.")
    if not bands:
        raise ConfigError(f"{where} has no bands with min/max besides {nones[0]!r}.")
    seg = Segmentation(kind.key, kind.statistic, kind.money, nones[0], tuple(sorted(bands, key=lambda b: b.min)))
    _check_contiguous(kind, seg)
    return seg


def _bound(kind: _Kind, value: Any, what: str) -> Bound:
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a number, got {value!r}.")
    if kind.money:
        if not isinstance(value, int | float | str):
            raise ConfigError(f"{what} must be a number, got {value!r}.")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{what} must be a number, got {value!r}.") from None
        if not amount.is_finite() or amount < 0:
            raise ConfigError(f"{what} must be 0 or a positive amount, got {value!r}.")
        if amount != amount.quantize(Decimal("0.01")):
            raise ConfigError(f"{what} must be whole cents (at most 2 decimals), got {value!r}.")
        return amount
    if not isinstance(value, int) or value < 0:
        raise ConfigError(f"{what} must be a whole number (0 or more), got {value!r}.")
    return value


def _check_contiguous(kind: _Kind, seg: Segmentation) -> None:
    where = f"segments.{kind.key}"
    bands = seg.bands
    first = bands[0]
    if first.min != kind.floor:
        if first.min < kind.floor:
            raise ConfigError(
                f"{where} band {first.name!r} ({seg.describe(first)}) starts at {first.min}, but a supporter with "
                f"a gift has at least {kind.floor}: supporters with no gifts get {seg.none!r} (none = true).",
                hint=f"Start the first band at min = {kind.floor}.",
            )
        raise ConfigError(
            f"{where} band {first.name!r} ({seg.describe(first)}) leaves a gap: {kind.unit} from {kind.floor} "
            f"up to {first.min} has no band.",
            hint=f"Start the first band at min = {kind.floor}.",
        )
    for below, above in zip(bands, bands[1:], strict=False):
        if below.max is None:
            raise ConfigError(
                f"{where} band {above.name!r} ({seg.describe(above)}) overlaps {below.name!r} "
                f"({seg.describe(below)}), which has no max: only the last band may leave out max."
            )
        expected = below.max if kind.money else below.max + 1
        if above.min < expected:
            raise ConfigError(
                f"{where} band {above.name!r} ({seg.describe(above)}) overlaps {below.name!r} ({seg.describe(below)}).",
                hint=_bounds_hint(kind),
            )
        if above.min > expected:
            raise ConfigError(
                f"{where} band {above.name!r} ({seg.describe(above)}) leaves a gap after {below.name!r} "
                f"({seg.describe(below)}): it should start at {expected}.",
                hint=_bounds_hint(kind),
            )
    last = bands[-1]
    if last.max is not None:
        raise ConfigError(
            f"{where} band {last.name!r} ({seg.describe(last)}) is the last band but has a max: "
            f"{kind.unit} values above {last.max} would get no label.",
            hint="Leave out max on the last band.",
        )


def _bounds_hint(kind: _Kind) -> str:
    if kind.money:
        return "Amount bands include min and exclude max: the next band starts at the previous max."
    return "Bands of whole numbers include both min and max: the next band starts at the previous max + 1."


def _check_unique_names(kinds: Any) -> None:
    seen: dict[str, str] = {}
    for seg in kinds:
        for name in seg.labels:
            key = name.strip().casefold()
            where = f"segments.{seg.kind}"
            if key in seen:
                other = seen[key]
                if other == where:
                    raise ConfigError(f"{where} uses the name {name!r} twice; a label must mean one thing.")
                raise ConfigError(
                    f"Segment name {name!r} is used by both {other} and {where}; a label must mean one thing "
                    "(names are compared ignoring case, as Mailchimp compares tags)."
                )
            seen[key] = where


DEFAULT_SEGMENTS: SegmentConfig = load_segments({})
