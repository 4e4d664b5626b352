"""Feast data sources: the feature tables written by `retain features build`.

Paths are relative to this Feast repository (the folder holding feature_store.yaml): the
feature tables always live in `../../data/features/` (data/ beside features/). Tests build
the same layout in a temporary folder.
"""

from feast import Field, FileSource, RequestSource
from feast.types import Int64

from features.request_time import REQUEST_TIME_FIELD

TABLES_DIR = "../../data/features"


def _table(name: str, description: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=f"{TABLES_DIR}/{name}.parquet",
        timestamp_field="event_timestamp",
        description=description,
    )


customer_profile_source = _table("customer_profile", "Profile and contract, valid from signup.")
customer_activity_source = _table("customer_activity", "Rolling aggregates per month-end snapshot.")
cell_site_quality_source = _table("cell_site_quality", "Drop rate, load and outages per site.")
region_weekly_demand_source = _table("region_weekly_demand", "Package and service demand per week.")

# The request instant, supplied with every online read and set to the snapshot time in
# training entity rows, so request-time features are computed the same way in both.
request_time = RequestSource(
    name="request_time", schema=[Field(name=REQUEST_TIME_FIELD, dtype=Int64)]
)
