"""``anomstream alerts tail``: follow the alerts topic, filtered, as a table or as JSON lines."""

from __future__ import annotations

import orjson
from rich.console import Console

from stream.kafka import iter_topic
from stream.settings import Settings
from stream.signals import StopFlag

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
STYLE = {"low": "cyan", "medium": "yellow", "high": "red", "critical": "bold white on red"}


def tail(settings: Settings, stream: str | None = None, severity: str | None = None, as_json: bool = False,
         from_beginning: bool = False, limit: int | None = None) -> int:  # fmt: skip
    """Print alerts as they arrive until Ctrl-C (or ``limit``); returns how many were printed."""
    if severity is not None and severity not in SEVERITY_RANK:
        raise ValueError(f"severity must be one of {', '.join(SEVERITY_RANK)}")
    floor = SEVERITY_RANK[severity] if severity else 0
    out = Console(highlight=False)
    shown = 0
    messages = iter_topic(settings, settings.topic("alerts"), from_beginning, follow=True, stop=StopFlag())
    for message in messages:  # fmt: skip
        alert = orjson.loads(message.value())
        if stream and alert["stream"] != stream or SEVERITY_RANK[alert["severity"]] < floor:
            continue
        if as_json:
            print(message.value().decode(), flush=True)
        else:
            top = ", ".join(f["name"] for f in alert["top_features"][:3])
            out.print(
                f"{alert['detected_at'][11:23]} [{STYLE[alert['severity']]}]{alert['severity']:>8}[/] "
                f"{alert['stream']:>6} {alert['event_id']:<28} score {alert['score']:.4g} "
                f"(thr {alert['threshold']:.3g}) label={alert['label']} top: {top}"
            )
        shown += 1
        if limit is not None and shown >= limit:
            break
    return shown
