"""The server-sent event stream of one page: a snapshot, then consecutive deltas; a page that falls
behind gets a snapshot again instead of the deltas it missed."""

from __future__ import annotations

import asyncio

import msgspec

from anomstream.dashboard.aggregate import Aggregator
from anomstream.dashboard.metrics import DashboardMetrics
from anomstream.dashboard.server import FrameHub
from stream.messages import ScoreRecord


def parse(event: bytes) -> tuple[str, int, dict]:
    fields = dict(line.split(": ", 1) for line in event.decode().strip().splitlines() if ": " in line)
    return fields["event"], int(fields["id"]), msgspec.json.decode(fields["data"])


async def read_page(slow_after: int) -> list[tuple[str, int, dict]]:
    """Eight events of one page; the test makes the frames (no interval, no wall clock), and after
    event ``slow_after`` the page misses three of them (a slow connection)."""
    aggregator = Aggregator(("kdd",))
    hub = FrameHub(aggregator, DashboardMetrics(("kdd",)))
    events = []
    stream = hub.stream()
    try:
        for i in range(8):
            if i == 2:  # something to show, arriving between frames
                with aggregator.lock:
                    aggregator.add_score_record(ScoreRecord("kdd", "ae", 1, "kdd.connections", 0, [0, 1],
                                                            [0.1, 0.9], [False, True], ["normal", "smurf"],
                                                            [None, None]))  # fmt: skip
            if i > 0:  # the first event is the page's snapshot; each one after it follows a frame
                await hub.frame()
            events.append(parse(await anext(stream)))
            if i == slow_after:
                for _ in range(3):
                    await hub.frame()
    finally:
        await stream.aclose()
        await hub.close()
    assert hub.clients == 0
    return events


def test_a_snapshot_then_consecutive_deltas() -> None:
    events = asyncio.run(read_page(slow_after=99))
    kinds = [kind for kind, _, _ in events]
    assert kinds == ["snapshot"] + ["delta"] * 7
    ids = [seq for _, seq, _ in events]
    assert ids == list(range(ids[0], ids[0] + 8))
    assert events[-1][2]["streams"]["kdd"]["scored"] == 2


def test_a_page_that_falls_behind_starts_over_from_a_snapshot() -> None:
    events = asyncio.run(read_page(slow_after=3))
    kinds = [kind for kind, _, _ in events]
    assert kinds[:4] == ["snapshot", "delta", "delta", "delta"] and kinds[4] == "snapshot"
    assert all(kind == "delta" for kind in kinds[5:])
    assert events[4][2]["streams"]["kdd"]["scored"] == 2  # nothing lost: the snapshot has it all
