"""``python -m app.simulator``: the simulator on its own, with the options of
``storekit-sync simulator``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from app.simulator.ratelimit import HOUR_SECONDS
from app.simulator.server import rate_limits_of, serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--cert-dir", type=Path, default=None, help="keep the chain here")
    parser.add_argument("--notify-url", default=None, help="for apps without their own")
    parser.add_argument("--state-file", type=Path, default=None, help="keep the state here")
    parser.add_argument(
        "--control-token",
        default=os.environ.get("SIMULATOR_CONTROL_TOKEN"),
        help="/sim needs Authorization: Bearer TOKEN (env SIMULATOR_CONTROL_TOKEN)",
    )
    parser.add_argument(
        "--rate-window", type=float, default=HOUR_SECONDS, help="seconds rate limits apply over"
    )
    parser.add_argument(
        "--rate-budget", type=int, default=None, help="calls per window (default: Apple's)"
    )
    parser.add_argument("--no-rate-limits", action="store_true", help="do not limit calls")
    return parser


def main() -> None:
    args = _parser().parse_args()
    serve(
        args.host,
        args.port,
        args.cert_dir,
        args.notify_url,
        state_file=args.state_file,
        control_token=args.control_token or None,
        rate_limits=rate_limits_of(args.rate_window, args.rate_budget, args.no_rate_limits),
    )


if __name__ == "__main__":
    main()
