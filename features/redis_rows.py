"""Online feature rows straight from Feast's Redis layout, for the scorer at full speed.

Feast keeps each entity in one Redis hash: the key is the serialized entity key followed by
the project name; a feature's field is the murmur3 hash of `view:feature` (little endian,
4 bytes) holding a serialized `ValueProto`, and `_ts:view` holds the row's event time.
`get_online_features` reads those hashes and then spends most of its time building
protobuf responses and running the request-time on-demand view in pandas. `RedisRows`
reads the same fields for a batch of customers with one pipelined HMGET per customer,
decodes the values, and computes the request-time features with the same function as the
on-demand view. A test against a real redis-server checks it equals Feast value for value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore, ValueType
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from redis.exceptions import RedisError

from features.online_rows import (
    ENTITY,
    FeatureRows,
    OnlineStoreUnavailable,
    finish_rows,
    plan_direct,
)
from features.online_store import entity_key_serializer


def decode(raw: bytes | None) -> Any:
    """A stored ValueProto as the Python value Feast returns (None when unset or absent)."""
    if not raw:
        return None
    value = ValueProto()
    value.ParseFromString(raw)
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    return getattr(value, kind)


class RedisRows:
    """Rows read by entity key from Feast's Redis online store, pipelined.

    A customer is known when any feature of the presence view is set, as Feast's rows
    are read. The client is the one Feast's Redis store opens from feature_store.yaml
    (a single server, a cluster or a sentinel, with its TLS and password settings).
    """

    def __init__(self, store: FeatureStore, refs: list[str], presence_view: str) -> None:
        config = store.config
        online = store._get_provider().online_store
        if not isinstance(online, RedisOnlineStore):
            raise TypeError("RedisRows reads Feast's Redis online store only; use FeastRows")
        self.plan = plan_direct(store, refs, presence_view)
        where = config.online_store.connection_string
        self.where = f"Redis at {where!r} (online_store.connection_string in feature_store.yaml)"
        self.client = online._get_client(config.online_store)
        self.suffix = config.project.encode("utf8")
        self.serialize = entity_key_serializer(
            [ENTITY], ValueType.STRING, config.entity_key_serialization_version
        )
        self.fields = [_mmh3(f"{v}:{f}") for v, features, _ in self.plan.views for f in features]
        self.names = [f for _, features, _ in self.plan.views for f in features]
        self.is_bool = [flag for _, _, flags in self.plan.views for flag in flags]
        self.presence = len(self.plan.views[0][1])  # the presence view's fields come first

    def read(self, customer_ids: Sequence[str], at: pd.Timestamp) -> FeatureRows:
        keys = [self.serialize(c) + self.suffix for c in customer_ids]
        position = {key: i for i, key in enumerate(keys)}  # repeats: read once
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key in position:
                    pipe.hmget(key, self.fields)
                replies = pipe.execute()
        except RedisError as error:
            raise OnlineStoreUnavailable(f"{self.where} cannot be read: {error}") from error
        n = len(keys)
        columns: dict[str, list[Any]] = {name: [None] * n for name in self.names}
        known = np.zeros(n, dtype=bool)
        targets = [columns[name] for name in self.names]
        for i, raw_values in zip(position.values(), replies, strict=True):
            values = [decode(raw) for raw in raw_values]
            known[i] = any(v is not None for v in values[: self.presence])
            for column, value, flag in zip(targets, values, self.is_bool, strict=True):
                column[i] = bool(value) if flag and value is not None else value
        first = [position[key] for key in keys]
        return finish_rows(self.plan, customer_ids, columns, known, first, at)
