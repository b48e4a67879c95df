"""``anomstream up``: the whole pipeline on one machine, with a live summary.

broker (unless ANOMSTREAM_BOOTSTRAP_SERVERS) -> topics -> KDD model (trained if missing) ->
worker process(es) -> the incident stage (``incidents run --eos``: alerts grouped into incidents)
-> the drift monitor with --retrain -> the web dashboard (http://127.0.0.1:8050)
-> replay of real ``corrected`` connections (traffic the model, trained on the 10% file, has not seen:
a drift) -> live events/s, alerts, precision and recall read back from the ``scores`` topic, drift
events and promotions from ``drift-events`` and ``model-updates`` -> summary table, with the incidents
read back from the stage's topics (incidents, open, alerts grouped, label purity). Ctrl-C stops
everything it started.

The live figures are the dashboard's: the dashboard's :class:`~anomstream.dashboard.feed.Feed` keeps
an :class:`~anomstream.dashboard.aggregate.Aggregator` up to date in this process, and
:class:`DemoFigures` reads its frames for the terminal.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from anomstream.dashboard import DEFAULT_PORT, dashboard_command
from anomstream.dashboard.aggregate import Aggregator, registry_thresholds
from anomstream.dashboard.feed import Feed
from anomstream.dashboard.metrics import DashboardMetrics
from anomstream.incident_summary import IncidentSummary, members_offsets, read_summary, wait_grouped
from consumers.supervisor import worker_command
from models.evaluation.confusion import Confusion
from models.evaluation.report import cell
from producers.replay import ReplayProducer, ReplayStats
from stream.broker import EmbeddedBroker, port_open
from stream.kafka import create_topics, wait_for_broker
from stream.settings import Settings
from stream.signals import StopFlag

DRAIN_TIMEOUT_S = 120.0
FEED_READY_S = 15.0  # the feed is positioned at the end of ``scores`` before anything is replayed


DRIFT_METRICS_PORT = 9465
INCIDENTS_METRICS_PORT = 9102
INCIDENTS_DRAIN_S = 60.0  # how long the summary waits for the stage to group the last alerts


@dataclass
class Figures:
    """The demo's live figures: those of the dashboard's stream panel, plus the control events."""

    scored: int = 0
    duplicates: int = 0
    alerts: int = 0
    rate: float = 0.0  # events scored per second over the last 5 s
    confusion: Confusion = field(default_factory=Confusion)
    drift_events: Counter[str] = field(default_factory=Counter)  # by detector
    model_updates: list[str] = field(default_factory=list)  # timeline titles, oldest first


class DemoFigures:
    """Reads the dashboard's aggregation for the terminal: each :meth:`refresh` takes a frame (as a
    page would, which also drains what the aggregator buffers for pages) and keeps the drift events
    and model updates since ``since``: the feed reads those topics from the beginning, for the
    timeline, and what happened before the demo started is not the demo's."""

    def __init__(self, aggregator: Aggregator, stream: str, since: datetime) -> None:
        self.aggregator = aggregator
        self.stream = stream
        self.since = since
        self.figures = Figures()

    def refresh(self, now: float | None = None) -> Figures:
        with self.aggregator.lock:
            frame = self.aggregator.delta(now)
        view = frame["streams"].get(self.stream)
        figures = self.figures
        if view is not None:
            counts = view["so_far"]
            figures.scored, figures.duplicates = view["scored"], view["duplicates"]
            figures.alerts, figures.rate = view["alerts"], view["scored_rate"]
            figures.confusion = Confusion(counts["tp"], counts["fp"], counts["fn"], counts["tn"])
        for entry in reversed(frame["timeline"]):  # newest first in a frame
            if entry["stream"] != self.stream or not self._new(entry["time"]):
                continue
            if entry["kind"] == "drift":
                figures.drift_events[entry["detector"]] += 1
            else:
                figures.model_updates.append(entry["title"])
        return figures

    def _new(self, time_text: Any) -> bool:
        try:
            at = datetime.fromisoformat(str(time_text))
        except ValueError:
            return True  # a time that does not parse: counted rather than lost
        return (at if at.tzinfo else at.replace(tzinfo=UTC)) >= self.since


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
        self._incidents: subprocess.Popen | None = None
        self._members_from: dict[int, int] = {}  # incident-members before this run: not its incidents

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
        from models.registry import open_registry
        from models.training import TrainingRequest, train

        registry = open_registry(self.settings)
        prod = registry.production("kdd")
        if prod is not None:
            self.console.print(f"model: kdd/{prod.model} (production)")
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
            # The demo's own settings (its --broker-port among them), not the caller's environment: a
            # worker that read the environment looked for the broker on the default port.
            env={**self.settings.environment(), "COLUMNS": "160"},
        )  # fmt: skip
        return process, log_path

    def _start_worker(self) -> None:
        args = ["--streams", "kdd", "--replicas", str(self.replicas)] + (["--eos"] if self.eos else [])
        self._worker, log_path = self._spawn(worker_command(*args), "worker.log")
        self.console.print(f"worker: {self.replicas} replica(s), pid {self._worker.pid}, log {log_path}")

    def _start_incident_stage(self) -> None:
        """The incident stage, exactly-once: the demo's alerts grouped into incidents as they come."""
        from consumers.incidents.stage import stage_command

        self._members_from = members_offsets(self.settings)
        args = ["--eos"]
        if not port_open("127.0.0.1", INCIDENTS_METRICS_PORT):
            args += ["--metrics-port", str(INCIDENTS_METRICS_PORT)]
        self._incidents, log_path = self._spawn(stage_command(*args), "incidents.log")
        self.console.print(f"incident stage (--eos): pid {self._incidents.pid}, log {log_path}")

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
    def _start_feed(self) -> tuple[Feed, DemoFigures]:
        """The dashboard's feed and aggregation for the kdd stream, positioned before the replay."""
        aggregator = Aggregator(("kdd",))
        feed = Feed(self.settings, aggregator, DashboardMetrics(("kdd",)))
        aggregator.thresholds = registry_thresholds(feed.registry)  # cut and severity ratios
        figures = DemoFigures(aggregator, "kdd", since=datetime.now(UTC))
        feed.start()
        deadline = time.monotonic() + FEED_READY_S
        while not feed.readiness().ready and time.monotonic() < deadline:
            time.sleep(0.1)
        return feed, figures

    def run(self) -> int:
        feed: Feed | None = None
        try:
            self._ensure_broker()
            create_topics(self.settings)
            self._ensure_data()
            self._ensure_model()
            feed, figures = self._start_feed()
            self._start_worker()
            self._start_incident_stage()
            self._start_drift_monitor()
            self._start_dashboard()
            replay = threading.Thread(target=self._replay, name="replay", daemon=True)
            replay.start()
            self._watch(figures, replay)
            incidents = self._incident_summary()
            self.console.print()
            self.console.print(self._summary(figures.refresh(), incidents))
            if self.state.replay_error is not None:
                self.console.print(f"[red]replay failed:[/] {self.state.replay_error}")
                return 1
            return 130 if self.stop else 0
        finally:
            if feed is not None:
                feed.close()
            self._shutdown()

    def _watch(self, figures: DemoFigures, replay: threading.Thread) -> None:
        drained_since: float | None = None
        with Live(self._live(figures.refresh()), console=self.console, refresh_per_second=2) as live:
            while not self.stop:
                now = figures.refresh()
                live.update(self._live(now))
                if self._worker is not None and self._worker.poll() is not None:
                    self.console.print(f"[red]worker exited with {self._worker.returncode}[/]: see its log")
                    return
                if not replay.is_alive():
                    sent = self.state.replay.delivered if self.state.replay else 0
                    if now.scored + now.duplicates >= sent:
                        return
                    drained_since = drained_since or time.monotonic()
                    if time.monotonic() - drained_since > DRAIN_TIMEOUT_S:
                        self.console.print("[yellow]worker did not catch up within 2 minutes[/]")
                        return
                self.stop.wait(0.5)

    def _live(self, figures: Figures) -> Group:
        table = Table(title="anomstream: KDD Cup 99 live", show_header=False, min_width=60)
        elapsed = time.monotonic() - self.state.started
        confusion = figures.confusion
        table.add_row("scored events", f"{figures.scored:,} / {self.limit:,}")
        table.add_row("events/s (last 5s)", f"{figures.rate:,.0f}")
        table.add_row("alerts", f"{figures.alerts:,}")
        table.add_row("precision / recall", f"{cell('{:.3f}', confusion.precision)} / "
                                            f"{cell('{:.3f}', confusion.recall)}")  # fmt: skip
        self._control_rows(table, figures)
        table.add_row("elapsed", f"{elapsed:.0f}s")
        return Group(table)

    @staticmethod
    def _control_rows(table: Table, figures: Figures) -> None:
        events = sum(figures.drift_events.values())
        detail = ", ".join(f"{n} {d}" for d, n in sorted(figures.drift_events.items()))
        table.add_row("drift events", f"{events}" + (f" ({detail})" if detail else ""))
        updates = figures.model_updates
        table.add_row("promotions / rollbacks", ", ".join(updates[-3:]) if updates else "none")

    def _incident_summary(self) -> IncidentSummary | str:
        """The incidents of the replayed stream, once the stage has grouped every alert (or a line
        saying why there are none to show)."""
        stage = self._incidents
        if stage is None:
            return "not started"
        if stage.poll() is not None:
            return f"the stage exited with {stage.returncode}: see incidents.log"
        with self.console.status("waiting for the incident stage to group the last alerts..."):
            caught_up = wait_grouped(self.settings, INCIDENTS_DRAIN_S, transactional_alerts=self.eos)
            summary = read_summary(self.settings, "kdd", since=self._members_from)
        if not caught_up:
            self.console.print(f"[yellow]the incident stage had not grouped every alert within "
                               f"{INCIDENTS_DRAIN_S:.0f} s: its figures are partial[/]")  # fmt: skip
        return summary

    @staticmethod
    def _incident_rows(table: Table, incidents: IncidentSummary | str, alerts: int) -> None:
        if isinstance(incidents, str):
            table.add_row("incidents", incidents)
            return
        per = f" (1 per {alerts / incidents.incidents:,.0f} alerts)" if incidents.incidents else ""
        table.add_row("incidents", f"{incidents.incidents:,}{per}")
        table.add_row("open incidents", f"{incidents.open:,}")
        table.add_row("alerts grouped", f"{incidents.alerts:,} of {alerts:,}")
        if incidents.purity is not None:
            table.add_row("incident label purity", f"{incidents.purity:.3f}")

    def _summary(self, final: Figures, incidents: IncidentSummary | str = "not started") -> Table:
        table = Table(title="anomstream up: summary")
        table.add_column("measure")
        table.add_column("value", justify="right")
        replay = self.state.replay
        if replay is not None:
            table.add_row("replayed (source)", f"{replay.sent:,} ({self.state.source})")
            table.add_row("replay rate", f"{replay.rate:,.0f} ev/s")
            table.add_row("delivery failures", f"{replay.failed:,}")
        confusion = final.confusion
        table.add_row("scored events", f"{final.scored:,}")
        table.add_row("duplicate scores", f"{final.duplicates:,}")
        table.add_row("alerts", f"{final.alerts:,}")
        table.add_row("true / false positives", f"{confusion.tp:,} / {confusion.fp:,}")
        table.add_row("missed attacks", f"{confusion.fn:,}")
        table.add_row("precision", cell("{:.4f}", confusion.precision))
        table.add_row("recall", cell("{:.4f}", confusion.recall))
        self._incident_rows(table, incidents, final.alerts)
        self._control_rows(table, final)
        table.add_row("wall time", f"{time.monotonic() - self.state.started:.0f}s")
        return table

    def _shutdown(self) -> None:
        self.stop.set()
        stops = ((self._dashboard, 10), (self._drift, 30), (self._incidents, 60), (self._worker, 60))
        for process, grace in stops:
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
