"""Optional retention: jobs (and batch predictions) that finished more than DEEPCLUST_RETENTION_DAYS
ago are removed, with their models, results and files, by a thread of the API process (one per replica is harmless:
each deletion is guarded, so a job goes once)."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from deepclust.app.core.db import new_session, utcnow
from deepclust.app.core.storage import ArtifactStore
from deepclust.app.core.tables import ACTIVE_STATES, Job
from deepclust.app.lifecycle import remove_files, remove_job
from deepclust.app.predictions.service import purge_expired as purge_expired_predictions

log = logging.getLogger(__name__)


BATCH = 1000


def purge_expired(engine: Engine, store: ArtifactStore, retention_days: float, batch: int = BATCH) -> list[str]:
    """Delete up to ``batch`` jobs that finished more than ``retention_days`` ago; returns their ids."""
    cutoff = utcnow() - timedelta(days=retention_days)
    removed = []
    with new_session(engine) as session:
        expired = session.exec(select(Job).where(Job.status.not_in(ACTIVE_STATES), Job.finished_at < cutoff)
                               .order_by(Job.finished_at).limit(batch)).all()
        for job in expired:
            if remove_job(session, job):
                session.commit()
                remove_files(store, job)
                removed.append(job.id)
    if removed:
        log.info("retention: removed %d jobs finished more than %g days ago", len(removed), retention_days)
    return removed


class RetentionSweeper(threading.Thread):
    def __init__(self, engine: Engine, store: ArtifactStore, retention_days: float, interval_seconds: float):
        super().__init__(name="deepclust-retention", daemon=True)
        self.engine, self.store = engine, store
        self.retention_days, self.interval_seconds = retention_days, interval_seconds
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            try:
                while len(purge_expired(self.engine, self.store, self.retention_days)) >= BATCH:
                    continue  # a backlog: the next batch at once
                while len(purge_expired_predictions(self.engine, self.store, self.retention_days)) >= BATCH:
                    continue  # batch predictions the same way
            except Exception:  # the database may be down for a while; next round
                log.exception("retention round failed")
            if self._stop_event.wait(self.interval_seconds):
                return

    def stop(self) -> None:
        self._stop_event.set()
