"""One pass at a time, whatever the number of workers and processes: the job's row is claimed
by one worker, and a pass whose lease ran out (its process frozen) finds its job claimed again at
its next step and stops without writing. The passes' records are the evidence."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from app.apple.gateway import KEY_PURPOSE, key_binding
from app.clock import MovableClock
from app.context import Context
from app.runtime import make_worker
from app.security import SecretBox
from app.simulator.server import SimulatorServer
from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.appstore import Apple, topics
from tests.helpers.processes import ServiceProcess, clean_env
from tests.helpers.reconcile import catch_up, due, passes, reconcile_job, run_pass
from tests.helpers.shop import add_app
from tests.helpers.simulator import eventually

MISSED = {"failDelivery": "SOCKET_ISSUE"}


async def _faults_used(apple: Apple) -> bool | None:
    return True if (await apple.shop.sim.get("/sim/faults")).json() == [] else None


async def test_a_pass_whose_lease_ran_out_stops_at_its_next_step(
    apple: Apple, clock: MovableClock, context: Context
) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "refund", expect=None, **MISSED)
    catch_up(clock)
    await due(context.db, clock)
    claimed = (await reconcile_job(context.db))["attempts"]
    await apple.shop.fault("delay", delaySeconds=1.5, times=1)  # the first pass's history call
    first, second = make_worker(context, concurrency=1), make_worker(context, concurrency=1)
    stalled = asyncio.create_task(first.drain())
    await eventually(lambda: _faults_used(apple))  # the first pass waits on Apple now
    clock.advance(context.settings.job_lease_seconds + 1)  # as if its process had frozen
    await second.drain()
    await stalled
    superseded, completed = (await passes(context.db))[-2:]
    assert superseded["outcome"] == "superseded" and superseded["holder"].endswith(
        f"#{claimed + 1}"
    )
    assert (superseded["recovered"], superseded["checked"]) == (0, 0)
    assert completed["outcome"] == "completed" and completed["holder"].endswith(f"#{claimed + 2}")
    assert completed["recovered"] == 1
    assert completed["started_at"] > superseded["started_at"]
    assert await apple.stored() == 1
    assert topics(await apple.events()) == ["subscriptionTerminated"]
    assert (await apple.access(customer))["accessGranted"] is False
    job = await reconcile_job(context.db)
    assert (job["attempts"], job["locked_by"]) == (claimed + 2, None), "rescheduled by the second"


def _pid(record: dict[str, Any]) -> int:
    return int(str(record["holder"]).split(":")[1])


def _worker(
    url: str, data_dir: Path, simulator: SimulatorServer, root: Path, log: Path
) -> ServiceProcess:
    env = clean_env(
        DATABASE_URL=url,
        DATA_DIR=str(data_dir),
        ADMIN_TOKEN=ADMIN_TOKEN,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        APPLE_ROOT_CERTIFICATES=str(root),
        APPLE_API_BASE_URL=simulator.base_url,
        APPLE_ONLINE_CHECKS="false",
        APPLE_RECONCILE_INTERVAL="1",
        JOB_LEASE_SECONDS="2",
    )
    return ServiceProcess(["worker"], env, log)


# Connections to the test's database busy with a statement or inside a transaction, but this one.
BUSY = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND (state <> 'idle' OR xact_start IS NOT NULL)
"""


async def _freeze_outside_a_transaction(context: Context, worker: ServiceProcess) -> None:
    """SIGSTOP the worker at a moment no connection to the database is in a transaction: frozen while
    it waits on Apple, as a process that hangs mid-pass. (Frozen inside one of its short step
    transactions, it would hold the job's row lock: the other worker's claim would wait for it,
    which keeps passes apart just as well, but this test is about the lease running out.)"""
    for _ in range(500):
        worker.process.send_signal(signal.SIGSTOP)
        if await context.db.fetchval(BUSY) == 0:  # its connections too: it holds no lock
            return
        worker.process.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.02)
    raise AssertionError("the worker was always inside a transaction")


async def _finished_by(context: Context, pid: int, since: int) -> bool | None:
    rows = [r for r in await passes(context.db) if r["id"] > since and r["finished_at"]]
    return True if any(_pid(r) == pid and r["outcome"] == "completed" for r in rows) else None


