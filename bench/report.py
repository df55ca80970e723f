"""The results: one JSON document (`bench/results/latest.json`) and one table on stdout."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

from bench.options import Options
from bench.provision import Shop

SCHEMA = 1
GOALS = {
    "registration_ratio_min": 0.5,
    "e2e_p99_ms_max_at_200_per_s": 100.0,
    "saturation_syncs_per_s_min": 400.0,
}
PROCESSES = ("service", "api", "simulator", "sink", "postgres", "baseline", "harness")


def _ratio(mine: dict[str, Any], base: dict[str, Any]) -> float | None:
    if not base["per_s"]:
        return None
    return round(float(mine["per_s"]) / float(base["per_s"]), 3)


def _goals(registration: dict[str, Any], e2e: dict[str, Any]) -> dict[str, bool | None]:
    """Whether each goal is met; None when this run did not measure it (another offered rate)."""
    ratio, rate = registration["ratio"], e2e["rate"]
    p99 = rate["p99_ms"]
    limit = GOALS["e2e_p99_ms_max_at_200_per_s"]
    return {
        "registration_ratio": None if ratio is None else ratio >= GOALS["registration_ratio_min"],
        "e2e_p99_at_200_per_s": (
            (p99 is not None and p99 < limit) if rate["offered_per_s"] == 200.0 else None
        ),
        "saturation_throughput": e2e["saturation"]["per_s"] >= GOALS["saturation_syncs_per_s_min"],
    }


def assemble(
    options: Options,
    shop: Shop,
    setup: dict[str, Any],
    registration: dict[str, Any],
    e2e: dict[str, Any],
    sink: dict[str, Any],
) -> dict[str, Any]:
    registration = {
        **registration,
        "ratio": _ratio(registration["service"], registration["baseline"]),
        "ratio_api": _ratio(registration["api"], registration["baseline"]),
    }
    return {
        "schema": SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "options": options.as_json(),
        "setup": setup,
        "webhooks": {"available": shop.webhooks, "note": shop.webhook_note},
        "registration": registration,
        "end_to_end": e2e,
        "cpu_s_per_1000_syncs": e2e["saturation"]["cpu_s_per_1000"],
        "sink": sink,
        "goals": {**GOALS, "met": _goals(registration, e2e)},
    }


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _row(label: str, result: dict[str, Any]) -> str:
    cells = [_num(result["per_s"])] + [_num(result[k]) for k in ("p50_ms", "p90_ms", "p99_ms")]
    cells += [str(result["ok"]), str(result["errors"])]
    return f"{label:<44}" + "".join(f"{c:>10}" for c in cells)


def _cpu_row(label: str, result: dict[str, Any]) -> str:
    cells = [_num(result["cpu_s_per_1000"].get(name), 2) for name in PROCESSES]
    return f"{label:<44}" + "".join(f"{c:>10}" for c in cells)


def _met(flag: bool | None) -> str:
    return "n/a" if flag is None else "yes" if flag else "NO"


def table(results: dict[str, Any]) -> str:
    reg, e2e = results["registration"], results["end_to_end"]
    rate, sat = e2e["rate"], e2e["saturation"]
    head = ["per s", "p50 ms", "p90 ms", "p99 ms", "ok", "failed"]
    lines = [
        f"storekit-sync benchmark ({results['options']['size']}, "
        f"{results['options']['duration']:g} s per phase, "
        f"{results['options'].get('processes', 1)} service process(es), "
        f"{results['machine']['cpus']} CPUs, "
        f"load average at the end {results['machine']['load_average_at_end'][0]:g})",
        f"{'':<44}" + "".join(f"{h:>10}" for h in head),
        _row(f"register: service (c={reg['service']['concurrency']}, worker on)", reg["service"]),
        _row(
            f"register: baseline (c={reg['baseline']['concurrency']}, one INSERT)", reg["baseline"]
        ),
        _row(f"register: API alone (c={reg['api']['concurrency']}, --no-worker)", reg["api"]),
        f"{'register: ratio service / baseline':<44}{_num(reg['ratio'], 3):>10}",
        f"{'register: ratio API alone / baseline':<44}{_num(reg['ratio_api'], 3):>10}",
        _row(f"end to end: offered {rate['offered_per_s']:g}/s", rate),
        _row(f"end to end: saturation ({sat['in_flight']} in flight)", sat),
        f"  end to end measured as: {rate['measured']}",
        "  failed: not accepted, or not completed by the end of the grace period after the window;"
        " a percentile that falls on one shows as -",
        "",
        f"{'CPU s per 1,000':<44}" + "".join(f"{p:>10}" for p in PROCESSES),
        _cpu_row("register: service (per registration)", reg["service"]),
        _cpu_row("register: API alone (per registration)", reg["api"]),
        _cpu_row("register: baseline (per registration)", reg["baseline"]),
        _cpu_row(f"syncs at {rate['offered_per_s']:g}/s", rate),
        _cpu_row("syncs at saturation", sat),
        "",
        "goals: registration ratio >= 0.5: {}; e2e p99 < 100 ms at 200/s: {}; "
        "saturation >= 400 syncs/s: {}".format(*map(_met, results["goals"]["met"].values())),
    ]
    if not results["webhooks"]["available"]:
        lines.append(f"note: {results['webhooks']['note']}")
    return "\n".join(lines)
