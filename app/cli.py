"""The `storekit-sync` command: its commands and their options."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import load_settings
from app.db import resolve_database_url
from app.dev.guard import DevRefused
from app.embedded_postgres import EmbeddedPostgresError

if TYPE_CHECKING:
    from app.rotation import Tally


def _database_url() -> str:
    """The configured database, or the embedded one (started here, shared with child processes)."""
    settings = load_settings()
    url = resolve_database_url(settings.database_url, settings.data_dir)
    os.environ["DATABASE_URL"] = url  # uvicorn's worker processes join the same server
    return url


def cmd_migrate(_: argparse.Namespace) -> int:
    from app.migrate import migrate

    migrate(_database_url())
    print("storekit-sync: database is up to date", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.migrate import migrate

    migrate(_database_url())
    if args.no_worker:
        os.environ["RUN_WORKER"] = "false"
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=True,
    )
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    from app.simulator.server import rate_limits_of, serve

    serve(
        host=args.host,
        port=args.port,
        cert_dir=args.cert_dir,
        notify_url=args.notify_url,
        state_file=args.state_file,
        control_token=args.control_token or None,
        rate_limits=rate_limits_of(args.rate_window, args.rate_budget, args.no_rate_limits),
    )
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from app.dev.dev import run_dev
    from app.dev.guard import claim_port, hold_data_dir
    from app.migrate import migrate

    # Claimed before anything starts: DATA_DIR for this dev alone (held until the process ends)
    # and both ports, so that a refusal is one line and leaves nothing behind.
    held = hold_data_dir(load_settings().data_dir)
    listening = claim_port(args.host, args.port, "--port")
    claim_port("127.0.0.1", args.simulator_port, "--simulator-port").close()
    if args.fresh:
        _set_embedded_database_aside()
    migrate(_database_url())
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    try:
        run_dev(listening, sim_port=args.simulator_port)
    finally:
        held.close()
    return 0


def _set_embedded_database_aside() -> None:
    """`dev --fresh`: move DATA_DIR/postgres aside (never delete it); the next start makes a new one."""
    from app.embedded_postgres import set_aside

    settings = load_settings()
    if settings.database_url:
        print("storekit-sync: --fresh: DATABASE_URL is set, nothing to move", file=sys.stderr)
        return
    moved = set_aside(settings.data_dir)
    if moved is not None:
        print(f"storekit-sync: moved the old database aside to {moved}", file=sys.stderr)


def cmd_demo(_: argparse.Namespace) -> int:
    import tempfile

    from app.dev.demo import run_demo
    from app.migrate import migrate

    with tempfile.TemporaryDirectory(prefix="sks-demo-") as data_dir:  # short: a socket lives here
        os.environ["DATA_DIR"] = data_dir
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        migrate(_database_url())
        code = run_demo()
        from app.db import stop_embedded

        stop_embedded()
    return code


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    from app.migrate import migrate

    migrate(_database_url())
    if args.concurrency is not None:
        os.environ["WORKER_CONCURRENCY"] = str(args.concurrency)
    asyncio.run(_work())
    return 0


async def _work() -> None:
    """Run the job worker alone until SIGTERM or SIGINT; then finish or release what it holds."""
    import asyncio

    from app.config import load_settings as settings
    from app.logs import configure_logging
    from app.runtime import Runtime

    config = settings()
    configure_logging(config.log_level, config.effective_log_format)
    async with Runtime.started(config, run_worker=True) as runtime:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop_worker)
        await runtime.wait()


def cmd_rotate_secrets(args: argparse.Namespace) -> int:
    import asyncio

    from app.migrate import migrate

    migrate(_database_url())
    tallies = asyncio.run(_rotate(args.batch_size))
    for tally in tallies:
        print(tally.line(), flush=True)
    unreadable = sum(t.unreadable for t in tallies)
    if unreadable:
        print(
            f"storekit-sync: {unreadable} stored secrets open with neither SECRET_KEY nor"
            " SECRET_KEY_PREVIOUS (their tables and keys are in the log): keep"
            " SECRET_KEY_PREVIOUS until they are replaced",
            file=sys.stderr,
        )
    return 0 if all(t.ok for t in tallies) else 1


async def _rotate(batch_size: int) -> list[Tally]:
    """Every stored secret sealed again with SECRET_KEY (docs/api.md §10), a batch at a time."""
    from app.config import load_settings as settings
    from app.db import Database
    from app.logs import configure_logging
    from app.rotation import rotate_all
    from app.security import SecretBox, load_secret_key

    config = settings()
    configure_logging(config.log_level, config.effective_log_format)
    box = SecretBox(load_secret_key(config.secret_key, config.data_dir), config.secret_key_previous)
    db = await Database.open(resolve_database_url(config.database_url, config.data_dir), size=2)
    try:
        return await rotate_all(db, box, batch_size)
    finally:
        await db.close()


DESCRIPTION = """storekit-sync: Apple StoreKit 2 purchases verified with Apple and granted, behind
Cleeng's In-App API. Settings come from the environment, a .env file, or files in /run/secrets
(SECRETS_DIR); docs/api.md lists them all."""

EMBEDDED = "with no DATABASE_URL, an embedded PostgreSQL in DATA_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storekit-sync", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="migrate if needed, serve the API (and the worker)",
        description=f"Migrate the database if needed, serve the API, and run the job worker in"
        f" the same process unless --no-worker ({EMBEDDED}).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (%(default)s)")
    serve.add_argument(
        "--workers", type=int, default=1, help="API processes on this port (%(default)s)"
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="serve the API only; run `storekit-sync worker` processes for the jobs",
    )
    serve.set_defaults(func=cmd_serve)

    worker = commands.add_parser(
        "worker",
        help="the job worker alone (run any number)",
        description="The job worker alone: syncs, notifications, webhook deliveries, the"
        " reconciliation and retention. Run any number, on any machines, on one database.",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="jobs at once (default: WORKER_CONCURRENCY, 16)",
    )
    worker.set_defaults(func=cmd_worker)

    migrate = commands.add_parser(
        "migrate",
        help="apply the database migrations",
        description=f"Apply the database migrations, then exit ({EMBEDDED}).",
    )
    migrate.set_defaults(func=cmd_migrate)

    rotate = commands.add_parser(
        "rotate-secrets",
        help="seal every stored secret again with SECRET_KEY (then SECRET_KEY_PREVIOUS can go)",
        description="Seal every stored secret (Apple private keys, webhook secrets) again with"
        " SECRET_KEY, opening each with SECRET_KEY or SECRET_KEY_PREVIOUS. Prints counts by"
        " table; exits non-zero if a secret opens with no configured key.",
    )
    rotate.add_argument(
        "--batch-size", type=int, default=100, help="rows read at a time (%(default)s)"
    )
    rotate.set_defaults(func=cmd_rotate_secrets)

    dev = commands.add_parser(
        "dev",
        help="everything embedded: database, simulator, demo publisher",
        description="Everything on one machine: the embedded PostgreSQL, the App Store"
        " simulator, a webhook receiver that prints what it gets, the API and its worker, and a"
        " demo publisher wired to them. Keeps its data in DATA_DIR (./.data).",
    )
    dev.add_argument("--host", default="127.0.0.1", help="the API's address (%(default)s)")
    dev.add_argument("--port", type=int, default=8000, help="the API's port (%(default)s)")
    dev.add_argument(
        "--simulator-port",
        type=int,
        default=9000,
        help="the App Store simulator's port, on 127.0.0.1 (%(default)s)",
    )
    dev.add_argument(
        "--fresh",
        action="store_true",
        help="move DATA_DIR/postgres aside (kept, not deleted) and start with a new database",
    )
    dev.set_defaults(func=cmd_dev)

    demo = commands.add_parser(
        "demo",
        help="run the whole flow once and show each step",
        description="Run the whole flow once on fresh embedded parts (a temporary DATA_DIR),"
        " showing each request and its answer; exits non-zero if a step misbehaves.",
    )
    demo.set_defaults(func=cmd_demo)

    simulator = commands.add_parser(
        "simulator",
        help="the built-in App Store simulator",
        description="The built-in App Store simulator: Apple's App Store Server API, its"
        " signatures and notifications, controlled under /sim (see its /docs).",
    )
    simulator.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    simulator.add_argument("--port", type=int, default=9000, help="port to listen on (%(default)s)")
    simulator.add_argument(
        "--cert-dir",
        type=Path,
        default=None,
        help="keep its certificate chain here (root.der is what a service trusts); default:"
        " the chain in --state-file, else a new one each start",
    )
    simulator.add_argument(
        "--notify-url",
        default=None,
        help="post App Store Server Notifications here for apps that name no URL of their own",
    )
    simulator.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="keep its apps, purchases and notifications in this file across restarts",
    )
    simulator.add_argument(
        "--control-token",
        default=os.environ.get("SIMULATOR_CONTROL_TOKEN"),
        help="/sim needs Authorization: Bearer TOKEN (env SIMULATOR_CONTROL_TOKEN)",
    )
    simulator.add_argument(
        "--rate-window",
        type=float,
        default=3600.0,
        help="seconds of Apple's rate-limit window (%(default)s)",
    )
    simulator.add_argument(
        "--rate-budget",
        type=int,
        default=None,
        help="calls per window for every endpoint (default: Apple's own figures)",
    )
    simulator.add_argument(
        "--no-rate-limits", action="store_true", help="answer every call, never 429"
    )
    simulator.set_defaults(func=cmd_simulator)
    return parser


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit, so that clean-up (the embedded PostgreSQL) runs.

    uvicorn restores the handler it found and re-raises the signal when it has shut down.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _exit_on_sigterm()
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (EmbeddedPostgresError, DevRefused) as exc:  # one line that says what to do
        print(f"storekit-sync: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
