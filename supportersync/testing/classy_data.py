"""Deterministic, realistic data for the simulated Classy organization.

Everything follows from the seed. The columns the API filters and sorts on are drawn
up front for every record (see `classy_store`); every other field is drawn when a
record is read, from a random generator seeded by (seed, entity, position), so a
record always comes out the same however and whenever it is read, and 100,000
supporters with 600,000 transactions take about a second and 100 MB to create.

The awkward cases a sync must survive are built in, a few forced at fixed positions so
that even the default 200 supporters have them: more than 100 records sharing one
updated_at second, emails missing, empty, invalid or duplicated in another case or
with padding, phones that are "", transactions whose supporter or campaign does not
exist, refunds, large gifts, a campaign goal above 100,000,000, and datetimes in both
the ``+0000`` and the ``Z`` forms.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from array import array
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from supportersync.testing.classy_store import NULL, Table, format_consent, format_date, format_datetime

ENTITIES = ("campaigns", "supporters", "recurring_plans", "transactions")

# Distinct id ranges make a supporter id used as a transaction id (a classic join bug)
# find nothing instead of the wrong record.
ID_BASES = {
    "campaigns": 50_001,
    "recurring_plans": 200_001,
    "supporters": 1_000_001,
    "transactions": 10_000_001,
}
_ENTITY_CODES = {entity: code for code, entity in enumerate(ENTITIES, start=1)}

DEFAULT_BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86_400
HISTORY_SECONDS = 6 * 365 * DAY

TRANSACTION_STATUSES = (
    "success", "refunded", "failed", "pending", "canceled",
    "voided", "cb_initiated", "cb_lost", "incomplete", "test",
)
_STATUS_WEIGHTS = (880, 30, 30, 15, 10, 8, 3, 2, 15, 7)
_REFUNDED = TRANSACTION_STATUSES.index("refunded")
_CHARGEBACKS = {TRANSACTION_STATUSES.index("cb_initiated"), TRANSACTION_STATUSES.index("cb_lost")}

FIELDS: dict[str, tuple[str, ...]] = {
    "supporters": (
        "id", "organization_id", "member_id", "first_name", "last_name", "email_address",
        "phone", "address1", "address2", "city", "state", "postal_code", "country",
        "opt_in", "sms_opt_in", "last_email_consent_decision_date", "source_campaign_id",
        "origin", "created_at", "updated_at",
    ),
    "transactions": (
        "id", "organization_id", "supporter_id", "campaign_id", "recurring_donation_plan_id",
        "parent_transaction_id", "status", "payment_method", "currency_code",
        "total_gross_amount", "donation_gross_amount", "fees_amount", "donation_net_amount",
        "charged_currency_code", "charged_total_gross_amount", "charged_fees_amount",
        "purchased_at", "refunded_at", "created_at", "updated_at",
    ),
    "recurring_plans": (
        "id", "organization_id", "supporter_id", "campaign_id", "status", "frequency",
        "donation_amount", "currency_code", "next_processing_date", "canceled_at",
        "cancel_reason_text", "created_at", "updated_at",
    ),
    "campaigns": (
        "id", "organization_id", "name", "type", "status", "goal", "raw_goal",
        "currency_code", "started_at", "ended_at", "created_at", "updated_at",
    ),
}

# (display, ascii) pairs: the ascii half builds believable email addresses.
FIRST_NAMES = (
    ("Mary", "mary"), ("James", "james"), ("Patricia", "patricia"), ("Robert", "robert"),
    ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"), ("David", "david"),
    ("Amélie", "amelie"), ("José", "jose"), ("Zoë", "zoe"), ("Björn", "bjorn"),
    ("Jürgen", "jurgen"), ("François", "francois"), ("Siobhán", "siobhan"), ("Łukasz", "lukasz"),
    ("Renée", "renee"), ("Mónica", "monica"), ("Søren", "soren"), ("Inès", "ines"),
    ("伟", "wei"), ("芳", "fang"), ("Aisha", "aisha"), ("Priya", "priya"),
    ("Kenji", "kenji"), ("Chloé", "chloe"), ("Ngozi", "ngozi"), ("Dmitri", "dmitri"),
)
LAST_NAMES = (
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
    ("Jones", "jones"), ("Nguyen", "nguyen"), ("Patel", "patel"), ("Kim", "kim"),
    ("Müller", "muller"), ("Groß", "gross"), ("Strauß", "strauss"), ("García", "garcia"),
    ("Núñez", "nunez"), ("Lefèvre", "lefevre"), ("O'Brien", "obrien"), ("Dvořák", "dvorak"),
    ("Øvergård", "overgard"), ("Şahin", "sahin"), ("Çelik", "celik"), ("van der Berg", "vanderberg"),
    ("Smith-Jones", "smithjones"), ("Ibáñez", "ibanez"), ("王", "wang"), ("李", "li"),
    ("张", "zhang"), ("陈", "chen"), ("Rossi", "rossi"), ("Johansson", "johansson"),
)
# Reserved example domains: a simulated address can never reach a real mailbox.
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "post.example.de")
_INVALID_EMAILS = ("not-an-email", "{f}.{l}@", "{f} {l}@example.com", "@example.org", "{f}.{l}@@example.com")
_STREETS = (
    "Main St", "Oak Avenue", "Elm Street", "Rue de la Paix", "Königstraße", "Calle de Alcalá",
    "Via Roma", "Avenida Paulista", "中山路", "Høgskoleringen",
)
# (city, state, postal code pattern with # for a digit, country, weight)
_PLACES = (
    ("Portland", "OR", "972##", "US", 6), ("New York", "NY", "100##", "US", 6),
    ("Springfield", "IL", "627##", "US", 4), ("Austin", "TX", "787##", "US", 4),
    ("San José", "CA", "951##", "US", 3), ("Montréal", "QC", "H2X 1Y#", "CA", 2),
    ("München", "BY", "803##", "DE", 1), ("Zürich", "ZH", "80##", "CH", 1),
    ("São Paulo", "SP", "01310-###", "BR", 1), ("Málaga", "AN", "290##", "ES", 1),
    ("Kraków", "MA", "31-0##", "PL", 1), ("北京", "BJ", "1000##", "CN", 1),
    ("London", "", "SW1A #AA", "GB", 1), ("Dublin", None, "D0# X2Y3", "IE", 1),
)
_PLACE_WEIGHTS = list(itertools.accumulate(place[4] for place in _PLACES))
_ORIGINS = ("classy", "classy", "classy", "classy", "import", "api", "salesforce")
_CAMPAIGN_NAMES = (
    "Annual Fund", "Spring Appeal", "Giving Tuesday", "Year-End Match", "Walk for Hope",
    "Gala des Étoiles", "Lauf für Straßenkinder", "Año Nuevo Challenge",
    "中文学校 Scholarship Fund", "Capital Campaign — Phase II", "Café Crème Bake Sale",
)
_ROUND_AMOUNTS = (10, 20, 25, 25, 35, 50, 50, 75, 100, 100, 150, 250, 500, 1000)
_LARGE_GIFTS = (25_000.0, 50_000.0, 100_000.0, 250_000.0, 1_000_000.0)
_GOALS = (5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 2_500_000)
_CANCEL_REASONS = ("Financial reasons", "Switched to a one-time gift", "", None, "Déménagement à l'étranger")
_PLAN_STATUSES = ("active",) * 55 + ("canceled",) * 25 + ("ended",) * 7 + ("failing",) * 5 + ("paused",) * 5 + ("draft",) * 3
_FREQUENCIES = ("monthly",) * 80 + ("quarterly",) * 8 + ("semi-annually",) * 4 + ("yearly",) * 8
_CURRENCIES = ("USD",) * 92 + ("CAD",) * 4 + ("GBP",) * 2 + ("EUR",) * 2
_PAYMENT_METHODS = ("cc",) * 70 + ("paypal",) * 12 + ("ach",) * 10 + ("check",) * 5 + ("cash",) * 3


def _timeline(rng: random.Random, n: int, start: int, end: int) -> array:
    """n increasing instants in [start, end], denser towards the end as an organization grows."""
    if n <= 0:
        return array("q")
    rnd = rng.random
    cumulative = list(itertools.accumulate(-math.log(1.0 - rnd()) for _ in range(n + 1)))
    scale = 1.0 / cumulative[-1]
    span = end - start
    return array("q", [start + int(span * (c * scale) ** 0.6) for c in cumulative[:-1]])


def _modified(rng: random.Random, created: array, share: float, end: int) -> array:
    """updated_at: equal to created_at unless the record was edited later."""
    rnd = rng.random
    return array("q", [c if rnd() >= share else c + int(rnd() * (end - c)) for c in created])


def _cluster(rng: random.Random, created: array, updated: array, at: int, size: int) -> None:
    """Give `size` records one shared updated_at second, as a bulk edit or import does."""
    eligible = bisect.bisect_right(created, at)
    if eligible == 0 or size <= 0:
        return
    candidates = rng.sample(range(eligible), min(eligible, size * 2))
    for p in [p for p in candidates if updated[p] <= at][:size]:
        updated[p] = at


def _cluster_plan(rng: random.Random, n: int, end: int, first_at: int) -> list[tuple[int, int]]:
    """(instant, size) of the bulk edits: a recent one bigger than any page, more on big data."""
    if n < 20:
        return []
    plan = [(first_at, min(250, n * 3 // 5))]
    for _ in range(n // 50_000):
        plan.append((end - rng.randrange(3 * DAY, 365 * DAY), rng.randint(120, 400)))
    return plan


class _Draw(random.Random):
    """`choice` and `randrange` straight from `random()`: a page builds a hundred records
    with a dozen draws each, and the stock methods cost several times more."""

    def choice(self, seq: Sequence[Any]) -> Any:  # type: ignore[override]
        return seq[int(self.random() * len(seq))]

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:  # type: ignore[override]
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))


class Dataset:
    """All four entities of one simulated organization."""

    def __init__(
        self,
        *,
        seed: int,
        organization_id: int,
        base_time: datetime,
        supporters: int,
        transactions: int,
        recurring_plans: int,
        campaigns: int,
    ) -> None:
        self.seed = seed
        self.organization_id = organization_id
        if base_time.tzinfo is None:
            base_time = base_time.replace(tzinfo=UTC)
        self.base = int(base_time.timestamp())
        self.end = self.base - 60  # everything generated lies in the past
        self.start = self.base - HISTORY_SECONDS
        self.counts = {
            "campaigns": max(0, campaigns),
            "supporters": max(0, supporters),
            "recurring_plans": max(0, recurring_plans),
            "transactions": max(0, transactions),
        }
        rng = random.Random(seed)
        self.specials = self._specials(rng)
        builders: dict[str, Callable[[int], dict]] = {
            "campaigns": self._campaign,
            "supporters": self._supporter,
            "recurring_plans": self._plan,
            "transactions": self._transaction,
        }
        self.tables: dict[str, Table] = {}
        for entity in ENTITIES:
            columns = getattr(self, f"_{entity}_columns")(rng)
            statuses = TRANSACTION_STATUSES if entity == "transactions" else ()
            self.tables[entity] = Table(entity, ID_BASES[entity], columns, builders[entity], statuses)

    def _specials(self, rng: random.Random) -> dict[str, dict[int, str]]:
        """A few positions per entity forced to the awkward cases, so even small data has them."""
        kinds = {
            "supporters": ("email_none", "email_empty", "email_invalid", "email_dup_upper",
                           "email_dup_padded", "phone_empty"),
            "transactions": ("orphan_supporter", "orphan_campaign", "large_gift", "amount_1234.56",
                             "amount_25", "plan"),
            "recurring_plans": ("orphan_supporter",),
            "campaigns": ("huge_goal",),
        }
        specials: dict[str, dict[int, str]] = {}
        for entity, names in kinds.items():
            n = self.counts[entity]
            # Positions from 1 up: a duplicate email needs an earlier supporter to copy.
            lo = 1 if n > len(names) else 0
            positions = rng.sample(range(lo, n), min(n - lo, len(names)))
            specials[entity] = dict(zip(positions, names))
        return specials

    # columns

    def _campaigns_columns(self, rng: random.Random) -> dict[str, array]:
        created = _timeline(rng, self.counts["campaigns"], self.start, self.end - 30 * DAY)
        return {"created_at": created, "updated_at": _modified(rng, created, 0.8, self.end)}

    def _supporters_columns(self, rng: random.Random) -> dict[str, array]:
        n = self.counts["supporters"]
        created = _timeline(rng, n, self.start, self.end)
        # The organization's first day: a migration imported a batch in one second.
        for p in range(min(n // 20, 500)):
            created[p] = self.start
        updated = _modified(rng, created, 0.3, self.end)
        for at, size in _cluster_plan(rng, n, self.end, self.end - 2 * DAY - 4_321):
            _cluster(rng, created, updated, at, size)
        return {"created_at": created, "updated_at": updated}

    def _recurring_plans_columns(self, rng: random.Random) -> dict[str, array]:
        n = self.counts["recurring_plans"]
        created = _timeline(rng, n, self.start + 30 * DAY, self.end)
        updated = _modified(rng, created, 0.4, self.end)
        if n >= 20:
            _cluster(rng, created, updated, self.end - 9 * DAY - 777, min(150, n // 2))
        return {"created_at": created, "updated_at": updated}

    def _transactions_columns(self, rng: random.Random) -> dict[str, array]:
        n = self.counts["transactions"]
        rnd = rng.random
        created = _timeline(rng, n, self.start, self.end)
        status = array("H", rng.choices(range(len(TRANSACTION_STATUSES)), _STATUS_WEIGHTS, k=n))
        if n >= 20 and status.count(_REFUNDED) < 2:
            for p in rng.sample(range(n), 2):
                status[p] = _REFUNDED
        # Offline gifts are entered days after they were made.
        purchased = array("q", [c if rnd() >= 0.03 else c - int(rnd() * 45 * DAY) for c in created])
        updated = _modified(rng, created, 0.08, self.end)
        refunded = array("q", [NULL]) * n
        for p, code in enumerate(status):
            # Within 60 (refund) or 90 (chargeback) days, and never after `end`:
            # clamping would pile records up on one instant.
            if code == _REFUNDED:
                at = created[p] + int(rnd() * min(60 * DAY, self.end - created[p]))
                refunded[p] = at
                updated[p] = max(updated[p], at)
            elif code in _CHARGEBACKS:
                updated[p] = max(updated[p], created[p] + int(rnd() * min(90 * DAY, self.end - created[p])))
        for at, size in _cluster_plan(rng, n, self.end, self.end - DAY - 1_234):
            _cluster(rng, created, updated, at, size)
        return {
            "created_at": created, "updated_at": updated, "purchased_at": purchased,
            "refunded_at": refunded, "status": status,
        }

    # records

    def _rng(self, entity: str, p: int) -> random.Random:
        return _Draw((self.seed << 40) + (_ENTITY_CODES[entity] << 34) + p)

    def _pick(self, r: random.Random, entity: str, share: float) -> int | None:
        """An id among the first `share` of `entity`'s records: about those that existed
        when the record referring to it was made."""
        n = self.counts[entity]
        if n == 0:
            return None
        return ID_BASES[entity] + r.randrange(max(1, min(n, int(share * n) + 1)))

    def _orphan(self, r: random.Random, entity: str) -> int:
        # Past the generated range, so a test can later add() the missing record.
        return ID_BASES[entity] + self.counts[entity] + 1_000 + r.randrange(5_000)

    def _identity(self, p: int) -> tuple[random.Random, str, str, str, str]:
        """A supporter's generator, names, natural email and email kind, drawn first."""
        r = self._rng("supporters", p)
        first, first_ascii = r.choice(FIRST_NAMES)
        last, last_ascii = r.choice(LAST_NAMES)
        style = r.random()
        domain = r.choice(EMAIL_DOMAINS)
        if style < 0.5:
            local = f"{first_ascii}.{last_ascii}{p}"
        elif style < 0.8:
            local = f"{first_ascii[0]}{last_ascii}{p}"
        else:
            local = f"{last_ascii}_{first_ascii}{p}"
        u = r.random()
        kind = self.specials["supporters"].get(p) or (
            "email_none" if u < 0.004 else "email_empty" if u < 0.007 else "email_invalid" if u < 0.010
            else "email_dup_upper" if u < 0.013 else "email_dup_padded" if u < 0.016 else "ok"
        )
        return r, first, last, f"{local}@{domain}", kind

    def _duplicate_of(self, p: int, r: random.Random) -> str | None:
        """The natural email of an earlier supporter whose own email is fine."""
        start = p - 1 - r.randrange(min(p, 40)) if p > 0 else -1
        for q in range(start, max(start - 50, -1), -1):
            _, _, _, email, kind = self._identity(q)
            if not kind.startswith("email_"):
                return email
        return None

    def _supporter(self, p: int) -> dict:
        columns = self.tables["supporters"].columns
        created, updated = columns["created_at"][p], columns["updated_at"][p]
        r, first, last, email, kind = self._identity(p)
        email_address: str | None = email
        if kind == "email_none":
            email_address = None
        elif kind == "email_empty":
            email_address = ""
        elif kind == "email_invalid":
            template = "not-an-email" if self.specials["supporters"].get(p) else r.choice(_INVALID_EMAILS)
            email_address = template.format(f=first.lower(), l=last.lower())
        elif kind.startswith("email_dup"):
            original = self._duplicate_of(p, r)
            if original is not None:
                email_address = original.upper() if kind == "email_dup_upper" else f"  {original.capitalize()} "
        u = r.random()
        if kind == "phone_empty" or u < 0.25:
            phone: str | None = ""
        elif u < 0.35:
            phone = None
        elif u < 0.9:
            phone = f"({r.randrange(201, 990)}) 555-01{r.randrange(100):02d}"
        else:
            phone = f"+44 20 7946 0{r.randrange(1000):03d}"
        if r.random() < 0.15:
            address1 = address2 = city = state = postal_code = country = None
        else:
            city, state, pattern, country, _ = r.choices(_PLACES, cum_weights=_PLACE_WEIGHTS)[0]
            postal_code = "".join(str(r.randrange(10)) if ch == "#" else ch for ch in pattern)
            address1 = f"{r.randrange(1, 9_999)} {r.choice(_STREETS)}"
            address2 = f"Apt {r.randrange(1, 40)}{r.choice('ABCD')}" if r.random() < 0.15 else None
        opt_in = r.random() < 0.55
        consent = (
            format_consent(created + int(r.random() * max(0, min(90 * DAY, self.end - created))))
            if r.random() < 0.7 else None
        )
        return {
            "id": ID_BASES["supporters"] + p,
            "organization_id": self.organization_id,
            "member_id": None if r.random() < 0.08 else 7_000_000 + p * 3 + r.randrange(3),
            "first_name": first + " " if r.random() < 0.01 else first,
            "last_name": last,
            "email_address": email_address,
            "phone": phone,
            "address1": address1,
            "address2": address2,
            "city": city,
            "state": state,
            "postal_code": postal_code,
            "country": country,
            "opt_in": opt_in,
            "sms_opt_in": r.random() < 0.12,
            "last_email_consent_decision_date": consent,
            "source_campaign_id": self._pick(r, "campaigns", p / max(1, self.counts["supporters"])) if r.random() < 0.8 else None,
            "origin": r.choice(_ORIGINS),
            "created_at": _fmt(created),
            "updated_at": _fmt(updated),
        }

    def _plan_core(self, p: int) -> tuple[random.Random, int | None, int | None, float, str]:
        """A plan's generator, supporter, campaign, amount and currency, drawn first
        because its transactions copy them."""
        r = self._rng("recurring_plans", p)
        share = p / max(1, self.counts["recurring_plans"])
        supporter_id = self._pick(r, "supporters", share)
        if self.specials["recurring_plans"].get(p) == "orphan_supporter" or r.random() < 0.03:
            supporter_id = self._orphan(r, "supporters")
        campaign_id = self._pick(r, "campaigns", share)
        amount = float(r.choice((10, 15, 20, 25, 25, 50, 100))) if r.random() < 0.85 else round(r.uniform(5, 300), 2)
        return r, supporter_id, campaign_id, amount, r.choice(_CURRENCIES)

    def _plan(self, p: int) -> dict:
        columns = self.tables["recurring_plans"].columns
        created, updated = columns["created_at"][p], columns["updated_at"][p]
        r, supporter_id, campaign_id, amount, currency = self._plan_core(p)
        status = r.choice(_PLAN_STATUSES)
        scheduled = status in ("active", "failing", "paused")
        canceled = status == "canceled"
        return {
            "id": ID_BASES["recurring_plans"] + p,
            "organization_id": self.organization_id,
            "supporter_id": supporter_id,
            "campaign_id": campaign_id,
            "status": status,
            "frequency": r.choice(_FREQUENCIES),
            "donation_amount": amount,
            "currency_code": currency,
            # A schedule, not a timestamp: active plans charge again after base_time.
            "next_processing_date": format_date(self.base + r.randrange(1, 31) * DAY) if scheduled else None,
            "canceled_at": _fmt(updated) if canceled else None,
            "cancel_reason_text": r.choice(_CANCEL_REASONS) if canceled else None,
            "created_at": _fmt(created),
            "updated_at": _fmt(updated),
        }

    def _transaction(self, p: int) -> dict:
        table = self.tables["transactions"]
        columns = table.columns
        r = self._rng("transactions", p)
        special = self.specials["transactions"].get(p)
        share = min(1.0, p / max(1, self.counts["transactions"]))
        plans = self.counts["recurring_plans"]
        plan_id = None
        if plans and (special == "plan" or r.random() < 0.15):
            plan_p = r.randrange(max(1, min(plans, int(share * plans) + 1)))
            plan_id = ID_BASES["recurring_plans"] + plan_p
            _, supporter_id, campaign_id, amount, currency = self._plan_core(plan_p)
        else:
            supporter_id = self._pick(r, "supporters", share)
            campaign_id = self._pick(r, "campaigns", share)
            amount = _gift_amount(r, special)
            currency = r.choice(_CURRENCIES)
        if special == "orphan_supporter" or r.random() < 0.004:
            supporter_id = self._orphan(r, "supporters")
        if special == "orphan_campaign" or r.random() < 0.003:
            campaign_id = self._orphan(r, "campaigns")
        method = r.choice(_PAYMENT_METHODS)
        if method in ("cc", "paypal"):
            fees = round(amount * 0.022 + 0.30, 2)
        elif method == "ach":
            fees = round(min(amount * 0.008, 5.0), 2)
        else:
            fees = 0.0
        covered = fees > 0 and r.random() < 0.35  # the donor chose to cover the fees
        total = round(amount + fees, 2) if covered else amount
        refunded = columns["refunded_at"][p]
        z = r.random() < 0.05
        return {
            "id": table.base_id + p,
            "organization_id": self.organization_id,
            "supporter_id": supporter_id,
            "campaign_id": campaign_id,
            "recurring_donation_plan_id": plan_id,
            "parent_transaction_id": table.base_id + p - 1 - r.randrange(min(p, 500)) if p and r.random() < 0.01 else None,
            "status": table.status_at(p),
            "payment_method": method,
            "currency_code": currency,
            "total_gross_amount": total,
            "donation_gross_amount": amount,
            "fees_amount": fees,
            "donation_net_amount": amount if covered else round(amount - fees, 2),
            "charged_currency_code": currency,
            "charged_total_gross_amount": f"{total:.2f}",
            "charged_fees_amount": f"{fees:.2f}",
            "purchased_at": _fmt(columns["purchased_at"][p], r.random() < 0.15),
            "refunded_at": _fmt(refunded, r.random() < 0.5),
            "created_at": _fmt(columns["created_at"][p], z),
            "updated_at": _fmt(columns["updated_at"][p], z),
        }

    def _campaign(self, p: int) -> dict:
        columns = self.tables["campaigns"].columns
        created, updated = columns["created_at"][p], columns["updated_at"][p]
        r = self._rng("campaigns", p)
        started = min(self.end, created + r.randrange(14 * DAY))
        ended = None
        if created < self.end - 400 * DAY and r.random() < 0.7:
            ended = min(self.end, started + r.randrange(30 * DAY, 180 * DAY))
        if ended is not None:
            status = "deactivated" if r.random() < 0.6 else "active"
        else:
            status = "active" if r.random() < 0.85 else "unpublished"
        goal = 150_000_000.0 if self.specials["campaigns"].get(p) == "huge_goal" else float(r.choice(_GOALS))
        return {
            "id": ID_BASES["campaigns"] + p,
            "organization_id": self.organization_id,
            "name": f"{r.choice(_CAMPAIGN_NAMES)} {time.gmtime(max(created, 0)).tm_year}",
            "type": "peer_to_peer" if r.random() < 0.4 else "donation",
            "status": status,
            "goal": goal,
            "raw_goal": f"{goal:.2f}",
            "currency_code": "USD",
            "started_at": _fmt(started),
            "ended_at": _fmt(ended if ended is not None else NULL),
            "created_at": _fmt(created),
            "updated_at": _fmt(updated),
        }


def _fmt(epoch: int, z: bool = False) -> str | None:
    return None if epoch == NULL else format_datetime(epoch, z)


def _gift_amount(r: random.Random, special: str | None) -> float:
    if special == "large_gift":
        return r.choice(_LARGE_GIFTS)
    if special == "amount_1234.56":
        return 1234.56
    if special == "amount_25":
        return 25.0
    u = r.random()
    if u < 0.002:
        return r.choice(_LARGE_GIFTS)
    if u < 0.72:
        return float(r.choice(_ROUND_AMOUNTS))
    return round(r.uniform(5, 2_000), 2)
