"""``anomstream up``: the whole pipeline on one machine, with a live summary.

broker (unless ANOMSTREAM_BOOTSTRAP_SERVERS) -> topics -> KDD model (trained if missing) ->
worker process(es) -> the drift monitor with --retrain -> the web dashboard (http://127.0.0.1:8050)
-> replay of real ``corrected`` connections (traffic the model, trained on the 10% file, has not seen:
a drift) -> live events/s, alerts, precision and recall read back from the ``scores`` topic, drift
events and promotions from ``drift-events`` and ``model-updates`` -> summary table. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from anomstream.dashboard import DEFAULT_PORT, dashboard_command
from consumers.supervisor import worker_command
from consumers.tally import ScoreTally, Tally
from producers.replay import ReplayProducer, ReplayStats
from stream.broker import EmbeddedBroker, port_open
from stream.kafka import create_topics, iter_topic, wait_for_broker
from stream.messages import decode_drift_event, decode_model_update
from stream.settings import Settings
from stream.signals import StopFlag

DRAIN_TIMEOUT_S = 120.0


DRIFT_METRICS_PORT = 9465


class ControlFeed:
    """Follows ``drift-events`` and ``model-updates`` from now on, for the live panel and the summary."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = StopFlag(install=False)
        self.drift_events: Counter[str] = Counter()  # by detector
        self.promotions: list[str] = []  # "v2 (drift:...)"
        self._threads = [
            threading.Thread(target=self._follow, args=(name,), name=f"follow-{name}", daemon=True)
            for name in ("drift", "model_updates")
        ]

    def start(self) -> ControlFeed:
        for thread in self._threads:
            thread.start()
        return self

    def _follow(self, name: str) -> None:
        messages = iter_topic(self.settings, self.settings.topic(name), from_beginning=False, follow=True,
                              stop=self.stop)  # fmt: skip
        for message in messages:
            try:
                if name == "drift":
                    self.drift_events[decode_drift_event(message.value()).detector] += 1
                else:
                    update = decode_model_update(message.value())
                    self.promotions.append(f"{update.detector} v{update.version} ({update.reason})")
            except ValueError:  # a malformed control message says nothing about the demo
                continue

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(5)


@dataclass
class DemoState:
    replay: ReplayStats | None = None
    replay_error: BaseException | None = None
    source: str = ""
    started: float = field(default_factory=time.monotonic)


