"""The event types of the contract, in a module without pyarrow: settings check `activity_types` against
them on every command, before anything heavy is imported. `expectations.contract` re-exports them."""

EVENT_TYPES: tuple[str, ...] = ("visit", "purchase", "return", "complaint")
