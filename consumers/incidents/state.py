"""The incident stage's state in Kafka: one snapshot of the open incidents per alerts partition on the
compacted ``incidents-state`` topic, keyed ``<alerts topic>:<partition>``.

The stage writes a partition's snapshot with the outputs and offsets of every batch that changed it
(under ``--eos`` in the batch's transaction), so the snapshot read back (read_committed) is exactly the
state the group's committed offset left off at. Reading it back takes the latest record of the key:
librdkafka's default partitioner puts the key in partition CRC32(key) mod partitions, which is read
backwards from its end in growing windows (the topic is compacted, but its active segment is not,
so the latest record is near the end and the start may be far).
"""

from __future__ import annotations

import logging
import time
import zlib

from confluent_kafka import Consumer, TopicPartition

from consumers.incidents.grouping import PartitionGrouper, PartitionState
from stream.kafka import check_message, make_reader
from stream.kafka.topics import partitions_of, watermarks
from stream.settings import Settings

log = logging.getLogger(__name__)

FIRST_WINDOW = 64  # records read back from the end first; then 8x more each time
# A crashed stage's open transaction holds read_committed readers until the broker aborts it.
RESTORE_TIMEOUT_S = 180.0


def state_key(topic: str, partition: int) -> bytes:
    return f"{topic}:{partition}".encode()


class StateReader:
    """Reads partition snapshots back from ``incidents-state`` (a client of its own, no group)."""

    def __init__(self, settings: Settings, timeout_s: float = RESTORE_TIMEOUT_S) -> None:
        self.topic = settings.topic("incidents_state")
        self.timeout_s = timeout_s
        partitioner = str(settings.kafka.get("partitioner", "consistent_random"))
        # Only CRC32 partitioners say where a key is; with another one every partition is searched.
        self.crc32 = partitioner in ("consistent_random", "consistent")
        self.reader: Consumer = make_reader(settings)

    def close(self) -> None:
        self.reader.close()

    def restore(self, topic: str, partition: int) -> PartitionState:
        """The latest snapshot of alerts partition ``partition`` of ``topic``, or a fresh state."""
        key = state_key(topic, partition)
        partitions = partitions_of(self.reader, self.topic)
        where = [partitions[zlib.crc32(key) % len(partitions)]] if self.crc32 else partitions
        for state_partition in where:
            value = self._latest(state_partition, key)
            if value is not None:
                state = PartitionGrouper.state_from_bytes(value)
                log.info("%s[%d]: %d open incidents restored (next offset %d)", topic, partition,
                         len(state.incidents), state.next_offset)  # fmt: skip
                return state
        return PartitionState(topic, partition)

    def _latest(self, state_partition: int, key: bytes) -> bytes | None:
        low, high = watermarks(self.reader, self.topic, state_partition)
        window = FIRST_WINDOW
        while high > low:
            start = max(low, high - window)
            found = self._read(state_partition, start, high, key)
            if found is not None or start == low:
                return found or None  # b"": a tombstone
            window *= 8
        return None

    def _read(self, state_partition: int, start: int, high: int, key: bytes) -> bytes | None:
        """The last value of ``key`` in [start, high) (b"" for a tombstone), None when absent."""
        tp = TopicPartition(self.topic, state_partition, start)
        self.reader.assign([tp])
        found: bytes | None = None
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                for message in self.reader.consume(500, 0.5):
                    if not check_message(message):
                        continue
                    if message.key() == key:
                        found = message.value() or b""
                position = self.reader.position([TopicPartition(self.topic, state_partition)])[0].offset
                if position >= high:
                    return found
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self.topic}[{state_partition}] not readable to offset {high} within "
                        f"{self.timeout_s:g}s (a transaction left open?): the stage retries on restart"
                    )
        finally:
            self.reader.unassign()
