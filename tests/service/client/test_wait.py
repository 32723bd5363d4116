"""``wait()`` of a job, a sweep and a batch prediction, the polling they share: the final resource,
or with ``raise_on_failure`` a ``JobFailed`` that names the kind, its error and the resource.

The server's answers are a scripted sequence here (the HTTP side has its own tests against a
real server in test_client.py and test_client_sweeps.py): what is tested is the client's loop."""
from __future__ import annotations

import pytest

from deepclust.app.client import BatchPrediction, Job, JobFailed, Sweep


class Answers:
    """Stands in for Client._json: each GET returns the next scripted state of the resource."""

    def __init__(self, *states: dict):
        self.states, self.paths = list(states), []

    def _json(self, method: str, path: str, **_):
        assert method == "GET"
        self.paths.append(path)
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


KINDS = [(Job, "job", "/v1/jobs"), (Sweep, "sweep", "/v1/sweeps"), (BatchPrediction, "prediction", "/v1/predictions")]


@pytest.mark.parametrize("cls,kind,path", KINDS)
def test_wait_polls_until_finished_and_returns_the_final_resource(cls, kind, path):
    client = Answers({"id": "x1", "status": "queued"}, {"id": "x1", "status": "running"},
                     {"id": "x1", "status": "succeeded"})
    resource = cls(client, {"id": "x1", "status": "queued"})
    assert resource.wait(progress=False, poll_seconds=0.001, raise_on_failure=True)["status"] == "succeeded"
    assert client.paths == [f"{path}/x1"] * 3


@pytest.mark.parametrize("cls,kind,path", KINDS)
def test_raise_on_failure_names_the_kind_its_error_and_the_resource(cls, kind, path):
    cancelled = cls(Answers({"id": "x2", "status": "cancelled", "error": None}), {"id": "x2", "status": "running"})
    with pytest.raises(JobFailed) as caught:
        cancelled.wait(progress=False, raise_on_failure=True)
    assert caught.value.code == f"{kind}_cancelled" and caught.value.message == f"{kind} x2 was cancelled"
    assert caught.value.details == {kind: {"id": "x2", "status": "cancelled", "error": None}}

    error = {"code": "runtime_exceeded", "message": "past the limit"}
    failed = cls(Answers({"id": "x3", "status": "failed", "error": error}), {"id": "x3", "status": "running"})
    assert failed.wait(progress=False)["status"] == "failed"  # without raise_on_failure: the resource
    with pytest.raises(JobFailed) as caught:
        failed.wait(progress=False, raise_on_failure=True)
    assert (caught.value.code, caught.value.message) == ("runtime_exceeded", "past the limit")


@pytest.mark.parametrize("cls,kind,path", KINDS)
def test_wait_gives_up_after_its_timeout_and_says_what_is_still_running(cls, kind, path):
    running = cls(Answers({"id": "x4", "status": "running"}), {"id": "x4", "status": "queued"})
    with pytest.raises(TimeoutError, match=f"{kind} x4 is still running after 0.01 s"):
        running.wait(progress=False, timeout=0.01, poll_seconds=0.005)