async def test_two_worker_processes_never_run_a_pass_at_once(
    apple: Apple,
    context: Context,
    reconcile_database_url: str,
    data_dir: Path,
    simulator: SimulatorServer,
    root_path: Path,
    tmp_path: Path,
) -> None:
    await apple.subscribed()
    since = max([r["id"] for r in await passes(context.db)], default=0)
    await apple.shop.fault("delay", delaySeconds=1.0)  # every call to Apple: a pass takes a while
    workers = [
        _worker(reconcile_database_url, data_dir, simulator, root_path, tmp_path / f"w{n}.log")
        for n in (1, 2)
    ]
    pids = {w.process.pid: w for w in workers}
    try:

        async def running() -> dict[str, Any] | None:
            rows = [r for r in await passes(context.db) if r["id"] > since]
            return next((r for r in rows if r["finished_at"] is None), None)

        frozen_pass = await eventually(running, 30)
        frozen = pids[_pid(frozen_pass)]
        await _freeze_outside_a_transaction(context, frozen)  # mid-pass, waiting on Apple
        other = next(pid for pid in pids if pid != frozen.process.pid)
        await eventually(lambda: _finished_by(context, other, frozen_pass["id"]), 30)
        frozen.process.send_signal(signal.SIGCONT)

        async def stopped() -> dict[str, Any] | None:
            rows = await passes(context.db)
            row = next(r for r in rows if r["id"] == frozen_pass["id"])
            return row if row["finished_at"] is not None else None

        superseded = await eventually(stopped, 30)
        await eventually(lambda: _finished_by(context, frozen.process.pid, superseded["id"]), 30)
    finally:
        for worker in workers:
            worker.process.send_signal(signal.SIGCONT)
            assert worker.stop() == 0, worker.output()
        await apple.shop.sim.delete("/sim/faults")
    assert (superseded["outcome"], superseded["recovered"]) == ("superseded", 0)
    ran = [r for r in await passes(context.db) if r["id"] > since and r["outcome"] != "superseded"]
    ran = [r for r in ran if r["finished_at"] is not None]
    assert {_pid(r) for r in ran} == set(pids), "both processes ran passes"
    ran.sort(key=lambda r: r["started_at"])
    for before, after in itertools.pairwise(ran):
        assert before["finished_at"] <= after["started_at"], (before, after)


def _unreadable_keys() -> float:
    return REGISTRY.get_sample_value("storekit_reconcile_unreadable_keys_total") or 0.0


async def test_an_app_whose_key_cannot_be_opened_is_left_out_and_the_others_reconciled(
    apple: Apple, clock: MovableClock, context: Context
) -> None:
    shop, db = apple.shop, context.db
    other = await add_app(shop)
    bought, customer = await apple.subscribed()
    await shop.act(bought["transactionId"], "renew")  # Apple renewed it, never said so
    await run_pass(db, apple.worker, clock)  # each app's history has its cursor
    # the other app's key sealed under a key no longer configured (SECRET_KEY_PREVIOUS dropped)
    stranger = SecretBox("gone-" + secrets.token_urlsafe(40))
    sealed = stranger.seal(
        "a private key", purpose=KEY_PURPOSE, bound_to=key_binding(shop.publisher.id, other)
    )
    await db.execute(
        "UPDATE storekit2_apps SET private_key_encrypted = $3"
        " WHERE publisher_id = $1 AND bundle_id = $2",
        shop.publisher.id,
        other,
        sealed,
    )
    expires = datetime.fromisoformat((await apple.subscription(customer))["expiresAt"])
    clock.advance((expires - clock.now()).total_seconds() + 11 * 60)
    counted = _unreadable_keys()
    record = await run_pass(db, apple.worker, clock)
    assert (record["outcome"], record["checked"], record["corrected"]) == ("stopped", 1, 1)
    assert other in record["detail"] and "a private key" not in record["detail"]
    assert (await apple.access(customer))["accessGranted"] is True, "the safety net read it"
    assert _unreadable_keys() == counted + 1
    cursors = await db.fetch(
        "SELECT * FROM notification_history_cursors WHERE publisher_id = $1", shop.publisher.id
    )
    noted = {row["bundle_id"]: row["last_error"] for row in cursors}
    assert noted[shop.bundle_id] is None and "key" in noted[other]
    job = await reconcile_job(db)
    interval = timedelta(seconds=context.settings.apple_reconcile_interval)
    assert job["run_at"] == record["started_at"] + interval, "rescheduled as usual, no crash"
