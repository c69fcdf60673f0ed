"""Compact storage and indexed queries for the simulated Classy records.

A `Table` holds one entity. Only the fields the API filters and sorts on live in
columns (arrays indexed by *position*, normally the id minus the entity's first id):
``created_at`` and ``updated_at``, and for transactions ``purchased_at``,
``refunded_at`` and ``status``. Every other field comes from a build function when a
record is read, so a generated record costs a few array slots instead of a dict. A
record that was changed is stored whole and wins over the built one; its columns
follow its fields.

Sorting goes through one index per sort specification (an array of positions) that
is patched as records change; a filter on the first sort field is two bisections of
that index, so a page costs the same at record 10 as at record 600,000. Other
filters are evaluated once and remembered until the table changes. Sorting on a field
without a column builds every record once (seconds on 600,000 transactions).

Ordering rules the sync engine's tests rely on:

* ties on every requested sort field are broken by id ascending, whatever the direction;
* a missing datetime (NULL) sorts first ascending and last descending, and matches no
  filter condition, as in MySQL.
"""

from __future__ import annotations

import bisect
import calendar
import functools
import itertools
import operator
import re
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

NULL = -(1 << 62)
"""A missing datetime in a column: smallest of all, so it sorts like MySQL's NULL."""


def format_datetime(epoch: int, z: bool = False) -> str:
    """Classy's usual ``YYYY-MM-DDTHH:MM:SS+0000`` (or the ``Z`` form some fields use)."""
    day, second = divmod(epoch, 86_400)
    minute, second = divmod(second, 60)
    hour, minute = divmod(minute, 60)
    return f"{_day(day)}T{hour:02d}:{minute:02d}:{second:02d}{'Z' if z else '+0000'}"


@functools.lru_cache(maxsize=8_192)
def _day(day: int) -> str:
    # Formatting is the bulk of building a record; a few thousand distinct days recur.
    return "%04d-%02d-%02d" % time.gmtime(day * 86_400)[:3]


def format_consent(epoch: int) -> str:
    """The microsecond form Classy uses for consent dates."""
    t = time.gmtime(epoch)
    return "%04d-%02d-%02dT%02d:%02d:%02d.000000Z" % t[:6]


def format_date(epoch: int) -> str:
    t = time.gmtime(epoch)
    return "%04d-%02d-%02d" % t[:3]


_RECORD_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?"
)