class Demo:
    def __init__(self, settings: Settings, rate: float = 5000.0, limit: int = 300_000, replicas: int = 1,
                 eos: bool = False, console: Console | None = None,
                 dashboard_port: int | None = DEFAULT_PORT) -> None:  # fmt: skip
        self.settings = settings
        self.rate = rate
        self.limit = limit
        self.replicas = replicas
        self.eos = eos
        self.console = console or Console(stderr=True)
        self.stop = StopFlag()
        self.state = DemoState()
        self._broker: EmbeddedBroker | None = None
        self._worker: subprocess.Popen | None = None
        self.dashboard_port = dashboard_port  # None: no dashboard
        self._dashboard: subprocess.Popen | None = None
        self._drift: subprocess.Popen | None = None
        self.control: ControlFeed | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def _ensure_broker(self) -> None:
        if not self.settings.embedded_broker:
            self.console.print(f"using the Kafka cluster at {self.settings.bootstrap}")
            wait_for_broker(self.settings, timeout=30)
            return
        broker = EmbeddedBroker.for_settings(self.settings)
        if broker.running():
            self.console.print(f"reusing the embedded broker at {broker.bootstrap}")
            return
        with self.console.status("starting Apache Kafka (first run downloads its jars via Maven)..."):
            broker.start()
        self._broker = broker
        self.console.print(f"[green]Kafka[/] running at {broker.bootstrap}; logs in {broker.log_file}")

    def _ensure_data(self) -> None:
        """Real KDD files, downloaded if missing; when that fails the replay says it goes synthetic."""
        from stream.datasets import DatasetMissingError, find_kdd_file
        from stream.datasets.fetch import fetch

        try:
            find_kdd_file(self.settings.data_dir, "test")
            return
        except DatasetMissingError:
            pass
        self.console.print(f"KDD Cup 99 not found in {self.settings.data_dir}: downloading it from UCI")
        try:
            with self.console.status("downloading KDD Cup 99 (about 3.5 MB)..."):
                fetch("kdd", self.settings.data_dir)
        except Exception as exc:  # noqa: BLE001 - any failure means: go on with synthetic data
            self.console.print(f"[yellow]download failed ({exc}); the demo continues on synthetic data[/]")

    def _ensure_model(self) -> None:
        from models.registry import Registry
        from models.training import TrainingRequest, train

        registry = Registry(self.settings.registry_dir)
        prod = registry.production("kdd")
        if prod is not None:
            self.console.print(f"model: kdd/{prod['detector']} v{prod['version']} (production)")
            return
        self.console.print("no KDD model yet: training the dense autoencoder on normal traffic (~1 minute)")
        ref = train(registry, self.settings.data_dir, TrainingRequest("kdd", "ae", allow_synthetic=True))
        self.console.print(f"[green]trained[/] kdd/ae v{ref.version}")

    def _spawn(self, command: list[str], log_name: str) -> tuple[subprocess.Popen, Path]:
        """A process of the demo in its own session (Ctrl-C is not sent to it: the shutdown sends its
        group one SIGTERM), its output appended to ``log_name`` under the state folder."""
        log_path = self.settings.state_dir / log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "COLUMNS": "160"},
        )  # fmt: skip
        return process, log_path

    def _start_worker(self) -> None:
        args = ["--streams", "kdd", "--replicas", str(self.replicas)] + (["--eos"] if self.eos else [])
        self._worker, log_path = self._spawn(worker_command(*args), "worker.log")
        self.console.print(f"worker: {self.replicas} replica(s), pid {self._worker.pid}, log {log_path}")

    def _start_drift_monitor(self) -> None:
        """The drift monitor with --retrain: drift events, guarded retrains and promotions, live."""
        command = [sys.executable, "-m", "anomstream", "drift", "--stream", "kdd", "--retrain"]
        if not port_open("127.0.0.1", DRIFT_METRICS_PORT):
            command += ["--metrics-port", str(DRIFT_METRICS_PORT)]
        self._drift, log_path = self._spawn(command, "drift.log")
        self.console.print(f"drift monitor (--retrain): pid {self._drift.pid}, log {log_path}")

    def _start_dashboard(self) -> None:
        """The web dashboard as a process of its own (its own GIL: it never slows the replay)."""
        if self.dashboard_port is None:
            return
        address = f"http://127.0.0.1:{self.dashboard_port}/"
        if port_open("127.0.0.1", self.dashboard_port):
            taken = f"port {self.dashboard_port} is taken (a dashboard already at {address}?)"
            self.console.print(f"[yellow]{taken}: the demo starts none[/]")
            return
        self._dashboard, log_path = self._spawn(
            dashboard_command("--port", str(self.dashboard_port)), "dashboard.log"
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self._dashboard.poll() is None:
            if port_open("127.0.0.1", self.dashboard_port):
                self.console.print(f"[green]dashboard[/] at [bold]{address}[/] (log {log_path})")
                return
            time.sleep(0.2)
        if self._dashboard.poll() is None:
            self.console.print(f"dashboard starting at {address} (log {log_path})")
        else:
            self.console.print(f"[yellow]the dashboard did not start: see {log_path}; the demo goes on "
                               "without it[/]")  # fmt: skip

    def _replay(self) -> None:
        from producers.kdd import kdd_events, load_kdd_replay

        try:
            data_dir, say = self.settings.data_dir, self.console.print
            frame, self.state.source = load_kdd_replay(data_dir, "test", announce=say, fallback=True)
            events = kdd_events(frame, self.state.source, loop=self.limit > len(frame), limit=self.limit)
            producer = ReplayProducer(self.settings, self.settings.topic("kdd"), self.rate, False, self.stop)
            self.state.replay = producer.run(events, self.limit)
        except BaseException as exc:  # reported by the main thread
            self.state.replay_error = exc

    # -- run ------------------------------------------------------------------------------------
    def run(self) -> int:
        tally: ScoreTally | None = None
        try:
            self._ensure_broker()
            create_topics(self.settings)
            self._ensure_data()
            self._ensure_model()
            tally = ScoreTally(self.settings).start()
            self.control = ControlFeed(self.settings).start()
            self._start_worker()
            self._start_drift_monitor()
            self._start_dashboard()
            replay = threading.Thread(target=self._replay, name="replay", daemon=True)
            replay.start()
            self._watch(tally, replay)
            final, _ = tally.snapshot()
            self.console.print()
            self.console.print(self._summary(final))
            if self.state.replay_error is not None:
                self.console.print(f"[red]replay failed:[/] {self.state.replay_error}")
                return 1
            return 130 if self.stop else 0
        finally:
            if tally is not None:
                tally.close()
            if self.control is not None:
                self.control.close()
            self._shutdown()

    def _watch(self, tally: ScoreTally, replay: threading.Thread) -> None:
        drained_since: float | None = None
        with Live(self._live(tally), console=self.console, refresh_per_second=2) as live:
            while not self.stop:
                live.update(self._live(tally))
                if self._worker is not None and self._worker.poll() is not None:
                    self.console.print(f"[red]worker exited with {self._worker.returncode}[/]: see its log")
                    return
                if not replay.is_alive():
                    snapshot, _ = tally.snapshot()
                    sent = self.state.replay.delivered if self.state.replay else 0
                    if snapshot.events + snapshot.duplicates >= sent:
                        return
                    drained_since = drained_since or time.monotonic()
                    if time.monotonic() - drained_since > DRAIN_TIMEOUT_S:
                        self.console.print("[yellow]worker did not catch up within 2 minutes[/]")
                        return
                self.stop.wait(0.5)

    def _live(self, tally: ScoreTally) -> Group:
        snapshot, rate = tally.snapshot()
        table = Table(title="anomstream: KDD Cup 99 live", show_header=False, min_width=60)
        elapsed = time.monotonic() - self.state.started
        table.add_row("scored events", f"{snapshot.events:,} / {self.limit:,}")
        table.add_row("events/s (last 5s)", f"{rate:,.0f}")
        table.add_row("alerts", f"{snapshot.alerts:,}")
        table.add_row("precision / recall", f"{snapshot.precision:.3f} / {snapshot.recall:.3f}")
        self._control_rows(table)
        table.add_row("elapsed", f"{elapsed:.0f}s")
        return Group(table)

    def _control_rows(self, table: Table) -> None:
        if self.control is None:
            return
        events = sum(self.control.drift_events.values())
        detail = ", ".join(f"{n} {d}" for d, n in sorted(self.control.drift_events.items()))
        table.add_row("drift events", f"{events}" + (f" ({detail})" if detail else ""))
        promotions = self.control.promotions
        table.add_row("promotions / rollbacks", ", ".join(promotions[-3:]) if promotions else "none")

    def _summary(self, final: Tally) -> Table:
        table = Table(title="anomstream up: summary")
        table.add_column("measure")
        table.add_column("value", justify="right")
        replay = self.state.replay
        if replay is not None:
            table.add_row("replayed (source)", f"{replay.sent:,} ({self.state.source})")
            table.add_row("replay rate", f"{replay.rate:,.0f} ev/s")
            table.add_row("delivery failures", f"{replay.failed:,}")
        table.add_row("scored events", f"{final.events:,}")
        table.add_row("duplicate scores", f"{final.duplicates:,}")
        table.add_row("alerts", f"{final.alerts:,}")
        table.add_row("true / false positives", f"{final.tp:,} / {final.fp:,}")
        table.add_row("missed attacks", f"{final.fn:,}")
        table.add_row("precision", f"{final.precision:.4f}")
        table.add_row("recall", f"{final.recall:.4f}")
        self._control_rows(table)
        table.add_row("wall time", f"{time.monotonic() - self.state.started:.0f}s")
        return table

    def _shutdown(self) -> None:
        self.stop.set()
        for process, grace in ((self._dashboard, 10), (self._drift, 30), (self._worker, 60)):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(grace)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        if self._broker is not None:
            with self.console.status("stopping Kafka..."):
                self._broker.stop()
            self.console.print("Kafka stopped")
