"""Errors the pure modelling code raises for data it cannot use (kept import-light: the CLI catches them)."""

from churn.errors import UserError


class UntrainableSnapshots(UserError, ValueError):
    """The labelled snapshots cannot train or evaluate a classifier (no rows, or a single class): a data
    problem that fails the same way on every retry."""
