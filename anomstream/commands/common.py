"""What every verb shares: the command groups, the console, the settings, the one-line error."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from anomstream.options import one_of
from stream.settings import STREAMS, Settings, load_settings

app = typer.Typer(
    help="Streaming anomaly detection on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
broker_app = typer.Typer(help="Embedded single-node Kafka (KRaft).", no_args_is_help=True)
topics_app = typer.Typer(help="Topic administration.", no_args_is_help=True)
data_app = typer.Typer(help="Public datasets, and dataset schemas of your own.", no_args_is_help=True)
replay_app = typer.Typer(
    help="Replay a dataset into its topic as a live stream: a built-in (kdd, ecg, sensor), or any CSV, "
    "Parquet or JSON-lines file: anomstream replay FILE --schema S.",
    no_args_is_help=True,
)
models_app = typer.Typer(help="Model registry.", no_args_is_help=True)
alerts_app = typer.Typer(help="The alerts topic.", no_args_is_help=True)
incidents_app = typer.Typer(
    help="Incidents: alerts grouped into what an analyst acts on.", no_args_is_help=True
)
verdicts_app = typer.Typer(help="Analysts' verdicts on alerts and incidents.", no_args_is_help=True)
for sub, name in ((broker_app, "broker"), (topics_app, "topics"), (data_app, "data"), (replay_app, "replay"),
                  (models_app, "models"), (alerts_app, "alerts"), (incidents_app, "incidents"),
                  (verdicts_app, "verdicts")):  # fmt: skip
    app.add_typer(sub, name=name)

console = Console(stderr=True)
log = logging.getLogger("anomstream")


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=True)],
    )
    for noisy in ("matplotlib", "absl", "h5py", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def settings() -> Settings:
    return load_settings()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (one line) and return the Exit to raise."""
    print_error(message)
    return typer.Exit(code)


def print_error(message: str) -> None:
    # Plain print, not rich: a rich console would wrap a long message over several lines.
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


one_stream = one_of(*STREAMS)


# -- broker ---------------------------------------------------------------------------------------
PortOpt = Annotated[int | None, typer.Option("--port", help="broker port (default 9092)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="broker state folder")]
