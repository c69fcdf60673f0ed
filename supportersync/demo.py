"""`supportersync demo`: the whole product on simulated accounts, without credentials.

The simulated Classy organization and Mailchimp audience (supportersync.testing) are
served on loopback from this process; every step is the real command, run as
`python -m supportersync ...` in a child process whose environment points at a demo
folder (config file and SQLite database) and at the simulators. The user's own
environment variables, config file and database are never read or written: every
SUPPORTERSYNC_* variable is replaced in the children's environment.

Between the first (full) sync and the incremental one, the demo changes things at the
source the way people do: new gifts, a refund, a consent withdrawal, a new supporter,
an unsubscribe in Mailchimp. The sync's safety lag is 0 in the demo, so changes made a
second ago are already inside the incremental window.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from supportersync.errors import ConfigError, SupportersyncError

DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret-not-a-real-one"
DEMO_ORGANIZATION_ID = 1001
SIZES = {"supporters": 200, "transactions": 1200, "recurring_plans": 40, "campaigns": 8}
STEP_TIMEOUT_SECONDS = 120
NEW_SUPPORTER = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada.lovelace@mail.example"}


class DemoFailed(SupportersyncError):
    """A demo step did not do what it should (the output says which)."""


@dataclass
class Step:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def command(self) -> str:
        return "supportersync " + " ".join(self.args)


class Reporter(Protocol):
    """How the demo shows its progress; the CLI renders it."""

    def section(self, title: str) -> None: ...

    def step(self, step: Step, *, show_output: bool) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class AudienceChange:
    email: str
    changes: list[str]


@dataclass
class DemoResult:
    folder: Path
    database: Path
    config: Path
    seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)
    audience_changes: list[AudienceChange] = field(default_factory=list)
    mailchimp: bool = False


def prepare_folder(folder: Path | None) -> Path:
    """A new temporary folder, or `folder` if it holds no earlier demo."""
    if folder is None:
        import tempfile

        return Path(tempfile.mkdtemp(prefix="supportersync-demo-"))
    folder = folder.expanduser().absolute()
    if (folder / "demo.db").exists():
        raise ConfigError(f"{folder} already holds a demo database; choose an empty folder with --dir "
                          "(or leave --dir out for a new temporary one).")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def mailchimp_plugin_available() -> bool:
    from supportersync.plugins import make_plugin_manager

    plugins = make_plugin_manager(["mailchimp"])
    return "mailchimp" in plugins.names()


class Demo:
    """One demo run in `folder`; `commands` is the set of top-level commands installed."""

    def __init__(self, folder: Path, reporter: Reporter, *, commands: Iterable[str],
                 python: str = sys.executable, columns: int | None = None,
                 sizes: Mapping[str, int] = SIZES, mailchimp: bool | None = None) -> None:
        self.folder = folder
        self.reporter = reporter
        self.commands = set(commands)
        self.python = python
        self.columns = columns or max(100, shutil.get_terminal_size((120, 24)).columns)
        self.sizes = dict(sizes)
        self.mailchimp = mailchimp_plugin_available() if mailchimp is None else mailchimp
        self.result = DemoResult(folder, folder / "demo.db", folder / "config.toml", mailchimp=self.mailchimp)

    # -- the story ------------------------------------------------------------------

    def run(self) -> DemoResult:
        from supportersync.testing.classy_sim import ClassySimulator

        started = time.monotonic()
        classy = ClassySimulator(organization_id=DEMO_ORGANIZATION_ID, client_id=DEMO_CLIENT_ID,
                                 client_secret=DEMO_CLIENT_SECRET, seed=2024, **self.sizes)
        classy_server = classy.serve()
        mailchimp = mailchimp_server = None
        try:
            if self.mailchimp:
                from supportersync.testing.mailchimp_sim import MailchimpSimulator

                mailchimp = MailchimpSimulator()
                mailchimp_server = mailchimp.serve()
            self._write_config(mailchimp)
            self.env = self._environment(classy_server, mailchimp_server)
            self._introduce(classy_server, mailchimp_server)

            self.reporter.section("1. Set up: create the tables, test every connection")
            self._cli("db", "upgrade")
            self._cli("config", "check")

            self.reporter.section("2. First sync: everything, then statistics"
                                  + (" and the Mailchimp push" if self.mailchimp else ""))
            self.reporter.note("A first run is always full. Under cron a successful run prints nothing: the "
                               "exit code and the sync_jobs table say what happened.")
            first = self._cli("run", "all", "--full")
            if "rejected" in first.stderr:
                self.reporter.note("The warning is expected: the simulated data uses example.com addresses, which "
                                   "Mailchimp refuses as fake. Refusals are recorded (see `jobs show`) and not "
                                   "retried until that supporter's data changes; the run still exits 0.")
            if "stats" in self.commands:
                self._cli("stats", "recompute", "--all")

            self.reporter.section("3. Meanwhile, at the source")
            for line in self._change_the_world(classy, mailchimp):
                self.reporter.note(line)

            self.reporter.section("4. Incremental sync: only what changed since the last run")
            before = _audience(mailchimp) if mailchimp is not None else {}
            self._cli("run", "all")
            if mailchimp is not None:
                self.result.audience_changes = _audience_diff(before, _audience(mailchimp))

            self.reporter.section("5. What to look at")
            self._cli("jobs", "list", show_output=True)
            self._show_last_job()
            if "stats" in self.commands:
                self._cli("stats", "summary", show_output=True)
            else:
                self.reporter.note("(`supportersync stats` is not installed: no segment summary.)")
            self._cli("status", "--max-age", "1h", show_output=True)
            if mailchimp is not None:
                self._report_audience(mailchimp)
        finally:
            classy_server.stop()
            if mailchimp_server is not None:
                mailchimp_server.stop()
        self.result.seconds = time.monotonic() - started
        return self.result

    def _introduce(self, classy_server: Any, mailchimp_server: Any) -> None:
        sizes = ", ".join(f"{count:,} {name.replace('_', ' ')}" for name, count in self.sizes.items())
        self.reporter.note(f"Demo folder: {self.folder}")
        self.reporter.note(f"  database {self.result.database} (SQLite), config {self.result.config}")
        self.reporter.note("  Your own configuration and database are not read or written.")
        self.reporter.note(f"Simulated Classy organization {DEMO_ORGANIZATION_ID} ({sizes}) at {classy_server.url}")
        if mailchimp_server is not None:
            self.reporter.note(f"Simulated Mailchimp audience sim-audience at {mailchimp_server.api_url}")
        else:
            self.reporter.note("The Mailchimp plugin is not installed: the demo runs without it.")

    # -- configuration --------------------------------------------------------------

    def _write_config(self, mailchimp: Any) -> None:
        lines = [
            "# Written by `supportersync demo`: the simulated accounts' credentials (not real ones).",
            f'database_url = "sqlite:///{self.result.database}"',
            "",
            "[classy]",
            f'client_id = "{DEMO_CLIENT_ID}"',
            f'client_secret = "{DEMO_CLIENT_SECRET}"',
            f"organization_id = {DEMO_ORGANIZATION_ID}",
        ]
        if mailchimp is not None:
            lines += ["", "[mailchimp]", f'api_key = "{mailchimp.api_key}"', f'audience_id = "{mailchimp.audience_id}"']
        fd = os.open(self.result.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(self.result.config, 0o600)

    def _environment(self, classy_server: Any, mailchimp_server: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTERSYNC_")}
        env.update(
            SUPPORTERSYNC_CONFIG=str(self.result.config),
            SUPPORTERSYNC_DATABASE_URL=f"sqlite:///{self.result.database}",
            SUPPORTERSYNC_CLASSY_API_URL=classy_server.api_url,
            SUPPORTERSYNC_CLASSY_TOKEN_URL=classy_server.token_url,
            # Changes made a second ago must fall inside the incremental window.
            SUPPORTERSYNC_SYNC_SAFETY_LAG_SECONDS="0",
            SUPPORTERSYNC_LOAD_PLUGINS="mailchimp" if mailchimp_server is not None else "",
            COLUMNS=str(self.columns),
            PYTHONIOENCODING="utf-8",
        )
        if mailchimp_server is not None:
            env["SUPPORTERSYNC_MAILCHIMP_API_URL"] = mailchimp_server.api_url
        return env

    # -- running commands -----------------------------------------------------------

    def _cli(self, *args: str, show_output: bool = True, expect: Iterable[int] = (0,), report: bool = True) -> Step:
        started = time.monotonic()
        try:
            done = subprocess.run([self.python, "-m", "supportersync", *args], env=self.env, capture_output=True,
                                  text=True, encoding="utf-8", errors="replace", timeout=STEP_TIMEOUT_SECONDS,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DemoFailed(f"`supportersync {' '.join(args)}` did not finish within "
                             f"{STEP_TIMEOUT_SECONDS} s.") from None
        step = Step(tuple(args), done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        self.result.steps.append(step)
        if report or step.exit_code not in tuple(expect):
            self.reporter.step(step, show_output=show_output)
        if step.exit_code not in tuple(expect):
            raise DemoFailed(f"`{step.command}` exited {step.exit_code}; its output is above. "
                             f"The demo folder {self.folder} keeps the database and config for a look.")
        return step

    def _show_last_job(self) -> None:
        listing = self._cli("jobs", "list", "--limit", "1", "--json", show_output=False, report=False)
        try:
            job_id = json.loads(listing.stdout)[0]["id"]
        except (ValueError, LookupError, TypeError):
            return
        self._cli("jobs", "show", str(job_id), show_output=True)

    # -- changes at the source ------------------------------------------------------

    def _change_the_world(self, classy: Any, mailchimp: Any) -> list[str]:
        now = datetime.now(UTC)
        gifts = _first_gifts(classy)
        people = _pick_people(classy, mailchimp, gifts, 5)
        if len(people) < 5:
            raise DemoFailed("The simulated data has too few supporters with an email address for the demo.")
        gift_a, gift_b, refund_of, withdraws, unsubscribes = people
        campaign = min(classy.records["campaigns"])
        lines = []
        for person, amount in ((gift_a, 250.0), (gift_b, 1500.0)):
            gift = classy.add("transactions", supporter_id=person["id"], campaign_id=campaign, status="success",
                              donation_gross_amount=amount, total_gross_amount=amount, fees_amount=0.0,
                              donation_net_amount=amount, currency_code="USD", recurring_donation_plan_id=None,
                              parent_transaction_id=None, refunded_at=None)
            lines.append(f"Classy: {_name(person)} gave ${amount:,.2f} (new transaction {gift['id']}).")
        refunded = gifts.get(refund_of["id"])
        if refunded is not None:
            classy.refund(refunded["id"])
            lines.append(f"Classy: transaction {refunded['id']} of {_name(refund_of)} "
                         f"(${float(refunded.get('total_gross_amount') or 0):,.2f}) was refunded.")
        classy.update("supporters", withdraws["id"], opt_in=False, last_email_consent_decision_date=now)
        lines.append(f"Classy: {_name(withdraws)} withdrew email consent.")
        newcomer = classy.add("supporters", opt_in=True, last_email_consent_decision_date=now, **NEW_SUPPORTER)
        classy.add("transactions", supporter_id=newcomer["id"], campaign_id=campaign, status="success",
                   donation_gross_amount=50.0, total_gross_amount=50.0, fees_amount=0.0, donation_net_amount=50.0,
                   currency_code="USD", recurring_donation_plan_id=None, parent_transaction_id=None, refunded_at=None)
        lines.append(f"Classy: a new supporter, {_name(newcomer)}, gave $50.00 and opted in to email.")
        if mailchimp is not None:
            mailchimp.unsubscribe(unsubscribes["email_address"].strip(), by="self")
            lines.append(f"Mailchimp: {unsubscribes['email_address'].strip()} clicked \"unsubscribe\" in a newsletter.")
        self.unsubscribed = unsubscribes["email_address"].strip() if mailchimp is not None else None
        return lines

    def _report_audience(self, mailchimp: Any) -> None:
        changes = self.result.audience_changes
        self.reporter.section("What the incremental run changed in the Mailchimp audience")
        if not changes:
            self.reporter.note("Nothing changed.")
        for change in changes:
            self.reporter.note(f"  {change.email}: {'; '.join(change.changes)}")
        if self.unsubscribed:
            member = mailchimp.member(self.unsubscribed)
            still = member is not None and member.status == "unsubscribed"
            again = [e for e in mailchimp.resubscribed()]
            self.reporter.note(
                f"  {self.unsubscribed} unsubscribed in Mailchimp and "
                + ("is still unsubscribed" if still else f"is now {member.status if member else 'gone'}")
                + ("; nobody who unsubscribed was subscribed again." if not again
                   else f"; {len(again)} member(s) were subscribed again (this should never happen)."))


# -- helpers --------------------------------------------------------------------------


def _name(record: Mapping[str, Any]) -> str:
    name = f"{(record.get('first_name') or '').strip()} {(record.get('last_name') or '').strip()}".strip()
    return f"{name or 'supporter'} ({record['id']})"


def _pick_people(classy: Any, mailchimp: Any, gifts: Mapping[int, Any], count: int) -> list[dict[str, Any]]:
    """Distinct supporters with a unique, plain email address, subscribed in Mailchimp if it runs."""
    by_email: dict[str, list[dict[str, Any]]] = {}
    for supporter_id in classy.records["supporters"]:
        record = dict(classy.records["supporters"][supporter_id])
        email = (record.get("email_address") or "").strip().lower()
        if email and "@" in email:
            by_email.setdefault(email, []).append(record)
    chosen = []
    for email, records in sorted(by_email.items(), key=lambda item: item[1][0]["id"]):
        record = records[0]
        if len(records) != 1 or record["email_address"] != record["email_address"].strip() or not record.get("opt_in"):
            continue
        if mailchimp is not None:
            member = mailchimp.member(email)
            if member is None or member.status != "subscribed":
                continue
        if record["id"] not in gifts:
            continue
        chosen.append(record)
        if len(chosen) == count:
            break
    return chosen


def _first_gifts(classy: Any) -> dict[int, dict[str, Any]]:
    """Supporter id -> one successful transaction of theirs."""
    gifts: dict[int, dict[str, Any]] = {}
    for transaction_id in classy.records["transactions"]:
        record = classy.records["transactions"][transaction_id]
        if record.get("status") == "success" and record.get("supporter_id") not in gifts:
            gifts[record.get("supporter_id")] = dict(record)
    return gifts


def _audience(mailchimp: Any) -> dict[str, tuple[str, str, frozenset[str], dict[str, Any]]]:
    return {key: (m.email_address, m.visible_status, frozenset(m.tags), dict(m.merge_fields))
            for key, m in list(mailchimp.members.items())}


def _audience_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[AudienceChange]:
    changes = []
    for key, (email, status, tags, fields) in after.items():
        if key not in before:
            shown = ", ".join(sorted(tags))
            changes.append(AudienceChange(email, [f"added as {status}" + (f", tags {shown}" if shown else "")]))
            continue
        _, old_status, old_tags, old_fields = before[key]
        what = []
        if status != old_status:
            what.append(f"{old_status} -> {status}")
        if tags - old_tags:
            what.append("tagged " + ", ".join(sorted(tags - old_tags)))
        if old_tags - tags:
            what.append("untagged " + ", ".join(sorted(old_tags - tags)))
        moved = [f"{name} {old_fields.get(name, '')!s} -> {value!s}" for name, value in sorted(fields.items())
                 if old_fields.get(name) != value]
        if moved:
            what.append(", ".join(moved))
        if what:
            changes.append(AudienceChange(email, what))
    for key, (email, status, _, _) in before.items():
        if key not in after:
            changes.append(AudienceChange(email, [f"removed (was {status})"]))
    return sorted(changes, key=lambda c: c.email.lower())

