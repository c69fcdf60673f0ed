"""The built-in Mailchimp plugin: keeps one Mailchimp audience in step with the supporters.

Registered through the `supportersync` entry-point group like any third-party
plugin (pyproject: `mailchimp = "supportersync.mailchimp.plugin"`). The hooks below
delegate to a :class:`MailchimpPlugin`; tests register their own instance with the
simulator's transport injected.

Every push computes its diff from the database (supporters, supporter_stats and the
plugin's own tables), never from the ids a sync reports, so a push that failed or
never ran is caught up by the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from supportersync.errors import ConfigError, LockHeld
from supportersync.hookspecs import (
    PluginCheck,
    PluginCheckItem,
    PluginContext,
    PluginOutcome,
    PluginStatus,
    SyncResult,
    hookimpl,
)
from supportersync.locking import hold_locks
from supportersync.mailchimp.client import (
    MailchimpAuthError,
    MailchimpClient,
    MailchimpError,
    MailchimpNotFound,
    MailchimpUnavailable,
)
from supportersync.mailchimp.push import Pusher, PushReport
from supportersync.mailchimp.settings import (
    ENV_API_KEY,
    ENV_AUDIENCE_ID,
    MailchimpSettings,
    is_configured,
    load_mailchimp_settings,
)
from supportersync.timeutil import utcnow

LOCK_ENTITY = "mailchimp"
NOT_CONFIGURED = f"inactive: set {ENV_API_KEY} and {ENV_AUDIENCE_ID} to use it"


class MailchimpPlugin:
    """The hooks, with what they talk to injectable."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], datetime] = utcnow, client_options: dict[str, Any] | None = None) -> None:
        self.transport = transport
        self.sleep = sleep
        self.clock = clock
        self.client_options = dict(client_options or {})

    def client(self, settings: MailchimpSettings) -> MailchimpClient:
        options = dict(self.client_options)
        if self.transport is not None:
            options["transport"] = self.transport
        if self.sleep is not None:
            options["sleep"] = self.sleep
        return MailchimpClient.from_settings(settings, **options)

    # -- hooks ------------------------------------------------------------------------

    @hookimpl
    def plugin_status(self, context: PluginContext) -> PluginStatus:
        raw = context.org.mailchimp
        if not is_configured(raw):
            return PluginStatus(False, NOT_CONFIGURED)
        try:
            settings = load_mailchimp_settings(raw)
        except ConfigError as exc:
            return PluginStatus(False, str(exc))
        return PluginStatus(True, settings.describe())

    @hookimpl
    def check_plugin(self, context: PluginContext) -> PluginCheck:
        return self.check(context)

    @hookimpl
    def on_sync_completed(self, result: SyncResult, context: PluginContext) -> PluginOutcome:
        return self.push(context, full=False, dry_run=False, organization_id=result.organization_id)

    @hookimpl
    def run_plugin(self, context: PluginContext, full: bool, dry_run: bool) -> PluginOutcome:
        return self.push(context, full=full, dry_run=dry_run)

    # -- the work ---------------------------------------------------------------------

    def push(self, context: PluginContext, *, full: bool, dry_run: bool,
             organization_id: int | None = None) -> PluginOutcome:
        raw = context.org.mailchimp
        if not is_configured(raw):
            return PluginOutcome("skipped", message=f"Mailchimp plugin {NOT_CONFIGURED}.")
        settings = load_mailchimp_settings(raw)  # ConfigError: recorded as this plugin's failure
        organization_id = organization_id or context.org.classy.organization_id
        if not organization_id:
            # Only the id is needed here (the push reads the database, not Classy).
            raise ConfigError("The Mailchimp push needs the organization: SUPPORTERSYNC_CLASSY_ORGANIZATION_ID / "
                              "classy.organization_id is not set.")
        report = PushReport(settings.audience_id, dry_run=dry_run, full=full)
        try:
            with self.client(settings) as client:
                pusher = Pusher(context.engine, organization_id, settings, client, clock=self.clock)
                if dry_run:
                    pusher.run(full=full, dry_run=True, report=report)
                else:
                    with hold_locks(context.engine, organization_id, [LOCK_ENTITY]):
                        pusher.run(full=full, report=report)
        except LockHeld:
            return PluginOutcome("skipped", message="Another Mailchimp push for this organization is running; "
                                 "this one was skipped (the next run catches up).")
        except MailchimpError as exc:
            return report.outcome(error=exc)  # the caller logs and records failures
        outcome = report.outcome()
        if outcome.status == "partial":
            context.logger.warning("mailchimp: %s", outcome.message)
        return outcome

    def check(self, context: PluginContext) -> PluginCheck:
        """`plugins test mailchimp`: settings, key, /ping, account, audience, merge fields."""
        raw = context.org.mailchimp
        if not is_configured(raw):
            problem = f"Mailchimp is not configured: set {ENV_API_KEY} and {ENV_AUDIENCE_ID}."
            return PluginCheck(False, (PluginCheckItem("configured", False, NOT_CONFIGURED),), problem)
        items: list[PluginCheckItem] = []

        def failed(name: str, problem: str) -> PluginCheck:
            items.append(PluginCheckItem(name, False, problem))
            return PluginCheck(False, tuple(items), problem)

        try:
            settings = load_mailchimp_settings(raw)
        except ConfigError as exc:
            return failed("settings", str(exc))
        items.append(PluginCheckItem("settings", True, f"audience {settings.audience_id}, "
                                     f"new members {settings.status_if_new}"))
        items.append(PluginCheckItem("api key", True, f"well-formed, datacenter {settings.datacenter} "
                                     f"({settings.api_url})"))
        step = "ping"
        try:
            with self.client(settings) as client:
                items.append(PluginCheckItem("ping", True, client.ping() or "ok"))
                step = "account"
                account = client.account()
                items.append(PluginCheckItem("account", True, str(account.get("account_name") or "?")))
                step = "audience"
                try:
                    audience = client.audience(settings.audience_id)
                except MailchimpNotFound:
                    return failed("audience", f"Audience {settings.audience_id!r} not found in the Mailchimp "
                                  f"account {account.get('account_name') or '?'!r}: check {ENV_AUDIENCE_ID}.")
                stats = audience.get("stats") or {}
                items.append(PluginCheckItem("audience", True, f"{audience.get('name', '?')} "
                                             f"({stats.get('member_count', '?')} subscribed)"))
                step = "merge fields"
                existing = {str(f.get("tag", "")).upper() for f in client.merge_fields(settings.audience_id)}
        except MailchimpAuthError as exc:
            return failed(step, str(exc))
        except MailchimpUnavailable as exc:
            return failed(step, f"Network: {exc}")
        except MailchimpError as exc:
            return failed(step, str(exc))
        missing = [tag for tag in settings.merge_fields.values() if tag not in existing]
        if not missing:
            items.append(PluginCheckItem("merge fields", True, "all present"))
        elif settings.create_merge_fields:
            items.append(PluginCheckItem("merge fields", True, f"missing {', '.join(missing)}: created by the "
                                         "first push (create_merge_fields = true)"))
        else:
            items.append(PluginCheckItem("merge fields", True, f"missing {', '.join(missing)}: left out of every "
                                         "push until created in Mailchimp (create_merge_fields = false)"))
        return PluginCheck(True, tuple(items))


_default = MailchimpPlugin()


# Module-level hooks: what the entry point registers.

@hookimpl
def plugin_status(context: PluginContext) -> PluginStatus:
    return _default.plugin_status(context)


@hookimpl
def check_plugin(context: PluginContext) -> PluginCheck:
    return _default.check(context)


@hookimpl
def on_sync_completed(result: SyncResult, context: PluginContext) -> PluginOutcome:
    return _default.on_sync_completed(result, context)


@hookimpl
def run_plugin(context: PluginContext, full: bool, dry_run: bool) -> PluginOutcome:
    return _default.push(context, full=full, dry_run=dry_run)
