"""JobReporter, the worker's training callback: a phase it has no progress span for keeps the
fraction reached so far (a method may add phases), and the labels any phase reports are scored
into that phase's history rows."""
from __future__ import annotations

import pytest

from deepclust.app.core import jobstate
from deepclust.app.core.db import engine_for, new_session
from deepclust.app.core.storage import store_for
from deepclust.models import PRETRAIN
from deepclust.worker.reporting import JobReporter

from ..conftest import TINY_DEC, blobs, npy_bytes, upload


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_phase_without_a_span_keeps_the_progress_and_its_labels_are_scored(backend):
    X, y = blobs(60, 4, 3)
    with backend.client() as api:
        dataset = upload(api, "blobs.npy", npy_bytes(X)).json()["id"]
        job_id = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 3,
                                            **TINY_DEC}).json()["id"]
        engine = engine_for(backend.settings.database_url)
        with new_session(engine) as session:
            job = jobstate.claim(session, job_id, "test-worker")
        settings = backend.settings.model_copy(update={"progress_interval_seconds": 0})
        reporter = JobReporter(engine, job, settings, store_for(settings.data_dir), y)

        reporter.on_phase_begin(PRETRAIN, 2)
        reporter.on_epoch_end(PRETRAIN, 1, 2, {"loss": 1.0})
        assert reporter.progress["fraction"] == 0.5
        reporter.on_phase_begin("warmup", 3)  # a method's own phase: no span, no KeyError
        reporter.on_labels("warmup", 4, y, None)
        reporter.on_epoch_end("warmup", 0, 3, {"loss": 0.5, "xi": 0.1})
        assert reporter.progress["fraction"] == 0.5 and reporter.progress["epoch"] == 1

        state = api.get(f"/v1/jobs/{job_id}").json()
        assert state["phase"] == "warmup" and state["progress"]["fraction"] == 0.5
        rows = api.get(f"/v1/jobs/{job_id}/history").json()
        assert [(r["phase"], r["epoch"]) for r in rows] == [(PRETRAIN, 1), ("warmup", 0)]
        assert "acc" not in rows[0]  # no labels were reported in pretraining
        assert rows[1]["acc"] == 1.0 and rows[1]["nmi"] == pytest.approx(1.0) and rows[1]["xi"] == 0.1
