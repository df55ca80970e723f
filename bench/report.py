"""The results: one JSON document (`bench/results/latest.json`) and one table on stdout."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

from bench.options import Options
from bench.provision import Shop

SCHEMA = 2
GOALS = {
    "sync_cost_ratio_max": 12.0,  # service CPU per sync / baseline CPU per registration
    "registration_ratio_min": 0.5,  # with the worker on
    "registration_ratio_api_min": 0.7,  # the API alone
    "half_load_p99_ms_max": 100.0,  # 202 to the webhook, at half the saturation
    "jwt_cost_ratio_max": 1.2,  # a customer-JWT register / a publisher-token register
    "apple_calls_per_sync_max": 1.05,  # auto-renewable purchases
}
PROCESSES = ("service", "api", "simulator", "sink", "postgres", "baseline", "harness")


def _ratio(mine: dict[str, Any], base: dict[str, Any]) -> float | None:
    if not base["per_s"]:
        return None
    return round(float(mine["per_s"]) / float(base["per_s"]), 3)


def _cpu(result: dict[str, Any], process: str) -> float | None:
    value = result["cpu_s_per_1000"].get(process)
    return None if value is None else float(value)


def _quotient(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else round(top / bottom, 2)


def derived(registration: dict[str, Any], e2e: dict[str, Any]) -> dict[str, float | None]:
    """The figures the goals are about, each a ratio measured in this one run."""
    saturation = e2e["saturation"]
    accepted = saturation["statuses"].get("202", 0)
    calls = saturation.get("apple_calls")
    return {
        "registration_ratio": _ratio(registration["service"], registration["baseline"]),
        "registration_ratio_api": _ratio(registration["api"], registration["baseline"]),
        "sync_cost_ratio": _quotient(
            _cpu(saturation, "service"), _cpu(registration["baseline"], "baseline")
        ),
        "jwt_cost_ratio": _quotient(
            _cpu(registration["api_jwt"], "api"), _cpu(registration["api"], "api")
        ),
        "apple_calls_per_sync": None
        if not accepted or calls is None
        else round(calls / accepted, 3),
        "half_load_p99_ms": e2e["rate"]["p99_ms"],
    }


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def _goals(figures: dict[str, float | None]) -> dict[str, bool | None]:
    """Whether each goal is met; None when this run could not measure it."""
    g = GOALS
    return {
        "sync_cost_ratio": _at_most(figures["sync_cost_ratio"], g["sync_cost_ratio_max"]),
        "registration_ratio": _at_least(figures["registration_ratio"], g["registration_ratio_min"]),
        "registration_ratio_api": _at_least(
            figures["registration_ratio_api"], g["registration_ratio_api_min"]
        ),
        "half_load_p99": _at_most(figures["half_load_p99_ms"], g["half_load_p99_ms_max"]),
        "jwt_cost_ratio": _at_most(figures["jwt_cost_ratio"], g["jwt_cost_ratio_max"]),
        "apple_calls_per_sync": _at_most(
            figures["apple_calls_per_sync"], g["apple_calls_per_sync_max"]
        ),
    }


def assemble(
    options: Options,
    shop: Shop,
    setup: dict[str, Any],
    registration: dict[str, Any],
    e2e: dict[str, Any],
    sink: dict[str, Any],
) -> dict[str, Any]:
    figures = derived(registration, e2e)
    registration = {
        **registration,
        "ratio": figures["registration_ratio"],
        "ratio_api": figures["registration_ratio_api"],
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
        "figures": figures,
        "goals": {**GOALS, "met": _goals(figures)},
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


def _goal_lines(results: dict[str, Any]) -> list[str]:
    figures, met, g = results["figures"], results["goals"]["met"], results["goals"]
    rows = (
        ("sync cost ratio (service CPU per sync / baseline per registration)", "sync_cost_ratio",
         f"<= {g['sync_cost_ratio_max']:g}", 2),
        ("registration ratio, worker on", "registration_ratio",
         f">= {g['registration_ratio_min']:g}", 3),
        ("registration ratio, the API alone", "registration_ratio_api",
         f">= {g['registration_ratio_api_min']:g}", 3),
        ("p99 202 to webhook at half the saturation, ms", "half_load_p99",
         f"<= {g['half_load_p99_ms_max']:g}", 1),
        ("customer-JWT register CPU / publisher-token register", "jwt_cost_ratio",
         f"<= {g['jwt_cost_ratio_max']:g}", 2),
        ("Apple calls per sync", "apple_calls_per_sync",
         f"<= {g['apple_calls_per_sync_max']:g}", 3),
    )  # fmt: skip
    lines = [f"{'goal':<66}{'measured':>10}{'target':>10}{'met':>6}"]
    for label, key, target, digits in rows:
        value = figures.get(key if key != "half_load_p99" else "half_load_p99_ms")
        lines.append(f"{label:<66}{_num(value, digits):>10}{target:>10}{_met(met[key]):>6}")
    return lines


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
        _row(
            f"register: API alone, customer JWT (c={reg['api_jwt']['concurrency']})", reg["api_jwt"]
        ),
        f"{'register: ratio service / baseline':<44}{_num(reg['ratio'], 3):>10}",
        f"{'register: ratio API alone / baseline':<44}{_num(reg['ratio_api'], 3):>10}",
        _row(f"end to end: offered {rate['offered_per_s']:g}/s (half)", rate),
        _row(f"end to end: saturation ({sat['in_flight']} in flight)", sat),
        f"  end to end measured as: {rate['measured']}",
        "  failed: not accepted, or not completed by the end of the grace period after the window;"
        " a percentile that falls on one shows as -",
        "",
        f"{'CPU s per 1,000':<44}" + "".join(f"{p:>10}" for p in PROCESSES),
        _cpu_row("register: service (per registration)", reg["service"]),
        _cpu_row("register: API alone (per registration)", reg["api"]),
        _cpu_row("register: API alone, customer JWT", reg["api_jwt"]),
        _cpu_row("register: baseline (per registration)", reg["baseline"]),
        _cpu_row(f"syncs at {rate['offered_per_s']:g}/s", rate),
        _cpu_row("syncs at saturation", sat),
        "",
        *_goal_lines(results),
    ]
    if not results["webhooks"]["available"]:
        lines.append(f"note: {results['webhooks']['note']}")
    return "\n".join(lines)