def parse_datetime(value: object) -> int | None:
    """Epoch seconds of any datetime a record may hold, or None (missing or garbage)."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if not isinstance(value, str):
        return None
    match = _RECORD_DATETIME.fullmatch(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        epoch = calendar.timegm(
            datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)).timetuple()
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


SortSpec = tuple[tuple[str, bool], ...]
"""(field, descending) pairs, most significant first."""


@dataclass(frozen=True)
class Condition:
    """One ``filter=`` condition, its value already parsed."""

    field: str
    op: str  # < <= > >= = != <>
    value: int | str  # epoch seconds for datetime fields, lower-case text for status


COMPARE: dict[str, Callable[[object, object], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "=": operator.eq, "!=": operator.ne, "<>": operator.ne,
}
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!=", "<>": "<>"}

# Changing more records than this at once rebuilds the indexes instead of patching them.
_PATCH_LIMIT = 2_000
# An added id at most this far past the last position extends the positions to reach it.
_MAX_GAP = 100_000
_MAX_INDEXES = 8
_MAX_DERIVED = 16


class Selection:
    """The positions a query matched, in order, as ranges of an index (never copied whole)."""

    def __init__(self, order: Sequence[int], ranges: list[tuple[int, int]]) -> None:
        self._order = order
        self._ranges = [(a, b) for a, b in ranges if b > a]

    def __len__(self) -> int:
        return sum(b - a for a, b in self._ranges)

    def slice(self, start: int, stop: int) -> list[int]:
        out: list[int] = []
        for a, b in self._ranges:
            size = b - a
            if start < size and stop > 0:
                out.extend(self._order[a + max(start, 0) : a + min(stop, size)])
            start -= size
            stop -= size
            if stop <= 0:
                break
        return out


class Table:
    """One entity's records: generated ones built on demand, changed ones stored whole.

    Position p normally holds id ``base_id + p``; an id far from that range (a test
    adding the missing supporter 999999999 of an orphan) gets the next free position
    and an entry in `_far` instead of millions of empty slots.

    Not thread-safe: the simulator serializes access with its own lock.
    """

    def __init__(
        self,
        entity: str,
        base_id: int,
        columns: dict[str, array],
        build: Callable[[int], dict],
        statuses: Sequence[str] = (),
    ) -> None:
        self.entity = entity
        self.base_id = base_id
        self.columns = columns
        self.statuses = list(statuses)
        self.size = len(columns["created_at"])
        self.id_at = array("q", range(base_id, base_id + self.size))
        self.max_id = base_id + self.size - 1
        self.alive = bytearray(b"\x01") * self.size
        self.live_count = self.size
        self.stored: dict[int, dict] = {}
        self.int_fields = {"id"} | {f for f in columns if f != "status"}
        self._build = build
        self._far: dict[int, int] = {}
        self._indexes: dict[SortSpec, array] = {}
        self._derived: dict[tuple, array] = {}

    # reading

    def position(self, id: int) -> int | None:
        """The position of a live record, or None."""
        p = self._slot(id)
        return p if p is not None and self.alive[p] else None

    def _slot(self, id: int) -> int | None:
        p = id - self.base_id
        if 0 <= p < self.size and self.id_at[p] == id:
            return p
        return self._far.get(id)

    def record_at(self, p: int) -> dict:
        """The record itself, not a copy: serialize it, never change it."""
        record = self.stored.get(p)
        return record if record is not None else self._build(p)

    def get(self, id: int) -> dict | None:
        p = self.position(id)
        return None if p is None else dict(self.record_at(p))

    def ids(self) -> list[int]:
        """Live ids, ascending."""
        return [self.id_at[p] for p in self._by_id()]

    def next_id(self) -> int:
        return self.max_id + 1

    def _by_id(self) -> list[int]:
        """Live positions in id order (position order unless far ids were added)."""
        order = list(itertools.compress(range(self.size), self.alive))
        if self._far:
            order.sort(key=self.id_at.__getitem__)
        return order

    def status_at(self, p: int) -> str:
        return self.statuses[self.columns["status"][p]]

    # changing

    def _allocate(self, id: int) -> int:
        """The position for `id`, made (dead, in no index) if it has none."""
        p = self._slot(id)
        if p is not None:
            return p
        p = id - self.base_id
        if not (self.size <= p <= self.size + _MAX_GAP):
            p = self.size
            self._far[id] = p
        grow = p + 1 - self.size
        for field, column in self.columns.items():
            column.extend(array(column.typecode, [self._column_value(field, None)]) * grow)
        self.id_at.extend(range(self.base_id + self.size, self.base_id + p + 1))
        self.id_at[p] = id
        self.alive.extend(bytes(grow))
        self.size = p + 1
        self.max_id = max(self.max_id, id)
        return p

    def template(self, id: int, values: dict[str, int | str | None]) -> dict:
        """A generated record for an unused id, its column-backed fields set from `values`."""
        if self.position(id) is not None:
            raise ValueError(f"{self.entity} id {id} is taken")
        p = self._allocate(id)
        for field, column in self.columns.items():
            # A dead position sits in no index, so its columns may change freely.
            column[p] = self._column_value(field, values.get(field))
        return {**self._build(p), "id": id}

    def put(self, id: int, record: dict) -> None:
        """Store a whole record (new, revived or replaced); its columns follow its fields."""
        p = self._allocate(id)

        def change() -> None:
            if not self.alive[p]:
                self.alive[p] = 1
                self.live_count += 1
            self.stored[p] = record
            for field in self.columns:
                value = record.get(field)
                if field != "status":
                    value = parse_datetime(value)
                self.columns[field][p] = self._column_value(field, value)

        self._change([p], change)

    def assign(self, positions: Sequence[int], values: dict[str, int | str | None]) -> None:
        """Set column-backed fields (datetimes as epoch seconds, status as text) of many records."""

        def change() -> None:
            for field, value in values.items():
                column = self.columns[field]
                stored_value = self._column_value(field, value)
                text = value if field == "status" or value is None else format_datetime(int(value))
                for p in positions:
                    column[p] = stored_value
                    record = self.stored.get(p)
                    if record is not None:
                        record[field] = text

        self._change(positions, change)

    def remove(self, id: int) -> None:
        p = self.position(id)
        if p is None:
            raise KeyError(id)

        def change() -> None:
            self.alive[p] = 0
            self.live_count -= 1
            self.stored.pop(p, None)

        self._change([p], change)

    def _column_value(self, field: str, value: int | str | None) -> int:
        if field != "status":
            return NULL if value is None else int(value)
        name = "" if value is None else str(value)
        if name not in self.statuses:
            self.statuses.append(name)
        return self.statuses.index(name)

    def _change(self, positions: Sequence[int], change: Callable[[], None]) -> None:
        positions = list(dict.fromkeys(positions))  # removing one position twice would remove a neighbour
        self._derived.clear()
        if len(positions) > _PATCH_LIMIT:
            change()
            self._indexes.clear()
            return
        keys = {spec: self._index_key(spec) for spec in self._indexes}
        for spec, index in self._indexes.items():
            key = keys[spec]
            for p in positions:
                if self.alive[p]:
                    del index[bisect.bisect_left(index, key(p), key=key)]
        change()
        for spec, index in self._indexes.items():
            key = keys[spec]
            for p in positions:
                if self.alive[p]:
                    bisect.insort(index, p, key=key)

    # querying

    def query(self, spec: SortSpec, conditions: Sequence[Condition]) -> Selection:
        indexed = all(field in self.int_fields for field, _ in spec)
        if indexed:
            order = self._index(spec)
        else:
            order = self._remember(("sort", spec), lambda: array("q", self._sorted(spec)))
        first, descending = spec[0]
        if not conditions:
            return Selection(order, [(0, len(order))])
        if indexed and len(conditions) == 1 and conditions[0].field == first:
            return Selection(order, self._ranges(order, first, descending, conditions[0]))
        matched = self._remember(
            ("filter", spec, tuple(conditions)),
            lambda: array("q", [p for p in order if self._matches(p, conditions)]),
        )
        return Selection(matched, [(0, len(matched))])

    def _int_getter(self, field: str) -> Callable[[int], int]:
        return (self.id_at if field == "id" else self.columns[field]).__getitem__

    def _index_key(self, spec: SortSpec) -> Callable[[int], tuple]:
        getters = [(self._int_getter(field), -1 if descending else 1) for field, descending in spec]
        id_at = self.id_at
        if len(getters) == 1:
            ((get, sign),) = getters
            return lambda p: (sign * get(p), id_at[p])
        return lambda p: (*[sign * get(p) for get, sign in getters], id_at[p])

    def _index(self, spec: SortSpec) -> array:
        index = self._indexes.get(spec)
        if index is None:
            if len(self._indexes) >= _MAX_INDEXES:
                self._indexes.pop(next(iter(self._indexes)))
            index = self._indexes[spec] = array("q", self._sorted(spec))
        return index

    def _sorted(self, spec: SortSpec) -> list[int]:
        # Stable sorts from the least significant field, starting in id order, leave
        # ties in id order; reverse=True keeps that stability.
        order = self._by_id()
        for step, (field, descending) in enumerate(reversed(spec)):
            if field == "id" and step == 0:
                if descending:
                    order.reverse()  # ids are unique: no ties to keep in order
                continue
            if field in self.int_fields:
                order.sort(key=self._int_getter(field), reverse=descending)
            else:
                get = self.status_at if field == "status" and "status" in self.columns else (
                    lambda p, field=field: self.record_at(p).get(field)
                )
                values = {p: get(p) for p in order}
                try:
                    order.sort(key=lambda p: (values[p] is not None, values[p]), reverse=descending)
                except TypeError:  # mixed types, e.g. after a test stored a malformed value
                    order.sort(key=lambda p: (values[p] is not None, repr(values[p])), reverse=descending)
        return order

    def _remember(self, key: tuple, compute: Callable[[], array]) -> array:
        value = self._derived.get(key)
        if value is None:
            if len(self._derived) >= _MAX_DERIVED:
                self._derived.pop(next(iter(self._derived)))
            value = self._derived[key] = compute()
        return value

    def _ranges(self, order: array, field: str, descending: bool, condition: Condition) -> list[tuple[int, int]]:
        column = self.columns[field]
        sign = -1 if descending else 1
        key = lambda p: sign * column[p]  # noqa: E731 - the index's primary key
        op = _MIRRORED[condition.op] if descending else condition.op
        x = sign * int(condition.value)
        n = len(order)
        lo = bisect.bisect_left(order, x, key=key)
        hi = bisect.bisect_right(order, x, key=key)
        ranges = {
            "<": [(0, lo)], "<=": [(0, hi)], ">": [(hi, n)], ">=": [(lo, n)],
            "=": [(lo, hi)], "!=": [(0, lo), (hi, n)], "<>": [(0, lo), (hi, n)],
        }[op]
        # NULLs form one block at an end of the index and never match.
        null_lo = bisect.bisect_left(order, sign * NULL, key=key)
        null_hi = bisect.bisect_right(order, sign * NULL, key=key)
        pieces = []
        for a, b in ranges:
            pieces += [(a, min(b, null_lo)), (max(a, null_hi), b)]
        return pieces

    def _matches(self, p: int, conditions: Sequence[Condition]) -> bool:
        for condition in conditions:
            if condition.field == "status":
                value: int | str = self.status_at(p).lower()
            else:
                value = self.columns[condition.field][p]
                if value == NULL:
                    return False
            if not COMPARE[condition.op](value, condition.value):
                return False
        return True
