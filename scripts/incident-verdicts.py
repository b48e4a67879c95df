"""Incident verdicts on the shift scenarios, measured through Kafka with the command line (issue 25:
"at most 10 incident verdicts bring the normal-traffic alert rate back within 1.5x of its pre-change
rate with attack recall within 2 points, where label-free evidence alone could not").

    PYTHONPATH=. .venv/bin/python scripts/incident-verdicts.py --out out/incident-verdicts \
        --scenario shift --scenario shift-attacks --verdicts 0 --verdicts 5 --verdicts 10

Runs the verbs users run, as processes, against a temporary embedded broker: `anomstream train`
(once), then per scenario and number of verdicts, on topics and a registry of its own (every run
starts from the same v1): `worker --eos`, `incidents run --eos`, `drift --retrain`, `replay kdd
--drift SCENARIO --drift-at N --limit L --rate R`. The analyst waits for the drift event, lets the
incidents of the new traffic grow for ``--look-after`` post-change events, then gives a verdict on
the N largest incidents open at that moment (``anomstream incidents verdict ID benign|malicious``
through :func:`consumers.verdicts.give_incident_verdict`), answering from each incident's majority
label (``unmapped.labels``: the replay's ground truth, which an analyst would read off the alerts).
Everything is read back from the topics afterwards, as ``scripts/drift-figures.py`` does: normal
alert rate before the change, after it (v1) and after the promotion, attack recall of v1 and the
promoted model, the retrain's outcome and the verdicts it used (its sealed manifest).

Writes ``figures.json`` and prints a table. Needs the KDD and NSL-KDD files in ANOMSTREAM_DATA_DIR.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.registry import Registry
from stream.broker import temporary_broker
from stream.kafka import create_topics, end_offsets, read_all
from stream.labels import is_attack
from stream.settings import DriftSettings, IncidentSettings, Settings

_spec = importlib.util.spec_from_file_location("drift_figures", Path(__file__).with_name("drift-figures.py"))
assert _spec is not None and _spec.loader is not None
figures_lib: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures_lib)  # the drift loop's measurements: one implementation of each


def latest_incidents(settings: Settings) -> dict[str, dict]:
    """The latest message of every incident on the incidents topic, by id."""
    latest: dict[str, dict] = {}
    for message in read_all(settings, settings.topic("incidents"), timeout=60):
        value = orjson.loads(message.value())
        latest[value["finding_info"]["uid"]] = value
    return latest


def majority_verdict(incident: dict) -> str | None:
    """What an analyst who reads the incident's alerts answers: its majority label's verdict."""
    labels = (incident.get("unmapped") or {}).get("labels") or {}
    if not labels:
        return None
    label = max(labels.items(), key=lambda kv: kv[1])[0]
    return "malicious" if is_attack(np.array([label], dtype=object))[0] else "benign"


class IncidentAnalyst(threading.Thread):
    """Once the drift event is out and ``look_after`` post-change events were produced, judges the
    ``n`` largest open incidents of the stream from their majority label, once each."""

    def __init__(self, settings: Settings, n: int, look_after: int, triage: str = "largest") -> None:
        super().__init__(daemon=True)
        self.settings, self.n, self.look_after, self.triage = settings, n, look_after, triage
        self.given: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.error: str | None = None

    def _change(self) -> dict[str, int] | None:
        events = read_all(self.settings, self.settings.topic("drift"), timeout=30)
        if not events:
            return None
        return orjson.loads(events[0].value())["change"]["partition_offsets"]

    def run(self) -> None:
        from consumers.verdicts import give_incident_verdict

        try:
            change = None
            while not self.stop.is_set() and change is None:
                change = self._change()
                self.stop.wait(2)
            while not self.stop.is_set():
                ends = end_offsets(self.settings, self.settings.topic("kdd"))
                if sum(max(0, ends.get(int(p), 0) - o) for p, o in (change or {}).items()) >= self.look_after:
                    break
                self.stop.wait(1)
            if self.stop.is_set():
                return
            incidents = [i for i in latest_incidents(self.settings).values() if i["status_id"] != 4]
            # "largest": the largest open incidents first. "marginal": the lowest severity first (alerts
            # that barely cross the threshold are the likeliest false alarms: AI² asks the analyst
            # about what the model is least sure of), the largest first within a severity.
            if self.triage == "marginal":
                incidents.sort(key=lambda i: (i["severity_id"], -i["count"]))
            else:
                incidents.sort(key=lambda i: -i["count"])
            for incident in incidents[: self.n]:
                verdict = majority_verdict(incident)
                if verdict is None:
                    continue
                uid = incident["finding_info"]["uid"]
                give_incident_verdict(self.settings, uid, verdict, "figures-analyst", "majority label")
                labels = incident["unmapped"].get("labels") or {}
                top = dict(sorted(labels.items(), key=lambda kv: -kv[1])[:3])
                self.given.append(
                    {
                        "incident_id": uid,
                        "verdict": verdict,
                        "count_when_judged": incident["count"],
                        "labels": top,
                    }
                )
        except Exception as exc:  # noqa: BLE001 - reported in the figures, not lost in a thread
            self.error = f"{type(exc).__name__}: {exc}"


def run(name: str, scenario: str, n: int, base: Settings, env: dict[str, str], out: Path, args: Any) -> dict:
    """One scenario with ``n`` incident verdicts, on its own topics and a copy of the v1 registry."""
    registry = out / f"registry-{name}"
    shutil.rmtree(registry, ignore_errors=True)
    shutil.copytree(base.registry_dir, registry)
    settings = base.model_copy(
        update={"topic_prefix": f"iv-{name}.", "registry_dir": registry, "state_dir": out / f"state-{name}"}
    )
    create_topics(settings)
    log = out / name
    env, worker, monitor = figures_lib.start_loop(settings, env, name, log, retrain=True)
    stage = figures_lib.cli(env, "incidents", "run", "--eos", "--worker-id", f"i-{name}",
                            log=log / "incidents.log", wait=False)  # fmt: skip
    analyst = IncidentAnalyst(settings, n, args.look_after, args.triage) if n else None
    started = time.monotonic()
    try:
        time.sleep(15)
        if analyst is not None:
            analyst.start()
        replay = [
            "replay",
            "kdd",
            "--drift",
            scenario,
            "--drift-at",
            str(args.drift_at),
            "--limit",
            str(args.limit),
        ]
        figures_lib.cli(env, *replay, "--rate", str(args.rate), log=log / "replay.log")
        figures_lib.wait_scored(settings, args.limit)
        # The retrain's outcome line ("retrain <event id> of kdd v2: promoted ..."), not any line
        # naming a retrain ("a retrain is already running" of a second drift event).
        deadline = time.monotonic() + args.retrain_timeout
        while time.monotonic() < deadline and not figures_lib.retrain_finished(log / "drift.log"):
            time.sleep(5)
        time.sleep(10)
    finally:
        if analyst is not None:
            analyst.stop.set()
        for process in (worker, monitor, stage):
            figures_lib.stop(process)
    change = figures_lib.true_change(settings)
    updates = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"))]
    versions = sorted({u["version"] for u in updates if u["version"] > 1})
    manifests = [Registry(registry).manifest("kdd", "ae", v) for v in versions]
    retrains = [
        {
            "mode": (m["retrain"].get("evidence") or {}).get("mode"),
            "campaign_share": (m["retrain"].get("evidence") or {}).get("campaign_share"),
            "selection": m["retrain"].get("selection"),
            "verdicts": m["retrain"].get("verdicts"),
            "started": m["retrain"].get("started"),
            "shadow_criteria": m["shadow"].get("criteria"),
            "contamination": m["retrain"].get("contamination"),
        }
        for m in manifests
    ]
    incidents = latest_incidents(settings)
    read = [m["retrain"].get("ranges") for m in manifests if m["retrain"].get("ranges")]
    later = later_traffic(settings, registry, read[0]) if read else {}
    return {
        **later,
        **corrected_recall(settings, registry),
        "scenario": scenario,
        "verdicts_asked": n,
        "triage": args.triage,
        "verdicts_given": analyst.given if analyst is not None else [],
        "analyst_error": analyst.error if analyst is not None else None,
        "incidents": len(incidents),
        "model_updates": [{k: u.get(k) for k in ("version", "status", "reason", "detail")} for u in updates],
        "retrains": retrains,
        **figures_lib.promotion_timing(settings, change, updates),
        **figures_lib.rates(settings, change, {}),
        "seconds": round(time.monotonic() - started),
    }


def later_traffic(settings: Settings, registry: Path, ranges: dict[str, list[int]]) -> dict[str, object]:
    """v1 and the production model at the end, scored on the post-change events the retrain did not
    read (offsets past its ranges: traffic that came later, read back from the input topic): the
    normal alert rate and the attack recall of each. Live score records of the promoted model exist
    only when the replay outlasts the retrain, which a loaded 2-core machine does not promise."""
    from consumers.decoding import decoder_for
    from stream.kafka import header

    topic = settings.topic("kdd")
    messages = [m for m in read_all(settings, topic, timeout=120)
                if str(m.partition()) in ranges and m.offset() >= ranges[str(m.partition())][1]]  # fmt: skip
    reg = Registry(registry)
    v1, final = reg.load("kdd", "ae", 1), reg.load("kdd")
    batch = decoder_for("kdd", v1.encoder)(messages)
    if not batch.messages:
        return {"later_events": 0}
    X = v1.encoder.transform(batch.raw)
    labels = np.array([(header(m, "label") or b"").decode() or None for m in batch.messages], dtype=object)
    attack = is_attack(labels)
    out: dict[str, object] = {"later_events": len(X), "later_final_version": final.version}
    for name, model in (("v1", v1), ("final", final)):
        alert = model.threshold.classify(model.judge(X))
        out[f"later_normal_alert_rate_{name}"] = float(alert[~attack].mean()) if (~attack).any() else None
        out[f"later_attack_recall_{name}"] = float(alert[attack].mean()) if attack.any() else None
    return out


def corrected_recall(settings: Settings, registry: Path) -> dict[str, float]:
    """Attack recall of v1 and of the production model at the end on every attack of KDD's
    ``corrected`` file (250,436 connections of 37 types): the attacks the stream carried, and the
    ones it did not (``shift`` carries none), with the thresholds the worker applies."""
    from models.features import RecordsRaw
    from stream.datasets import find_kdd_file, read_kdd
    from stream.datasets.schema import builtin_schema

    frame = read_kdd(find_kdd_file(settings.data_dir, "test"))
    attacks = frame[is_attack(frame["label"].astype(str).to_numpy())]
    reg = Registry(registry)
    v1, final = reg.load("kdd", "ae", 1), reg.load("kdd")
    X = v1.encoder.transform(RecordsRaw.from_frame(attacks, builtin_schema("kdd99")))
    return {f"corrected_attack_recall_{name}": float(model.threshold.classify(model.judge(X)).mean())
            for name, model in (("v1", v1), ("final", final))}  # fmt: skip


def _pct(value: object) -> str:
    return f"{value:.2%}" if isinstance(value, float) else "-"


def table(figures: dict[str, dict]) -> str:
    lines = [
        "| scenario | verdicts given | outcome | normal alert rate before / later traffic v1 / promoted "
        "| within 1.5x | attack recall v1 / promoted (later traffic) | corrected's attacks v1 / promoted "
        "| rows learnt (alerting, mode) | benign / malicious events judged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures.values():
        before, promoted = f.get("normal_alert_rate_before"), f.get("later_normal_alert_rate_final")
        within = "yes" if before and promoted is not None and promoted <= 1.5 * before else "no"
        retrain = f["retrains"][-1] if f["retrains"] else {}
        selection, verdicts = retrain.get("selection") or {}, retrain.get("verdicts") or {}
        outcome = ", ".join(f"v{u['version']} {u['status']}" for u in f["model_updates"]) or "no retrain"
        given = len(f["verdicts_given"])
        rates = " / ".join(_pct(f.get(k)) for k in ("normal_alert_rate_before", "later_normal_alert_rate_v1",
                                                     "later_normal_alert_rate_final"))  # fmt: skip
        recall = f"{_pct(f.get('later_attack_recall_v1'))} / {_pct(f.get('later_attack_recall_final'))}"
        corrected = " / ".join(_pct(f.get(f"corrected_attack_recall_{k}")) for k in ("v1", "final"))
        learnt = (
            f"{selection.get('learnt', '-')} ({selection.get('alerting_learnt', '-')}, {retrain.get('mode')})"
        )
        judged = f"{verdicts.get('benign', 0)} / {verdicts.get('malicious', 0)}"
        lines.append(f"| {f['scenario']} | {given} of {f['verdicts_asked']} | {outcome} | {rates} | {within} "
                     f"| {recall} | {corrected} | {learnt} | {judged} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("out/incident-verdicts"))
    parser.add_argument("--scenario", action="append", choices=("shift", "shift-attacks"))
    parser.add_argument("--verdicts", action="append", type=int, help="incident verdicts (repeatable)")
    parser.add_argument("--drift-at", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=100_000, help="events of each replay")
    parser.add_argument("--rate", type=float, default=1500.0)
    parser.add_argument("--max-events", type=int, default=40_000, help="post-change events a retrain reads")
    parser.add_argument("--look-after", type=int, default=12_000, help="post-change events before judging")
    parser.add_argument("--triage", choices=("largest", "marginal"), default="largest",
                        help="which open incidents the analyst judges first")  # fmt: skip
    parser.add_argument("--group-interval", type=float, default=5.0, help="the stage's group_interval_s")
    parser.add_argument(
        "--retrain-timeout", type=float, default=900.0, help="seconds to wait for its outcome"
    )
    args = parser.parse_args()
    scenarios, counts = args.scenario or ["shift", "shift-attacks"], args.verdicts or [0, 5, 10]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.environ.get("ANOMSTREAM_DATA_DIR", "../shared/data")).resolve()
    saved = out / "figures.json"
    figures: dict[str, dict] = json.loads(saved.read_text()) if saved.exists() else {}  # earlier runs kept
    with temporary_broker() as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            data_dir=data_dir,
            registry_dir=out / "registry",
            state_dir=out / "state",
            topic_prefix="incident-verdicts.",
            topic_partitions=3,
            # At most --max-events post-change events are learnt from: what follows is the later
            # traffic the promoted model is measured on. The replay compresses hours of traffic into
            # minutes: the stage publishes its updates as often (--group-interval).
            drift=DriftSettings(retrain_cooldown_s=3600, retrain_max_events=args.max_events),
            incidents=IncidentSettings(group_interval_s=args.group_interval),
        )
        create_topics(settings)
        # The replay compresses hours of traffic into minutes: the stage publishes its updates as often.
        env = {**settings.environment(), "COLUMNS": "200"}
        figures_lib.cli(env, "train", "--stream", "kdd", "--if-missing", log=out / "train.log")
        for scenario in scenarios:
            for n in counts:
                name = f"{scenario}-{n}" + (f"-{args.triage}" if n and args.triage != "largest" else "")
                figures[name] = run(name, scenario, n, settings, env, out, args)
                shown = {k: v for k, v in figures[name].items() if k not in ("retrains", "model_updates")}
                print(json.dumps({name: shown}, default=str), flush=True)
                saved.write_text(json.dumps(figures, indent=2, default=str))
    print(table(figures))


if __name__ == "__main__":
    main()
