"""Runtime settings: flags, then ``REWARDS_*`` environment variables, then defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from topologies.logs import LogFormat

#: The rules the demo and the tests run when no file is named.
DEFAULT_RULES = Path(__file__).parent / "rules" / "launch.yaml"


class Settings(BaseSettings):
    """Everything a worker needs that is not in the rules file."""

    model_config = SettingsConfigDict(env_prefix="REWARDS_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="comma-separated host:port list"
    )
    rules_file: Path = DEFAULT_RULES
    app_id: str = Field(default="upi-rewards", description="consumer group and topic prefix")
    web_host: str = Field(default="127.0.0.1", description="address the web port binds")
    web_advertised_host: str | None = Field(
        default=None,
        description="host other workers reach this one at (the /v1 API forwards there); "
        "default: web_host, or this machine's FQDN when web_host binds every address",
    )
    web_port: int = Field(default=6066, ge=1, le=65535)
    data_dir: Path = Path("var/state")
    partitions: int = Field(
        default=8, ge=1, description="partitions of the re-keyed stream and of the state table"
    )
    input_partitions: int = Field(
        default=8, ge=1, description="used only when the worker has to create the input topic"
    )
    replication_factor: int = Field(default=1, ge=1)
    create_topics: bool = Field(
        default=True, description="create missing input/output topics at startup (dev, demo)"
    )
    rocksdb_write_buffer_mb: int = Field(
        default=8, ge=1, description="RocksDB memtable size per partition store (x2 at most)"
    )
    rocksdb_block_cache_mb: int = Field(
        default=32, ge=1, description="RocksDB read cache per partition store"
    )
    batch_max: int = Field(
        default=5000, ge=1, description="feed records the ingest edge takes per batch"
    )
    pack_batch_max: int = Field(
        default=32, ge=1, description="packs (of up to 500 events) a stateful stage takes per batch"
    )
    batch_events: int = Field(
        default=2000,
        ge=0,
        description="events a stateful stage decides before it commits, at a pack boundary "
        "(0: one commit per batch of packs); under a backlog a batch of full packs holds "
        "16,000 events, committed in steps so decisions flow steadily",
    )
    state_cache_users: int = Field(
        default=20_000,
        ge=0,
        description="decoded user records kept in memory between batches (0: decode every batch)",
    )
    table_standby_replicas: int = Field(
        default=0, ge=0, description="standby copies of each table partition on other workers"
    )
    batch_within_ms: int = Field(
        default=10,
        ge=1,
        description="max wait to fill a batch; under load batches fill (batch_max) first",
    )
    producer_linger_ms: int = Field(
        default=0,
        ge=0,
        description="producer batching delay; the stages build record batches themselves, so 0",
    )
    max_poll_records: int = Field(default=5000, ge=1, description="records per consumer fetch")
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        le=30_000,
        description="how long a fetch may wait at the broker for data (Faust fixes 1500)",
    )
    stream_buffer_maxsize: int = Field(
        default=16384, ge=1, description="records an agent may prefetch (back pressure)"
    )
    direct_delivery: bool = Field(
        default=True,
        description="Faust's fetch loop hands a record to the streams in the step it reads it "
        "(workarounds.drain); false: Faust's own four tasks per record",
    )
    faust_sensors: bool = Field(
        default=False, description="also export Faust's own per-message metrics (costs CPU)"
    )
    session_timeout_s: int = Field(default=10, ge=1)
    rebalance_timeout_s: int = Field(default=10, ge=1)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="exactly_once: one Kafka transaction per batch (Apache Kafka; "
        "refused at start-up on a broker without usable transactions, e.g. Tansu)",
    )
    transaction_timeout_s: int = Field(
        default=15,
        ge=1,
        description="exactly_once: the broker aborts a transaction left open this long "
        "(a worker that died and was not restarted on its data dir)",
    )
    feed_offset_gaps: Literal["fail", "count"] = Field(
        default="fail",
        description="a jump in the feed's offsets: fail-stop and re-read (no record lost), "
        "or count it only (for a transactional or compacted feed, where jumps are normal)",
    )
    stall_restart_s: float = Field(
        default=45.0,
        ge=0,
        description="re-execute the worker when an assigned stream partition is behind and has "
        "not moved for this long (a Faust consumer that stopped fetching it); 0 = off",
    )
    gc_gen0: int = Field(
        default=50_000,
        ge=1,
        description="allocations between two young garbage collections (gc.set_threshold's "
        "first): a young collection visits the batch in flight, all of it alive, so at "
        "Python's 700 the collector took ~45% of the worker's CPU, at 50,000 ~15%; 500,000 "
        "saves most of that but its rare collections pause for ~250-300 ms (p99 at 2,000 "
        "ev/s 556-838 ms against 371-447), see docs/performance.md",
    )
    gc_gen2: int = Field(
        default=10,
        ge=1,
        description="gen-1 collections between two full ones, at least (gc.set_threshold's third)",
    )
    gc_freeze_ms: float = Field(
        default=20.0,
        ge=0,
        description="freeze every tracked object (gc.freeze) this often, so collections walk "
        "only what was allocated since; 0 = off (Python's collector at REWARDS_GC_GEN0); "
        "figures in docs/performance.md",
    )
    gc_full_s: float = Field(
        default=600.0,
        ge=0,
        description="with REWARDS_GC_FREEZE_MS: unfreeze and collect everything this often "
        "(cycles of closed connections wait for it); one pause that grows with the state "
        "held, ~0.4 s with 20,000 cached users; 0 = never",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="bearer tokens of the /v1 API, one a line ('#' comments); unset: /v1 is off",
    )
    api_rate_limit: float = Field(
        default=50.0, gt=0, description="/v1 requests a second per token, per worker (then 429)"
    )
    api_forward_timeout_s: float = Field(
        default=5.0, gt=0, description="how long a /v1 request forwarded to the owner may take"
    )
    log_level: str = "info"
    log_format: LogFormat | None = Field(
        default=None,
        description="text, or one JSON object a line (topologies.logs); "
        "unset: text on a terminal, json otherwise",
    )

    def advertised_host(self) -> str:
        """What the worker tells the group its web address is (Faust's canonical URL)."""
        if self.web_advertised_host:
            return self.web_advertised_host
        if self.web_host in ("0.0.0.0", "::", ""):
            import socket

            return socket.getfqdn()
        return self.web_host

    def bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
