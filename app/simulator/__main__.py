"""``python -m app.simulator [--host] [--port] [--cert-dir] [--notify-url] [--state-file]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.simulator.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--cert-dir", type=Path, default=None)
    parser.add_argument("--notify-url", default=None)
    parser.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args()
    serve(args.host, args.port, args.cert_dir, args.notify_url, state_file=args.state_file)


if __name__ == "__main__":
    main()
