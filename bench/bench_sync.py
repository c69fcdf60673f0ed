"""Benchmark: full and incremental syncs against the simulated Classy account over loopback.

Runs the real CLI (`python -m supportersync`) in a child process, so wall time includes
start-up and peak memory is the child's own (ru_maxrss). The simulator runs in another
process so it does not share our GIL.

    python bench/bench_sync.py                      # SQLite and PostgreSQL, all scenarios
    python bench/bench_sync.py --databases sqlite --supporters 20000 --transactions 120000

Scenarios:
  full        full sync of supporters + transactions (+ plans, campaigns), no added latency,
              no request budget: records per second and peak memory
  latency     full sync with --latency per request and the default request budget
              (1,200/minute): records per second against what the budget allows
  memory      peak memory of full syncs at two sizes (is it flat as data grows?)
  incremental an incremental run that finds nothing new: requests and wall time
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from supportersync.testing.classy_sim import settings_env

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("SUPPORTERSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"


@contextmanager
def simulator(supporters: int, transactions: int, latency: float) -> Iterator[tuple[str, int]]:
    plans, campaigns = max(1, supporters // 50), max(1, supporters // 1000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "supportersync.testing.classy_sim", "--port", "0", "--seed", "1",
         "--supporters", str(supporters), "--transactions", str(transactions),
         "--recurring-plans", str(plans), "--campaigns", str(campaigns), "--latency", str(latency),
         "--rate-limit", "1000000", "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        yield url, supporters + transactions + plans + campaigns
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def environment(db_url: str, sim_url: str, budget: int, sim_org: int = 1001) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTERSYNC_")}
    env.update(
        settings_env(sim_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, organization_id=sim_org),
        SUPPORTERSYNC_DATABASE_URL=db_url,
        SUPPORTERSYNC_CLASSY_REQUESTS_PER_MINUTE=str(budget),
        SUPPORTERSYNC_LOAD_PLUGINS="",
        SUPPORTERSYNC_CONFIG=os.devnull,
    )
    return env


def run_child(env: dict[str, str], *args: str) -> tuple[float, float, int]:
    """(wall seconds, peak RSS of the child in MB, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "supportersync", *args], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode:
        print(proc.stderr, file=sys.stderr)
    # ru_maxrss of children is the largest child so far: only meaningful when it grew.
    return wall, max(peak, before) / 1024, proc.returncode


def last_job(db_url: str) -> dict:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM sync_jobs ORDER BY id DESC LIMIT 1")).one()
            return dict(row._mapping)
    finally:
        engine.dispose()


def full_sync(kind: str, supporters: int, transactions: int, latency: float, budget: int) -> dict:
    with simulator(supporters, transactions, latency) as (sim_url, records), database(kind) as db_url:
        env = environment(db_url, sim_url, budget)
        subprocess.run([sys.executable, "-m", "supportersync", "db", "upgrade"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        wall, peak, code = run_child(env, "run", "all", "--full")
        job = last_job(db_url)
        inc_wall, _, inc_code = run_child(env, "run", "all", "--incremental")
        inc_job = last_job(db_url)
    return {"db": kind, "records": records, "wall": wall, "rate": records / wall, "peak_mb": peak, "code": code,
            "requests": job["requests"], "status": job["status"], "inc_wall": inc_wall, "inc_code": inc_code,
            "inc_requests": inc_job["requests"], "inc_status": inc_job["status"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--supporters", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=600_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--latency-supporters", type=int, default=10_000,
                        help="size of the latency scenario (it runs at the budget's pace)")
    parser.add_argument("--budget", type=int, default=1200, help="requests per minute in the latency scenario")
    parser.add_argument("--scenarios", default="full,latency,memory")
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    for kind in args.databases.split(","):
        if "full" in scenarios:
            r = full_sync(kind, args.supporters, args.transactions, 0.0, 0)
            print(f"[{kind}] full sync, no latency, no budget: {r['records']:,} records in {r['wall']:.1f} s "
                  f"= {r['rate']:,.0f} records/s; peak RSS {r['peak_mb']:.0f} MB; {r['requests']} requests; "
                  f"exit {r['code']} ({r['status']})")
            print(f"[{kind}] incremental run finding nothing new: {r['inc_requests']} requests (1 token + 4 "
                  f"entities), {r['inc_wall']:.2f} s wall including start-up; exit {r['inc_code']}")
        if "memory" in scenarios:
            small = full_sync(kind, args.supporters // 4, args.transactions // 4, 0.0, 0)
            print(f"[{kind}] peak RSS at {small['records']:,} records: {small['peak_mb']:.0f} MB "
                  "(compare with the full size above)")
        if "latency" in scenarios:
            n = args.latency_supporters
            r = full_sync(kind, n, n * 6, args.latency, args.budget)
            allowed = args.budget / 60 * 100  # records a second the budget allows at 100 a page
            print(f"[{kind}] full sync, {args.latency * 1000:.0f} ms per request, budget {args.budget}/min: "
                  f"{r['records']:,} records in {r['wall']:.1f} s = {r['rate']:,.0f} records/s = "
                  f"{r['rate'] / allowed:.0%} of the {allowed:,.0f} records/s the budget allows; exit {r['code']}")


if __name__ == "__main__":
    main()
