"""A thread in the API process that turns jobs with a stale heartbeat back into queued ones.

Requeued jobs are handed to the dispatcher again (Celery needs a new message; the local runner
just sees the row); a job stays marked `dispatch_pending` until the broker has taken it. Several
API processes may each run one: the guarded update lets only one of them requeue a given attempt.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from deepclust.app.core import joblog, jobstate, predictionstate, sweepstate
from deepclust.app.core.db import new_session
from deepclust.app.core.dispatch import BrokerUnavailable, Dispatcher
from deepclust.app.core.settings import Settings
from deepclust.app.core.storage import store_for
from deepclust.app.predictions.service import reap_once as reap_predictions

log = logging.getLogger(__name__)


def reap_once(engine: Engine, settings: Settings, dispatcher: Dispatcher) -> list[str]:
    """Requeue the jobs whose heartbeat went stale and hand every requeued job that the broker has
    not taken yet to the dispatcher; returns the ids requeued this round."""
    with new_session(engine) as session:
        requeued = jobstate.reap_stale(session, settings.stale_after_seconds, settings.max_attempts,
                                       (settings.retry_backoff_seconds, settings.retry_backoff_max_seconds))
        store = store_for(settings.data_dir)
        for job_id in requeued:
            log.warning("job %s lost its worker (stale heartbeat); requeued to resume from its checkpoint", job_id)
            joblog.append(store, job_id, f"no heartbeat for {settings.stale_after_seconds:.0f} s (the worker was "
                          "lost); it goes back to the queue and resumes from its checkpoint", "WARNING")
        try:  # held jobs whose source ended become pending below; sweeps whose jobs all ended settle
            sweepstate.tick(session, store, settings.stale_after_seconds)
        except Exception:
            session.rollback()
            log.exception("settling sweeps failed this round")
        try:  # a broker restarted without persistence took the queued jobs' messages with it
            if dispatcher.messages_lost():
                if count := jobstate.redispatch_queued(session):
                    log.warning("the broker lost its messages (restarted?); %d queued jobs are sent again", count)
                # batch predictions too (app/predictions/service.py sends them in its round)
                if count := predictionstate.redispatch_queued(session):
                    log.warning("the broker lost its messages (restarted?); %d queued predictions are sent again",
                                count)
        except BrokerUnavailable as exc:
            log.warning("cannot tell whether the broker kept its messages: %s", exc)
        # Durable in the row, so a broker outage or an API restart between requeue and send loses
        # nothing; a job in its retry backoff (not_before) waits for a later round.
        for job_id in jobstate.pending_dispatch(session):
            try:
                dispatcher.submit(job_id)
            except BrokerUnavailable as exc:
                log.warning("job %s stays queued until the broker answers: %s", job_id, exc)
                break  # the broker is down for all of them; next round
            jobstate.mark_dispatched(session, job_id)
    return requeued


class Reaper(threading.Thread):
    def __init__(self, engine: Engine, settings: Settings, dispatcher: Dispatcher):
        super().__init__(name="deepclust-reaper", daemon=True)
        self.engine, self.settings, self.dispatcher = engine, settings, dispatcher
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.reaper_interval_seconds):
            try:
                reap_once(self.engine, self.settings, self.dispatcher)
            except Exception:  # the database or broker may be down for a while; try again next round
                log.exception("reaper round failed")
            try:  # batch predictions: the same round on their table (app/predictions/service.py)
                reap_predictions(self.engine, self.settings, self.dispatcher)
            except Exception:
                log.exception("reaper round of the predictions failed")

    def stop(self) -> None:
        self._stop_event.set()
