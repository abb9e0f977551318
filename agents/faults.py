"""A test-only fault hook: make a stage fail on marked transactions, in a live worker.

``REWARDS_TEST_FAIL`` is read once at worker start-up (``install_from_env``):
comma-separated ``stage:prefix`` pairs, ``stage`` one of ``validate`` (the
ingest edge, after validation), ``decide`` or ``pair`` (the circular stage).
An item of that stage whose ``txn_id`` starts with ``prefix`` raises
``InjectedFault`` inside the stage's per-item error handling, so the item
takes the ``INTERNAL_ERROR`` path a real bug of ours would
(tests/integration/test_internal_errors.py). Unset — always, outside that
test — nothing is installed: the stages run their own functions, with no
check per item.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ENV = "REWARDS_TEST_FAIL"
STAGES = ("validate", "decide", "pair")


class InjectedFault(RuntimeError):
    """Raised by the test-only hook (never in production: the hook is not installed)."""


def parse(spec: str) -> dict[str, tuple[str, ...]]:
    """``"decide:FAILD,pair:FAILP"`` -> ``{"decide": ("FAILD",), "pair": ("FAILP",)}``."""
    out: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        stage, sep, prefix = part.partition(":")
        if not sep or stage not in STAGES or not prefix:
            raise ValueError(f"{ENV}: {part!r} is not stage:prefix with stage in {STAGES}")
        out.setdefault(stage, []).append(prefix)
    return {stage: tuple(prefixes) for stage, prefixes in out.items()}


def _check(stage: str, txn_id: str, prefixes: tuple[str, ...]) -> None:
    if txn_id.startswith(prefixes):
        raise InjectedFault(f"injected fault in the {stage} stage")


def install(faults: dict[str, tuple[str, ...]]) -> None:
    """Wrap each named stage's per-item function (module globals, looked up per call)."""
    from agents import circular, decide, edge
    from schemas.routed import RoutedTransaction

    if prefixes := faults.get("validate"):
        routed_item = edge.routed_item
        validate_prefixes = prefixes

        def failing_routed_item(txn: Any, source: str, now_ns: int) -> bytes:
            _check("validate", txn.txn_id, validate_prefixes)
            return routed_item(txn, source, now_ns)

        edge.routed_item = failing_routed_item
    if prefixes := faults.get("decide"):
        apply: Callable[..., Any] = decide._apply
        decide_prefixes = prefixes

        def failing_apply(item: Any, book: Any, state: Any) -> Any:
            if isinstance(item, RoutedTransaction):
                _check("decide", item.txn.txn_id, decide_prefixes)
            return apply(item, book, state)

        decide._apply = failing_apply
    if prefixes := faults.get("pair"):
        observe = circular.CircularBatch._observe
        pair_prefixes = prefixes

        def failing_observe(self: Any, state: Any, pair: Any) -> Any:
            _check("pair", pair.txn_id, pair_prefixes)
            return observe(self, state, pair)

        circular.CircularBatch._observe = failing_observe  # type: ignore[method-assign]
    log.warning("test fault hook installed for stages %s", sorted(faults))


def install_from_env() -> None:
    """Install the hook when ``REWARDS_TEST_FAIL`` is set; otherwise do nothing."""
    spec = os.environ.get(ENV, "")
    if spec:
        install(parse(spec))
