"""Churn and demand models: LightGBM training, evaluation, MLflow tracking (issues 5 and 6)."""
