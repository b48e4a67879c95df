"""What the dashboard costs the worker: worker events/s with and without the dashboard and a page open.

    PYTHONPATH=. .venv/bin/python scripts/dashboard-cost.py --events 300000 --pairs 2

Needs a KDD production model in ANOMSTREAM_REGISTRY_DIR (`anomstream train --stream kdd`), the KDD
files in ANOMSTREAM_DATA_DIR, Debian's chromium and chromium-driver (`make system-deps`), and a broker:
ANOMSTREAM_BOOTSTRAP_SERVERS, or a temporary embedded one. Topics get a fresh prefix. The input topic is
filled first; then, alternately, a worker drains it alone and with the dashboard process and a headless
page open (each run its own consumer group). Prints one JSON line per run, then the dashboard's catch-up
rate over everything those runs wrote (--from-beginning). Run it on a quiet machine: the figures are
ratios of CPU time, and other jobs skew them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from consumers.worker import ScoringWorker
from producers.kdd import kdd_events
from producers.replay import ReplayProducer
from stream.broker import free_port, temporary_broker
from stream.kafka import create_topics
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support.data import corrected_sample
from tests.support.web import cpu_seconds, get_json, headless_chromium, http_status, spawn_dashboard, stop


@contextlib.contextmanager
def broker(settings: Settings) -> Iterator[str]:
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    with temporary_broker() as embedded:
        yield embedded.bootstrap


def browser_cpu_seconds() -> float:
    """CPU seconds used so far by every Chromium and chromedriver process (the headless page)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it exited meanwhile
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if "chrom" in name:
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while http_status(url) != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not ready after {timeout:.0f}s")
        time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    env = Settings()
    with broker(env) as bootstrap:
        settings = env.model_copy(
            update={"bootstrap_servers": bootstrap, "topic_prefix": f"cost{uuid.uuid4().hex[:6]}."}
        )
        create_topics(settings)
        events = kdd_events(
            corrected_sample(settings.data_dir, 100_000, seed=1), "corrected", True, args.events
        )
        ReplayProducer(settings, settings.topic("kdd"), 0, False, StopFlag(False)).run(events, args.events)
        logs = Path("out/dashboard-cost")
        logs.mkdir(parents=True, exist_ok=True)
        for run in range(2 * args.pairs):
            with_dashboard = run % 2 == 1
            dashboard = page = None
            if with_dashboard:
                port = free_port()
                dashboard = spawn_dashboard(settings, port, logs / f"dashboard-{run}.log")
                wait_ready(f"http://127.0.0.1:{port}/readyz")
                page = headless_chromium()
                page.get(f"http://127.0.0.1:{port}/")
                time.sleep(2)
                cpu0, browser0, frames0 = (
                    cpu_seconds(dashboard.pid),
                    browser_cpu_seconds(),
                    page.execute_script("return window.anomstream.frames"),
                )
            group = settings.model_copy(update={"group_id": f"{settings.topic_prefix}workers-{run}"})
            started = time.monotonic()
            stats = ScoringWorker(group, ["kdd"], worker_id=f"cost-{run}", stop=StopFlag(False)).run(
                args.events
            )
            wall = time.monotonic() - started
            line: dict = {"dashboard": with_dashboard, "worker_eps": round(stats.rate)}
            if dashboard is not None and page is not None:
                line["dashboard_cpu_pct"] = round(100 * (cpu_seconds(dashboard.pid) - cpu0) / wall, 1)
                line["browser_cpu_pct"] = round(100 * (browser_cpu_seconds() - browser0) / wall, 1)
                line["page_updates_per_s"] = round(
                    (page.execute_script("return window.anomstream.frames") - frames0) / wall, 2
                )
                page.quit()
                stop(dashboard)
            print(json.dumps(line), flush=True)
        port = free_port()
        dashboard = spawn_dashboard(settings, port, logs / "catch-up.log", "--from-beginning")
        started, total = time.monotonic(), 2 * args.pairs * args.events
        while True:
            if http_status(f"http://127.0.0.1:{port}/healthz") == 200:
                kdd = get_json(f"http://127.0.0.1:{port}/api/snapshot")["streams"]["kdd"]
                if kdd["scored"] + kdd["duplicates"] >= total:
                    break
            time.sleep(0.2)
        wall = time.monotonic() - started
        print(
            json.dumps(
                {"catch_up_events_per_s": round(total / wall), "dashboard_cpu_s": cpu_seconds(dashboard.pid)}
            )
        )
        stop(dashboard)


if __name__ == "__main__":
    main()
