"""The direct Redis reader against Feast's own reads of the same real redis-server."""

from __future__ import annotations

import math
import socket

import pandas as pd
import pytest

from features.online_rows import FeastRows, OnlineStoreUnavailable, row_reader
from features.redis_rows import RedisRows, decode
from features.settings import FeatureSettings
from features.store import apply, materialize, open_store
from serving.scoring import scoring_refs
from tests.features.conftest import AS_OF, redis_project

MOMENTS = [pd.Timestamp("2026-10-31T23:59:59+00:00"), pd.Timestamp("2026-11-02T09:17:00+00:00")]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_redis_rows_equal_feasts_reads_value_for_value(
    project: FeatureSettings, redis_server: str
) -> None:
    store = open_store(redis_project(project, redis_server))
    apply(store)
    materialize(store, AS_OF)
    refs, presence = scoring_refs(store, "churn_v2")
    reader = row_reader(store, refs, presence)
    assert isinstance(reader, RedisRows)
    feast = FeastRows(store, refs, presence)
    profile = pd.read_parquet(project.tables_dir / "customer_profile.parquet")
    first = profile["customer_id"].head(300).tolist()
    ids = [*first, "C99999999", "nobody", *first[:3]]  # unknowns and repeats
    for at in MOMENTS:
        ours, reference = reader.read(ids, at), feast.read(ids, at)
        assert ours.known.tolist() == reference.known.tolist()
        assert ours.known.sum() == 303 and not ours.known[300] and not ours.known[301]
        assert list(ours.columns) == list(reference.columns)
        compared = 0
        for name, values in ours.columns.items():
            for i, (mine, theirs) in enumerate(zip(values, reference.columns[name], strict=True)):
                if not ours.known[i] or (_missing(mine) and _missing(theirs)):
                    assert _missing(mine) == _missing(theirs) or not ours.known[i], name
                    continue
                assert mine == theirs, f"{name} of {ids[i]} at {at}: {mine!r} != {theirs!r}"
                assert isinstance(mine, bool) == isinstance(theirs, bool), name
                assert isinstance(mine, str) == isinstance(theirs, str), name
                compared += 1
        assert compared > 300 * 40


def test_an_unset_or_absent_value_decodes_to_none() -> None:
    from feast.protos.feast.types.Value_pb2 import Null, Value

    assert decode(None) is None and decode(b"") is None
    assert decode(Value(null_val=Null.NULL).SerializeToString()) is None
    assert decode(Value(int64_val=0).SerializeToString()) == 0
    assert decode(Value(bool_val=False).SerializeToString()) is False
    assert decode(Value(string_val="").SerializeToString()) == ""
    assert decode(Value(double_val=-1.5).SerializeToString()) == -1.5


def test_a_redis_that_cannot_be_reached_is_named_with_its_setting(
    project: FeatureSettings,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    apply(open_store(project))  # the definitions, registered without touching any Redis
    registry = project.tables_dir.parent / "feast"
    (registry / "registry_redis.db").write_bytes((registry / "registry.db").read_bytes())
    store = open_store(redis_project(project, address))
    refs = ["customer_profile:signup_epoch_s", "customer_profile:contract_type"]
    reader = RedisRows(store, refs, "customer_profile")
    with pytest.raises(OnlineStoreUnavailable) as raised:
        reader.read(["C1"], MOMENTS[0])
    assert address in str(raised.value) and "online_store.connection_string" in str(raised.value)
