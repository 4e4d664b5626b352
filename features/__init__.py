"""The data layer: the lifecycle data contract and simulator (`features.lifecycle`), and the
Feast feature repository built over it."""
