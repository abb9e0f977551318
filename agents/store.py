"""A stateful stage's table, read and written per partition, behind a small Protocol.

The stages never use Faust's ``table[key] = value``: that writes the local
store at once and publishes the changelog record later, one by one, so after a
``kill -9`` the local store could be *ahead* of its changelog (a consistent
restart then meant discarding it). Instead ``agents.checkpoint`` publishes a
batch's changelog records itself, waits for the broker's acks, and only then
writes the records *and* the changelog offset they reached into the local
store in one RocksDB write batch. Faust's recovery, standbys and rebalancing
still own the store: after a restart Faust replays the changelog from that
persisted offset, i.e. only the tail the local store had not yet applied.

``FaustTableStore`` reaches into Faust's rocksdict store for the per-partition
database and its offset key (``agents/workarounds.py`` lists this).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import rocksdict
from faust.types import TableT


class PartitionStore(Protocol):
    """The state of one stage: bytes by key, per changelog partition."""

    changelog_topic: str

    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def write(self, partition: int, records: Mapping[bytes, bytes | None], offset: int) -> None:
        """Apply ``records`` (``None`` deletes) and set the changelog offset, atomically."""


class FaustTableStore:
    """A Faust table on the rocksdict driver, used as a ``PartitionStore``."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table
        self.changelog_topic = table.changelog_topic.get_topic_name()

    def _db(self, partition: int) -> Any:
        return self.table.data._db_for_partition(partition)  # type: ignore[attr-defined]

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self._db(partition).get(key)
        return value

    def write(self, partition: int, records: Mapping[bytes, bytes | None], offset: int) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        offset_key: bytes = self.table.data.offset_key  # type: ignore[attr-defined]
        batch.put(offset_key, str(offset).encode())
        self._db(partition).write(batch)


class MemoryStore:
    """A ``PartitionStore`` in a dict: for unit tests of the adapters."""

    def __init__(self, changelog_topic: str = "memory-changelog") -> None:
        self.changelog_topic = changelog_topic
        self.data: dict[int, dict[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get(partition, {}).get(key)

    def write(self, partition: int, records: Mapping[bytes, bytes | None], offset: int) -> None:
        part = self.data.setdefault(partition, {})
        for key, value in records.items():
            if value is None:
                part.pop(key, None)
            else:
                part[key] = value
        self.offsets[partition] = offset


class StateCache:
    """Decoded records of recently used keys, as committed: a hot user is decoded once,
    not once per batch (decoding was a fifth of the decide stage at 2,000 ev/s).

    Valid only while this worker is the one writing the store: emptied whenever
    the consumer generation changes (a rebalance: Faust may have recovered or
    standby-applied records meanwhile). Holds the committed bytes beside the
    object, for a batch that must rebuild a record after a failed item. A
    batch that fails ends the process (``agents.guard``), so an object mutated
    by an uncommitted batch is never seen again.
    """

    def __init__(self, size: int, generation: Callable[[], int]) -> None:
        self.size = size
        self._generation = generation
        self._seen: int | None = None
        self._data: OrderedDict[bytes, tuple[Any, bytes]] = OrderedDict()

    def get(self, key: bytes) -> tuple[Any, bytes] | None:
        generation = self._generation()
        if generation != self._seen:
            self._data.clear()
            self._seen = generation
            return None
        found = self._data.get(key)
        if found is not None:
            self._data.move_to_end(key)
        return found

    def put(self, key: bytes, state: Any, encoded: bytes) -> None:
        if self.size <= 0 or self._generation() != self._seen:
            return
        self._data[key] = (state, encoded)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)
