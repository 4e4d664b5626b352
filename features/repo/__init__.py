"""The Feast repository: definitions only (entities, data sources, feature views, feature
services) and `feature_store.yaml` per environment (`envs/`). Everything that computes or
moves features lives beside it in `features/`."""
