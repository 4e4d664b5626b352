"""Feast feature views: named, typed groups of features over one source and entity."""

from datetime import timedelta

import pandas as pd
from feast import FeatureView, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float64, Int64, PrimitiveFeastType, String

from features.repo.data_sources import (
    cell_site_quality_source,
    customer_activity_source,
    customer_profile_source,
    region_weekly_demand_source,
    request_time,
)
from features.repo.entities import cell_site, customer, region

SNAPSHOTS_TAG = "snapshots"  # how often the table holds a snapshot: a gap is a lost partition


def _fields(dtype: PrimitiveFeastType, *names: str) -> list[Field]:
    return [Field(name=name, dtype=dtype) for name in names]


customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(0),  # valid until replaced: the profile holds from signup on
    schema=[
        *_fields(Int64, "signup_epoch_s"),
        *_fields(
            String,
            "segment",
            "age_band",
            "region",
            "cell_site_id",
            "plan_id",
            "contract_type",
            "payment_method",
        ),
        *_fields(Float64, "monthly_fee"),
        *_fields(Bool, "is_student", "paperless_billing", "large_print", "has_account_manager"),
    ],
    source=customer_profile_source,
    online=True,
    description="Who the customer is and what they signed.",
)

CONTACT_PROFILE_FIELDS = (
    "segment",
    "region",
    "cell_site_id",
    "contract_type",
    "monthly_fee",
    "has_account_manager",
    "age_band",  # contact with care: older customers' preferred channels, dedicated agents
    "large_print",
)

customer_contact = FeatureView(
    name="customer_contact",
    entities=[customer],
    ttl=timedelta(0),
    schema=[
        # the profile's own columns (same source), defined once there
        *(f for f in customer_profile.schema if f.name in CONTACT_PROFILE_FIELDS),
        *_fields(Bool, "consent_sms", "consent_app_push", "consent_email", "consent_phone"),
    ],
    source=customer_profile_source,
    online=True,
    description="What the action engine needs to contact a customer: consent per channel, "
    "segment and value, home cell. Not a model input.",
)

# churn_v2's features of change (features/build.py `_change_features`); churn_v1 reads
# the view without them
CHANGE_FIELDS = [
    *_fields(
        Float64,
        "data_gb_change_vs_prev_3m",
        "voice_min_change_vs_prev_3m",
        "bill_change_vs_6m",
    ),
    *_fields(Int64, "complaints_30d", "complaints_30_to_90d", "tickets_relocation_30d"),
    *_fields(Float64, "sentiment_mean_30d", "sentiment_mean_lifetime"),
    *_fields(Int64, "months_billed_lifetime"),
    *_fields(Float64, "late_payment_rate_lifetime", "complaints_per_month_lifetime"),
]
CHANGE_FEATURES = tuple(field.name for field in CHANGE_FIELDS)

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    tags={SNAPSHOTS_TAG: "monthly"},  # every month start is one partition (checked)
    ttl=timedelta(days=45),  # a month-end snapshot older than this is stale, not current
    schema=[
        *_fields(
            Float64,
            "data_gb_30d",
            "data_gb_mean_90d",
            "data_gb_mean_180d",
            "voice_min_mean_90d",
            "bill_30d",
            "bill_mean_90d",
            "bill_mean_180d",
            "bill_change_vs_prev_3m",
            "overage_30d",
            "overage_90d",
        ),
        *_fields(Int64, "roaming_days_90d", "late_payments_180d", "months_billed_180d"),
        *_fields(
            Int64,
            "tickets_network_fault_90d",
            "tickets_billing_dispute_90d",
            "tickets_package_question_90d",
            "tickets_complaint_90d",
            "tickets_relocation_90d",
            "tickets_technical_support_90d",
            "tickets_30d",
            "tickets_180d",
            "unresolved_tickets",
            "repeat_complaints_90d",
        ),
        *_fields(
            Float64,
            "sentiment_mean_90d",
            "sentiment_min_90d",
            "first_contact_resolution_180d",
            "days_since_last_complaint",
        ),
        *_fields(Int64, "offers_180d", "offers_accepted_180d"),
        *_fields(Float64, "days_since_last_offer"),
        *_fields(
            Int64,
            "packages_90d",
            "campus_data_pack_180d",
            "roaming_pack_180d",
            "daily_pass_180d",
            "family_upgrade_180d",
        ),
        *_fields(
            Float64,
            "package_spend_90d",
            "home_cell_drop_rate_30d",
            "home_cell_outage_hours_30d",
            "home_cell_outage_hours_90d",
        ),
        *CHANGE_FIELDS,
    ],
    source=customer_activity_source,
    online=True,
    description="Usage, billing, service, network, campaign and package history before a snapshot.",
)


@on_demand_feature_view(
    sources=[customer_profile, request_time],
    schema=[
        Field(name="tenure_days", dtype=Int64),
        Field(name="days_to_contract_end", dtype=Float64),
    ],
    mode="pandas",
    description="Tenure and days to contract end at the request instant.",
)
def customer_request_time(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function in the registry and runs it without this module's
    # globals: import the shared implementation inside.
    from features.request_time import request_time_features

    return request_time_features(inputs)


cell_site_quality = FeatureView(
    name="cell_site_quality",
    entities=[cell_site],
    tags={SNAPSHOTS_TAG: "monthly"},
    ttl=timedelta(days=45),
    schema=[
        *_fields(
            Float64,
            "drop_rate_mean_30d",
            "drop_rate_max_30d",
            "load_mean_30d",
            "outage_hours_30d",
            "outage_hours_90d",
        ),
        *_fields(Int64, "outage_events_30d"),
    ],
    source=cell_site_quality_source,
    online=True,
    description="Service quality of a cell site over the 30/90 days before the snapshot.",
)

region_weekly_demand = FeatureView(
    name="region_weekly_demand",
    entities=[region],
    tags={SNAPSHOTS_TAG: "weekly"},
    ttl=timedelta(days=14),
    schema=[
        *_fields(
            Int64,
            "purchases_campus_data_pack",
            "purchases_roaming_pack",
            "purchases_daily_pass",
            "purchases_family_upgrade",
            "service_contacts",
            "network_fault_contacts",
            "active_customers",
            "active_students",
            "week_of_year",
            "open_tickets",
        ),
        *_fields(Float64, "outage_hours", "outage_customer_hours"),
    ],
    source=region_weekly_demand_source,
    online=True,
    description="Weekly package purchases, service contacts, outages and the ticket backlog "
    "per region.",
)
