"""Each churn model version reads exactly its own feature list."""

from __future__ import annotations

from feast import FeatureService

from features.repo.feature_services import churn_v1, churn_v2
from features.repo.feature_views import CHANGE_FEATURES, customer_activity


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
