"""Benchmark the Mailchimp push against the simulated Mailchimp over loopback HTTP.

    python bench/bench_mailchimp.py                      # 10,000 supporters, 50 ms latency
    python bench/bench_mailchimp.py --supporters 2000 --latency 0.02 --json

Measures, with the built-in plugin exactly as `supportersync plugins run mailchimp`
calls it (its real retry and batch-polling schedule):

1. the first push of N eligible supporters, each with four managed tags (the ownership
   tag and three segment labels): supporters a second, HTTP requests (batch status
   polls counted apart), the most simultaneous connections;
2. a push after `--changed` supporters changed (new lifetime amount and value tier):
   requests (goal: under 20);
3. a push with nothing changed: write requests (goal: 0).

Goals from the issue: at least 1,000 supporters a second and at most 200 requests
(polls excluded) for the first push of 10,000; the plugin we replace managed 4.5 a second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from supportersync.config import load_settings
from supportersync.db.engine import open_engine, upgrade
from supportersync.db.schema import supporter_stats, supporters
from supportersync.hookspecs import PluginContext
from supportersync.mailchimp import plugin as mailchimp_plugin
from supportersync.testing.mailchimp_sim import MailchimpSimulator

ORG = 1
TIERS = ("Prospect", "First-Time", "Small", "Regular", "Committed", "Major", "Principal", "Transformational")
ENGAGEMENT = ("Recent", "Active", "Warm", "Cooling", "Lapsed", "Dormant")
FREQUENCY = ("One-Time", "Repeat", "Frequent", "Loyal", "Champion")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def seed(engine: sa.Engine, count: int) -> None:
    now = datetime.now(timezone.utc)
    people = []
    stats = []
    for i in range(1, count + 1):
        people.append({"organization_id": ORG, "id": i, "email_address": f"Donor.{i}@supporters.org",
                       "first_name": f"Donor{i}", "last_name": "Bench", "email_opt_in": True,
                       "synced_at": now, "updated_at": now, "raw": {}, "raw_hash": "bench"})
        stats.append(_stats(i, Decimal(i % 997) * 10 + Decimal("0.50"), TIERS[i % len(TIERS)], now))
    with engine.begin() as conn:
        conn.execute(supporters.insert(), people)
        conn.execute(supporter_stats.insert(), stats)


def _stats(i: int, amount: Decimal, tier: str, now: datetime) -> dict[str, Any]:
    return {"organization_id": ORG, "supporter_id": i, "lifetime_amount": amount, "lifetime_count": i % 30 + 1,
            "first_gift_at": now - timedelta(days=400 + i % 300), "last_gift_at": now - timedelta(days=i % 700),
            "largest_gift": amount, "last_12_months_amount": amount, "last_12_months_count": 1,
            "active_plans_count": 0, "monthly_recurring_amount": Decimal(i % 5) * 10,
            "days_since_last_gift": i % 700, "value_tier": tier,
            "engagement_segment": ENGAGEMENT[i % len(ENGAGEMENT)], "frequency_segment": FREQUENCY[i % len(FREQUENCY)],
            "computed_at": now, "changed_at": now}


def change(engine: sa.Engine, count: int) -> None:
    """`count` supporters gave again: new lifetime amount, and a new value tier."""
    s = supporter_stats
    with engine.begin() as conn:
        for i in range(1, count + 1):
            tier = TIERS[(i + 1) % len(TIERS)]
            conn.execute(s.update().where(s.c.organization_id == ORG, s.c.supporter_id == i)
                         .values(lifetime_amount=s.c.lifetime_amount + 100, value_tier=tier,
                                 changed_at=datetime.now(timezone.utc)))


def measure(sim: MailchimpSimulator, context: PluginContext) -> dict[str, Any]:
    sim.reset_log()
    started = time.perf_counter()
    outcome = mailchimp_plugin.run_plugin(context=context, full=False, dry_run=False)
    seconds = time.perf_counter() - started
    log = list(sim.request_log)
    return {
        "status": outcome.status,
        "seconds": round(seconds, 2),
        "counts": {k: v for k, v in outcome.counts.items() if v},
        "requests": sim.count_requests(),
        "batch_polls": sum(1 for r in log if r.batch_poll),
        "write_requests": sum(1 for r in log if r.method in WRITES),
        "http_429": sum(1 for r in log if r.status == 429),
        "peak_connections": sim.peak_in_flight,
        "message": outcome.message,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supporters", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every simulated request")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-mailchimp-") as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = open_engine(url)
        upgrade(engine)
        seed(engine, args.supporters)
        sim = MailchimpSimulator(latency=args.latency)
        with sim.serve() as server:
            settings = load_settings(env={
                "SUPPORTERSYNC_DATABASE_URL": url,
                "SUPPORTERSYNC_CLASSY_ORGANIZATION_ID": str(ORG),
                "SUPPORTERSYNC_MAILCHIMP_API_KEY": sim.api_key,
                "SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID": sim.audience_id,
                "SUPPORTERSYNC_MAILCHIMP_API_URL": server.api_url,
                "HOME": folder,
            })
            context = PluginContext(settings, settings.org(), engine)
            first = measure(sim, context)
            first["supporters_per_second"] = round(args.supporters / first["seconds"], 1)
            members_ok = len(sim.members) == args.supporters and all(
                len(member.tags) == 4 for member in sim.members.values())
            change(engine, args.changed)
            changed = measure(sim, context)
            unchanged = measure(sim, context)
        engine.dispose()

    result = {"supporters": args.supporters, "changed": args.changed, "latency_seconds": args.latency,
              "first_push": first, "changed_push": changed, "unchanged_push": unchanged,
              "audience_complete": members_ok}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"Mailchimp push, simulated Mailchimp over loopback, {args.latency * 1000:.0f} ms added per request")
        print(f"first push of {args.supporters} supporters (4 managed tags each):")
        print(f"  {first['seconds']} s = {first['supporters_per_second']} supporters/s (goal >= 1000; "
              "the old plugin: 4.5)")
        print(f"  {first['requests']} requests excluding {first['batch_polls']} batch status polls (goal <= 200); "
              f"peak {first['peak_connections']} connections, {first['http_429']} answered 429")
        print(f"  audience has every member with its 4 tags: {members_ok}")
        print(f"push after {args.changed} supporters changed: {changed['requests']} requests "
              f"({changed['write_requests']} writes, {changed['batch_polls']} polls), {changed['seconds']} s "
              "(goal < 20 requests)")
        print(f"push with nothing changed: {unchanged['write_requests']} write requests, "
              f"{unchanged['requests']} requests in all (goal: 0 writes)")
    ok = (first["status"] == "succeeded" and members_ok and changed["requests"] < 20
          and unchanged["write_requests"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
