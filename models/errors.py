"""Exceptions the library raises at its boundary."""


class InvalidParams(ValueError):
    """Method parameters that are unknown or out of range.

    ``errors`` lists ``{"param": name, "message": text}`` for each problem, so a caller can
    report every one at once.
    """

    def __init__(self, method: str, errors: list[dict]):
        self.method = method
        self.errors = errors
        detail = "; ".join(f"{e['param']}: {e['message']}" for e in errors)
        super().__init__(f"invalid params for method '{method}': {detail}")


class TrainingCancelled(RuntimeError):
    """Raised by ``fit`` when a callback's ``should_stop`` returned True."""
