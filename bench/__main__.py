"""`python -m bench [--quick | --tiny] [--duration S] [--concurrency N] [--rate R] [--json PATH]`."""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

from bench import report
from bench.options import parse
from bench.run import run


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every started process is stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = run(options)
    except KeyboardInterrupt:
        print("python -m bench: interrupted; every process was stopped", file=sys.stderr)
        return 130
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    options.json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(report.table(results))
    print(f"\nwritten: {options.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
