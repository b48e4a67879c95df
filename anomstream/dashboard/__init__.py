"""``anomstream dashboard``: a live web page of a running pipeline.

Kafka readers (:mod:`.feed`) -> server-side aggregation (:mod:`.aggregate`) -> a frame every 0.4 s,
encoded once -> server-sent events to every open page (:mod:`.server`) -> uPlot charts in the browser
(``static/``, vendored with its licence: the page needs no network beyond the dashboard itself).
"""

from __future__ import annotations

import sys

from anomstream.dashboard.server import DashboardError, create_app, serve

DEFAULT_PORT = 8050


def dashboard_command(*args: str) -> list[str]:
    """The command line of a dashboard process, with this interpreter (as ``worker_command``)."""
    return [sys.executable, "-m", "anomstream", "dashboard", *args]


__all__ = ["DEFAULT_PORT", "DashboardError", "create_app", "dashboard_command", "serve"]
