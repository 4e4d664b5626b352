"""Each churn and demand model version reads exactly its own feature list."""

from __future__ import annotations

from feast import FeatureService

from features.repo.feature_services import churn_v1, churn_v2, demand_v1, demand_v2
from features.repo.feature_views import CHANGE_FEATURES, customer_activity, region_weekly_demand


def _names(service: FeatureService) -> list[str]:
    return [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]


def test_churn_v1_keeps_its_features_without_the_features_of_change() -> None:
    v1 = _names(churn_v1)
    assert not {f"customer_activity:{name}" for name in CHANGE_FEATURES} & set(v1)
    assert len(v1) == 52  # the features its models were trained on
    assert "customer_activity:home_cell_outage_hours_90d" in v1


def test_churn_v2_is_churn_v1_plus_the_features_of_change() -> None:
    v1, v2 = _names(churn_v1), _names(churn_v2)
    assert sorted(v2) == sorted([*v1, *(f"customer_activity:{n}" for n in CHANGE_FEATURES)])
    assert set(CHANGE_FEATURES) <= {f.name for f in customer_activity.features}


def test_demand_v1_keeps_the_features_its_models_were_trained_on() -> None:
    assert _names(demand_v1) == [
        f"region_weekly_demand:{name}"
        for name in (
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
        )
    ]


def test_demand_v2_is_demand_v1_plus_outage_customer_hours_and_the_ticket_backlog() -> None:
    v1, v2 = _names(demand_v1), _names(demand_v2)
    added = ["region_weekly_demand:open_tickets", "region_weekly_demand:outage_customer_hours"]
    assert sorted(v2) == sorted([*v1, *added])
    assert len(v2) == len(region_weekly_demand.features)  # the whole view
