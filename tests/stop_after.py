"""A callback that kills a fit mid-way, as a killed worker would, for the resume tests."""
from __future__ import annotations

from deepclust.models import Callback, save_checkpoint


class StopAfter(Callback):
    """Saves every checkpoint to disk and cancels after ``n`` of them."""

    def __init__(self, path, n):
        self.path, self.n, self.seen = path, n, 0

    def on_checkpoint(self, state):
        save_checkpoint(state, self.path)
        self.seen += 1

    def should_stop(self):
        return self.seen >= self.n
