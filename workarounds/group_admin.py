"""kafka-python's admin client without the DescribeGroups ACL bits Tansu 0.6 sends."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient


class GroupAdmin(KafkaAdminClient):  # type: ignore[misc]
    """Tansu 0.6 answers DescribeGroups with authorized-operation bits that
    kafka-python cannot name (it raises on 15); we never ask for them, so drop them."""

    def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.pop("authorized_operations", None)
        return obj
