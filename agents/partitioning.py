"""Which partition a key goes to: Kafka's default partitioner, so a key lands where a
keyed send would (the decide stage's state is co-partitioned with ``txns-by-payer``)."""

from __future__ import annotations

import zlib

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so a key lands where a keyed send would."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class Partitioner:
    """``partition_for`` with a cache: a batch sees the same users again and again."""

    def __init__(self, partitions: int, size: int = 200_000) -> None:
        self.partitions = partitions
        self._cache: dict[bytes, int] = {}
        self._size = size

    def __call__(self, key: bytes) -> int:
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            found = self._cache[key] = partition_for(key, self.partitions)
        return found


class PairPartitioner:
    """``payments-by-pair`` is read by nobody else: any stable hash will do, and pair
    keys rarely repeat, so a C hash (CRC-32) rather than a cached murmur2."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def __call__(self, key: bytes) -> int:
        return zlib.crc32(key) % self.partitions
