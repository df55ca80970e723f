"""Command-line options and the three sizes: the full run, `--quick` (under a minute in all) and
`--tiny` (a few seconds of load, for CI)."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"


@dataclass(frozen=True)
class Options:
    size: str
    warmup: float  # seconds before each measured window
    duration: float  # seconds of each measured window
    grace: float  # seconds after a window in which a sync started in it may still complete
    concurrency: int  # registration phases: users in the closed loop
    rate: float | None  # end to end: offered syncs per second; None: half of saturation
    in_flight: int  # end to end at saturation: syncs in flight
    # Purchases made beforehand, per second of a phase: a phase that uses them all ends early,
    # its rate still measured (over a shorter window). Faster than the goals with room to spare.
    registration_cap: float
    saturation_cap: float
    customers: int
    json_path: Path
    processes: int = 1  # the service's: `serve --workers N`, each with the API and a worker

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["json_path"] = str(self.json_path)
        return values


SIZES = {
    "full": Options("full", 3.0, 15.0, 10.0, 32, None, 64, 1000.0, 600.0, 16, DEFAULT_JSON),
    "quick": Options("quick", 1.0, 5.0, 3.0, 32, None, 64, 1000.0, 600.0, 16, DEFAULT_JSON),
    "tiny": Options("tiny", 0.3, 1.0, 2.0, 4, None, 4, 200.0, 100.0, 4, DEFAULT_JSON),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark storekit-sync against a minimal FastAPI+asyncpg baseline.",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="everything in under a minute")
    size.add_argument("--tiny", action="store_true", help="a few seconds of load (CI)")
    p.add_argument("--duration", type=float, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each phase")
    p.add_argument("--concurrency", type=int, help="registration phases: concurrent users")
    p.add_argument(
        "--rate",
        type=float,
        help="end to end: offered syncs per second (default: half the saturation just measured)",
    )
    p.add_argument("--in-flight", type=int, help="end to end at saturation: syncs in flight")
    p.add_argument(
        "--processes",
        type=int,
        help="service processes (serve --workers N), each with the API and a worker; default 1",
    )
    p.add_argument("--json", type=Path, dest="json_path", help=f"default {DEFAULT_JSON}")
    return p


LIMITS = {
    "duration": 3600.0,
    "concurrency": 1024,
    "rate": 5000.0,
    "in_flight": 1024,
    "processes": 64,
}


def _check(name: str, value: float) -> None:
    if not 0 < value <= LIMITS[name]:
        flag = name.replace("_", "-")
        raise SystemExit(f"python -m bench: --{flag} must be above 0 and at most {LIMITS[name]:g}")


def parse(argv: list[str] | None = None) -> Options:
    args = parser().parse_args(argv)
    options = SIZES["tiny" if args.tiny else "quick" if args.quick else "full"]
    overrides = {
        key: getattr(args, key)
        for key in (
            "duration",
            "warmup",
            "concurrency",
            "rate",
            "in_flight",
            "processes",
            "json_path",
        )
        if getattr(args, key) is not None
    }
    options = replace(options, **overrides)
    for name in LIMITS:
        if getattr(options, name) is not None:
            _check(name, getattr(options, name))
    if not 0 <= options.warmup <= 600:
        raise SystemExit("python -m bench: --warmup must be between 0 and 600")
    return options
