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


class LossNotFinite(FloatingPointError):
    """Raised by ``fit`` when an epoch's mean loss is NaN or infinite: the run diverged (a learning
    rate too high, data on a scale that overflows float32). ``phase``, ``epoch`` and ``logs`` (the
    epoch's loss terms) say where."""

    def __init__(self, phase: str, epoch: int, logs: dict[str, float]):
        self.phase, self.epoch, self.logs = phase, epoch, logs
        terms = ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
        super().__init__(f"the loss became {logs.get('loss')} in {phase} epoch {epoch} ({terms}): training "
                         "diverged; lower the learning rate or bring the data to a smaller scale")
