"""The one exception base class for failures only a person can fix (a missing input, a wrong setting).

A leaf module that imports nothing, so `storage/`, `models/`, `ingestion/` and `flows/` can raise
subclasses of it without depending on the CLI or the settings (and without their import cost):
`storage.tracking.retry_transient` never retries a `UserError`, and `churn` prints it as one
`error:` line with exit code 2.
"""


class UserError(Exception):
    """Needs a person, not a retry: the same call would fail the same way until an input or setting changes."""
