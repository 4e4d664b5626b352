"""Feast entities: who or what a feature describes."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A subscriber account (customers.customer_id).",
)

cell_site = Entity(
    name="cell_site",
    join_keys=["cell_site_id"],
    value_type=ValueType.STRING,
    description="A radio cell site (cell_sites.cell_site_id).",
)

region = Entity(
    name="region",
    join_keys=["region"],
    value_type=ValueType.STRING,
    description="A sales region; the grain of the demand forecasts.",
)
