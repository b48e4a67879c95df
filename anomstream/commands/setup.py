"""``anomstream broker``, ``topics`` and ``data``: the broker, its topics, the datasets, one's own
schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anomstream.commands.common import (
    DataDirOpt,
    PortOpt,
    broker_app,
    console,
    data_app,
    fail,
    settings,
    topics_app,
)


@broker_app.command("start")
def broker_start(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Start the embedded broker; prints its bootstrap address once it accepts connections."""
    from stream.broker import EmbeddedBroker

    s = settings()
    if not s.embedded_broker:
        raise fail(
            f"ANOMSTREAM_BOOTSTRAP_SERVERS is set ({s.bootstrap}), so anomstream uses that cluster and "
            "starts no broker: unset it to run the embedded one"
        )
    print(EmbeddedBroker.for_settings(s, port, data_dir).start())


@broker_app.command("stop")
def broker_stop(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop the embedded broker cleanly."""
    from stream.broker import EmbeddedBroker

    stopped = EmbeddedBroker.for_settings(settings(), port, data_dir).stop()
    console.print("broker stopped" if stopped else "broker was not running")


@broker_app.command("status")
def broker_status(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Exit 0 and print the address when the embedded broker runs, else exit 1."""
    from stream.broker import EmbeddedBroker

    broker = EmbeddedBroker.for_settings(settings(), port, data_dir)
    if broker.running():
        print(f"running at {broker.bootstrap} (pid {broker.pid()}, logs {broker.log_file})")
        return
    if broker.answers():
        # Started with another --data-dir (or by another tool): running, but its files are elsewhere.
        print(f"running at {broker.bootstrap} (not started from {broker.data_dir}: pid and logs unknown)")
        return
    print(f"not running (no broker answers at {broker.bootstrap}; state folder {broker.data_dir})")
    raise typer.Exit(1)


# -- topics and data ------------------------------------------------------------------------------
@topics_app.command("create")
def topics_create(
    partitions: Annotated[
        int | None, typer.Option(help="partitions per topic (1-1000)", min=1, max=1000)
    ] = None,
    schema: Annotated[
        list[str] | None,
        typer.Option("--schema", help="also the input topic of this dataset schema's stream (repeatable)"),
    ] = None,
) -> None:
    """Create every anomstream topic (existing ones are left as they are)."""
    from stream.datasets.schema import load_schema
    from stream.kafka import create_topics, wait_for_broker

    s = settings()
    names = list(dict.fromkeys([*s.all_topics(), *(load_schema(x).input_topic(s) for x in schema or [])]))
    wait_for_broker(s, timeout=30)
    for topic, status in create_topics(s, partitions, names).items():
        console.print(f"{topic}: {status}")


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="kdd, ecg or nab")],
    data_dir: Annotated[Path | None, typer.Option(help="target folder (default ANOMSTREAM_DATA_DIR)")] = None,
) -> None:
    """Download a public dataset from its canonical source and verify its sha256."""
    from stream.datasets.fetch import fetch

    target = data_dir or settings().data_dir

    def show(path: str, done: int, total: int) -> None:
        console.print(f"\r{path}: {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f}" if total else ""), end="")

    try:
        for path in fetch(name, target, show):
            console.print(f"\n[green]verified[/] {path}")
    except OSError as exc:  # ChecksumError explains itself
        raise fail(
            f"download failed ({exc}): no network? Copy the files into {target} (docs/operations.md: Data)"
        ) from None


@data_app.command("infer")
def data_infer(
    file: Annotated[
        Path, typer.Argument(help="a CSV, Parquet or JSON-lines file (gzip or not)", metavar="FILE")
    ],
    out: Annotated[
        Path | None, typer.Option(help="where to write the draft (default: ./<stem>.schema.toml)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="the stream's name (default: from the file name)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out file")] = False,
) -> None:
    """Write a draft dataset schema of FILE, guessed from rows across the whole file, and print it for you
    to check."""
    import re

    from stream.atomic import atomic_write
    from stream.datasets.infer import infer_schema
    from stream.datasets.schema import NAME_PATTERN, RESERVED_NAMES, to_toml

    if name is not None and (not re.match(NAME_PATTERN, name) or name in RESERVED_NAMES):
        raise fail(f"--name {name!r}: a stream name is 1-48 lowercase letters, digits, - or _, and not a "
                   "reserved topic name (alerts, scores, ...)")  # fmt: skip
    stem = Path(file.name.removesuffix(".gz")).stem
    target = out if out is not None else Path(f"{stem}.schema.toml")
    if target.exists() and not force:
        raise fail(f"{target} exists: give another --out, or --force to overwrite it")
    if not target.parent.is_dir():
        raise fail(f"{target.parent} is not a folder: give an --out path in an existing folder")
    schema, notes = infer_schema(file, name, schema_dir=target.parent)
    text = to_toml(schema, notes)
    with atomic_write(target, "w") as handle:
        handle.write(text)
    print(text, end="")
    console.print(
        f"wrote {target}: a draft guessed from rows across the whole file. Check every guess (numeric or "
        f"categorical, the label's normal value(s), the time format), then: "
        f"anomstream replay {file} --schema {target}",
        soft_wrap=True,  # one line: the command at its end is copied whole
    )
