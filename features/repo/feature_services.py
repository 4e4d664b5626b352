"""Feast feature services: the exact feature list of each model version.

Training (`get_historical_features`) and serving (`get_online_features`) both ask for a
service by name, so a model's features are defined once, here.
"""

from feast import FeatureService

from features.repo.feature_views import (
    CHANGE_FEATURES,
    customer_activity,
    customer_profile,
    customer_request_time,
    region_weekly_demand,
)

_CHURN_PROFILE = [
    f.name for f in customer_profile.features if f.name not in ("signup_epoch_s", "cell_site_id")
]

churn_v1 = FeatureService(
    name="churn_v1",
    features=[
        customer_profile[_CHURN_PROFILE],
        customer_activity[
            [f.name for f in customer_activity.features if f.name not in CHANGE_FEATURES]
        ],
        customer_request_time,
    ],
    description="Churn model v1: profile, activity history and request-time contract features.",
)

churn_v2 = FeatureService(
    name="churn_v2",
    features=[customer_profile[_CHURN_PROFILE], customer_activity, customer_request_time],
    description="Churn model v2: churn_v1's features and the features of change (usage, bill, "
    "complaints and sentiment against the months before, lifetime payment and complaint habits).",
)

# demand_v1's models were trained on these: the columns added later stay out of it
_DEMAND_V1 = [
    "purchases_campus_data_pack",
    "purchases_roaming_pack",
    "purchases_daily_pass",
    "purchases_family_upgrade",
    "service_contacts",
    "network_fault_contacts",
    "active_customers",
    "active_students",
    "week_of_year",
    "outage_hours",
]

demand_v1 = FeatureService(
    name="demand_v1",
    features=[region_weekly_demand[_DEMAND_V1]],
    description="Demand model v1: weekly package and service demand per region.",
)

demand_v2 = FeatureService(
    name="demand_v2",
    features=[region_weekly_demand],
    description="Demand model v2: demand_v1's features, the outage customer-hours (each "
    "outage's hours in the week x the customers of its site) and the ticket backlog at the "
    "week's end.",
)
