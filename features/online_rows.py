"""Online feature rows for scoring, as columns: through Feast, or straight from our store.

`get_online_features` spends about 12 of its 13 ms on building protobuf responses and
running the request-time on-demand view in pandas; the store's own read is under 1 ms
(bench/online_read.py). For a scorer that needs one customer's row in a millisecond,
`DirectRows` reads the same tables of `RetainSqliteOnlineStore` by entity key and computes
the request-time features with the same function the on-demand view calls;
`features.redis_rows.RedisRows` does the same over Feast's Redis layout. `FeastRows` goes
through Feast and serves any other online store. All return `FeatureRows`, and tests check
that they agree value for value.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from feast import FeatureStore, FeatureView, ValueType

from features.online_store import RetainSqliteOnlineStore, entity_key_serializer
from features.request_time import REQUEST_TIME_FIELD, request_time_values

ENTITY = "customer_id"
REQUEST_TIME_VIEW = "customer_request_time"
_REQUEST_TIME_INPUTS = ("signup_epoch_s", "contract_type")
_REQUEST_TIME_OUTPUTS = ("tenure_days", "days_to_contract_end")
# types SQLite holds as they are and Feast returns as they are
_PLAIN_TYPES = frozenset(
    {ValueType.FLOAT, ValueType.DOUBLE, ValueType.INT32, ValueType.INT64, ValueType.BOOL,
     ValueType.STRING}
)  # fmt: skip
log = logging.getLogger("retain.features")
_MAX_PARAMS = 900  # below SQLite's default limit on bound parameters per statement


class OnlineStoreUnavailable(RuntimeError):
    """The online store cannot be reached; the message names where and which setting."""


@dataclass(frozen=True)
class FeatureRows:
    """One list per feature, in request order; `known[i]`: the store holds customer i."""

    customer_ids: list[str]
    columns: dict[str, list[Any]]
    known: np.ndarray

    def row(self, position: int) -> dict[str, Any]:
        return {name: values[position] for name, values in self.columns.items()}


class RowReader(Protocol):
    def read(self, customer_ids: Sequence[str], at: pd.Timestamp) -> FeatureRows: ...


def _split(ref: str) -> tuple[str, str]:
    view, feature = ref.split(":", 1)
    return view, feature


class FeastRows:
    """Rows through `get_online_features`: any online store, any on-demand view."""

    def __init__(self, store: FeatureStore, refs: list[str], presence_view: str) -> None:
        self.store = store
        self.refs = refs
        self.presence = [f for v, f in map(_split, refs) if v == presence_view]

    def read(self, customer_ids: Sequence[str], at: pd.Timestamp) -> FeatureRows:
        at_s = int(at.timestamp())
        entity_rows = [{ENTITY: c, REQUEST_TIME_FIELD: at_s} for c in customer_ids]
        frame = self.store.get_online_features(features=self.refs, entity_rows=entity_rows).to_df()
        known = frame[self.presence].notna().any(axis=1).to_numpy()
        columns = {f: frame[f].tolist() for _, f in map(_split, self.refs)}
        return FeatureRows(list(customer_ids), columns, known)


@dataclass(frozen=True)
class DirectPlan:
    """What a direct reader reads: per stored view its features (and which are booleans),
    the presence view first; the request-time features it computes; the output order."""

    views: list[tuple[str, list[str], list[bool]]]
    request_time: list[str]
    output: list[str]


def plan_direct(store: FeatureStore, refs: list[str], presence_view: str) -> DirectPlan:
    """The plan of a direct read of `refs`, or ValueError naming what only Feast can do."""
    wanted: dict[str, list[str]] = {}
    for view_name, feature in map(_split, refs):
        wanted.setdefault(view_name, []).append(feature)
    request_time = wanted.pop(REQUEST_TIME_VIEW, [])
    unsupported = sorted(set(request_time) - set(_REQUEST_TIME_OUTPUTS))
    if unsupported:
        raise ValueError(f"{REQUEST_TIME_VIEW} has no direct path for {', '.join(unsupported)}")
    others = sorted(v for v in wanted if v not in {f.name for f in store.list_feature_views()})
    if others:  # another on-demand view: only Feast can run it
        raise ValueError(f"no direct path for on-demand view(s) {', '.join(others)}")
    if presence_view not in wanted:
        raise ValueError(f"presence view {presence_view} is not among the refs")
    if request_time:  # its inputs come from the profile, read with the rest
        profile = {f.name for f in store.get_feature_view(presence_view).features}
        if not set(_REQUEST_TIME_INPUTS) <= profile:
            raise ValueError(f"{presence_view} lacks the inputs of {REQUEST_TIME_VIEW}")
        for name in _REQUEST_TIME_INPUTS:
            if name not in wanted.setdefault(presence_view, []):
                wanted[presence_view].append(name)
    views = []
    for name, features in wanted.items():
        view: FeatureView = store.get_feature_view(name)
        if [e.name for e in view.entity_columns] != [ENTITY]:
            raise ValueError(f"{name}: the direct path reads views keyed by {ENTITY} only")
        types = {f.name: f.dtype.to_value_type() for f in view.features}
        unknown = [f for f in features if f not in types]
        if unknown:
            raise ValueError(f"{name} has no feature(s) {', '.join(unknown)}")
        odd = [f for f in features if types[f] not in _PLAIN_TYPES]
        if odd:  # stored as protobuf bytes or raw epochs: Feast decodes those
            raise ValueError(f"{name}: no direct path for {', '.join(odd)}")
        views.append((name, features, [types[f] == ValueType.BOOL for f in features]))
    views.sort(key=lambda table: table[0] != presence_view)
    return DirectPlan(views, request_time, [feature for _, feature in map(_split, refs)])


def finish_rows(
    plan: DirectPlan,
    customer_ids: Sequence[str],
    columns: dict[str, list[Any]],
    known: np.ndarray,
    first: list[int],
    at: pd.Timestamp,
) -> FeatureRows:
    """The rows in the plan's output order: a customer asked for twice copied from the
    position that was read (`first[i]`), the request-time features computed at `at`."""
    for i, j in enumerate(first):
        if j != i:
            known[i] = known[j]
            for column_values in columns.values():
                column_values[i] = column_values[j]
    if plan.request_time:
        n = len(customer_ids)
        signup = np.array(
            [np.nan if s is None else s for s in columns["signup_epoch_s"]], dtype="float64"
        )
        tenure, days_left = request_time_values(
            signup, columns["contract_type"], np.full(n, float(int(at.timestamp())))
        )
        computed: dict[str, list[Any]] = {
            "tenure_days": [None if np.isnan(v) else int(v) for v in tenure],
            "days_to_contract_end": [None if np.isnan(v) else float(v) for v in days_left],
        }
        for name in plan.request_time:
            columns[name] = computed[name]
    return FeatureRows(list(customer_ids), {f: columns[f] for f in plan.output}, known)


class DirectRows:
    """Rows read by entity key from `RetainSqliteOnlineStore`'s tables in one joined query.

    Same values as Feast returns (the stored typed columns, booleans as bool, NULL as
    None) and the same request-time features. A customer is known when the presence
    view has a row. Each thread reads through its own connection (WAL readers never
    block one another or the materializer).
    """

    def __init__(self, store: FeatureStore, refs: list[str], presence_view: str) -> None:
        config = store.config
        if not isinstance(store._get_provider().online_store, RetainSqliteOnlineStore):
            raise TypeError("DirectRows reads RetainSqliteOnlineStore only; use FeastRows")
        self.path = RetainSqliteOnlineStore.db_path(config)
        self.serialize = entity_key_serializer(
            [ENTITY], ValueType.STRING, config.entity_key_serialization_version
        )
        self.plan = plan_direct(store, refs, presence_view)
        self.views = [(f"{config.project}_{v}", f, b) for v, f, b in self.plan.views]
        self.local = threading.local()
        self._queries: dict[int, str] = {}

    def _query(self, count: int) -> str:
        """One statement for all views: the presence view's rows, the others joined by key
        (a customer without a presence row is unknown, whatever the other views hold)."""
        query = self._queries.get(count)
        if query is None:
            tables = [f"t{k}" for k in range(len(self.views))]
            select = ", ".join(
                ["t0.entity_key"]
                + [f'{t}."{f}"' for t, (_, features, _) in zip(tables, self.views, strict=True)
                   for f in features]
            )  # fmt: skip
            joins = " ".join(
                f'LEFT JOIN "{table}" {t} ON {t}.entity_key = t0.entity_key'
                for t, (table, _, _) in zip(tables[1:], self.views[1:], strict=True)
            )
            query = (
                f'SELECT {select} FROM "{self.views[0][0]}" t0 {joins} '
                f"WHERE t0.entity_key IN ({', '.join('?' * count)})"
            )
            self._queries[count] = query
        return query

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, reopened when the file was replaced (a restore or a
        new materialization moved into place: another inode) or had failed before."""
        try:
            stat = os.stat(self.path)
        except OSError as error:
            self._drop()
            raise OnlineStoreUnavailable(f"online store {self.path}: {error}") from error
        identity = (stat.st_dev, stat.st_ino)
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is not None and getattr(self.local, "identity", None) != identity:
            self._drop()
            conn = None
        if conn is None:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"  # as_uri escapes ? # and %
            conn = sqlite3.connect(uri, uri=True, check_same_thread=True)
            self.local.conn, self.local.identity = conn, identity
        return conn

    def _drop(self) -> None:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        self.local.conn = None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def read(self, customer_ids: Sequence[str], at: pd.Timestamp) -> FeatureRows:
        try:
            return self._read(customer_ids, at)
        except sqlite3.Error as error:
            # a damaged or half-written file: this connection may hold a broken view of it,
            # so the next read opens a new one (the file may have been restored by then)
            self._drop()
            raise OnlineStoreUnavailable(
                f"online store {self.path} cannot be read: {error}"
            ) from error

    def _read(self, customer_ids: Sequence[str], at: pd.Timestamp) -> FeatureRows:
        keys = [self.serialize(c) for c in customer_ids]
        position = {key: i for i, key in enumerate(keys)}  # repeats: the last one is filled
        n = len(keys)
        names = [name for _, features, _ in self.views for name in features]
        is_bool = [flag for _, _, flags in self.views for flag in flags]
        found: list[list[Any]] = [[None] * n for _ in names]
        known = np.zeros(n, dtype=bool)
        conn = self._connection()
        for start in range(0, n, _MAX_PARAMS):
            chunk = keys[start : start + _MAX_PARAMS]
            for key, *values in conn.execute(self._query(len(chunk)), chunk):
                i = position[key]
                known[i] = True
                for column, value, flag in zip(found, values, is_bool, strict=True):
                    column[i] = bool(value) if flag and value is not None else value
        columns = dict(zip(names, found, strict=True))
        first = [position[key] for key in keys]
        return finish_rows(self.plan, customer_ids, columns, known, first, at)


def row_reader(store: FeatureStore, refs: list[str], presence_view: str) -> RowReader:
    """A direct reader when the online store is ours or Feast's Redis store and the direct
    path can compute every view; Feast's path otherwise."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    from features.redis_rows import RedisRows  # it builds on this module

    online_store = store._get_provider().online_store
    direct: type[DirectRows] | type[RedisRows] | None = None
    if isinstance(online_store, RetainSqliteOnlineStore):
        direct = DirectRows
    elif isinstance(online_store, RedisOnlineStore):
        direct = RedisRows
    if direct is not None:
        try:
            return direct(store, refs, presence_view)
        except ValueError as error:
            log.warning("online rows through Feast (slower): %s", error)
    return FeastRows(store, refs, presence_view)
