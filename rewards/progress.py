"""DEPRECATED, for the old decide adapter only: per-partition progress marks.

The core now keeps replay marks per user, in the user's record
(``rewards.state.UserState.marks``, checked by ``rewards.ledger.process``);
delete this module once ``agents/decide.py`` no longer imports it.

Which feed messages a decide partition has already finished: replays become no-ops.

Without broker transactions, a crash or rebalance replays messages since the
last committed offset, in both stages. The decide stage records, per feed
partition, the highest feed offset it has finished, *after* the outputs of
those events were acknowledged. A replayed event at or below that mark is
skipped whole: its outputs are already on the broker, its state already
written. Within one (feed partition → decide partition) path, offsets arrive
in increasing order because the ingest stage forwards each feed partition in
order and the producer keeps per-partition order, so one number per feed
partition is enough.
"""

from __future__ import annotations

import orjson

from rewards.state import parse_source

__all__ = ["Progress", "parse_source"]


class Progress:
    def __init__(self, raw: bytes | None = None) -> None:
        self.marks: dict[str, int] = orjson.loads(raw) if raw else {}
        self.changed = False

    def done(self, source: str) -> bool:
        """True if this feed message was already finished (a replay)."""
        where, offset = parse_source(source)
        return offset <= self.marks.get(where, -1)

    def finish(self, source: str) -> None:
        where, offset = parse_source(source)
        if offset > self.marks.get(where, -1):
            self.marks[where] = offset
            self.changed = True

    def dump(self) -> bytes:
        return orjson.dumps(self.marks, option=orjson.OPT_SORT_KEYS)
