"""The benchmark harness runs at a tiny size, writes its JSON and stops what it started.

Benchmarks are never timed tests: nothing here looks at a figure, only at the shape of the results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = {"per_s", "p50_ms", "p90_ms", "p99_ms", "count", "ok", "errors", "cpu_s_per_1000"}
PROCESSES = {"service", "api", "simulator", "sink", "baseline", "postgres", "harness"}


def test_a_tiny_run_writes_every_figure_and_stops_its_processes(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())

    phases = {"service", "api", "api_jwt", "baseline", "ratio", "ratio_api"}
    assert results["registration"].keys() >= phases
    assert results["end_to_end"].keys() >= {"rate", "saturation"}
    for part in (*results["registration"].values(), *results["end_to_end"].values()):
        if isinstance(part, dict):
            assert part.keys() >= SUMMARY
            assert part["cpu_s_per_1000"].keys() >= PROCESSES
    assert results["cpu_s_per_1000_syncs"].keys() >= PROCESSES
    assert results["webhooks"].keys() >= {"available", "note"}
    goals = {
        "sync_cost_ratio",
        "registration_ratio",
        "registration_ratio_api",
        "half_load_p99",
        "jwt_cost_ratio",
        "apple_calls_per_sync",
    }
    assert results["goals"]["met"].keys() == goals
    assert results["figures"]["apple_calls_per_sync"] is not None, "the simulator counted calls"
    assert "register: ratio service / baseline" in done.stdout
    assert "register: ratio API alone / baseline" in done.stdout

    leftovers = [p for p in results["setup"]["pids"].values() if psutil.pid_exists(p)]
    assert not leftovers, f"processes still running after the harness: {leftovers}"


def test_the_reconciliation_measure_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "reconcile.json"
    args = ["--subscriptions", "40", "--notifications", "25", "--lapsed", "10", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.reconcile", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = json.loads(out.read_text())
    assert [step["step"][:2] for step in steps] == ["1.", "2.", "3.", "4.", "5."]
    assert (steps[0]["recovered"], steps[2]["recovered"]) == (25, 0)
    assert (steps[3]["checked"], steps[3]["corrected"]) == (10, 10)
    assert all(step["seconds"] >= 0 for step in steps)
