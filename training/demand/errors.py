"""Errors of the demand model, each naming what to fix."""

from __future__ import annotations


class DemandDataError(ValueError):
    """The region-week history (or the calendar) cannot be forecast from as it is."""


class LeakageError(AssertionError):
    """Something after the forecast origin reached the features or the training rows."""
