"""What the progress bar (client and CLI) says about a job, from its resource alone."""
from __future__ import annotations

import io

from rich.console import Console

from deepclust.app.client.progress import detail, follow, stage


def job(**changes) -> dict:
    base = {"id": "job_x", "status": "running", "phase": "pretrain", "model_id": None, "error": None,
            "progress": {"epoch": 3, "epochs": 50, "fraction": 0.03, "loss": 0.0213, "label_change": None}}
    return {**base, **changes}


def test_a_running_job_shows_its_phase_epoch_and_loss():
    assert stage(job()) == "pretrain" and detail(job()) == "epoch 3/50  loss 0.0213"
    assert stage(job(phase=None)) == "starting" and stage(job(status="queued", phase=None)) == "queued"


def test_finetune_epochs_are_shown_as_the_most_it_can_take():
    finetune = job(phase="finetune", progress={"epoch": 12, "epochs": 188, "fraction": 0.6, "loss": 0.25,
                                               "label_change": 0.0033})
    assert detail(finetune) == "epoch 12/≤188  loss 0.25  changed 0.33%"


def test_an_ended_job_says_how():
    assert detail(job(status="succeeded", model_id="mdl_1")) == "model mdl_1"
    failed = job(status="failed", error={"code": "training_failed", "message": "RuntimeError: boom"})
    assert stage(failed) == "failed" and detail(failed) == "training_failed: RuntimeError: boom"


def test_follow_draws_until_the_last_state_and_returns_it():
    screen = io.StringIO()
    states = [job(status="queued", phase=None), job(), job(status="succeeded", phase="finalize", model_id="mdl_1")]
    assert follow(iter(states), console=Console(file=screen, force_terminal=True, width=120)) == states[-1]
    out = screen.getvalue()
    assert "job job_x" in out and "succeeded" in out and "100%" in out and "model mdl_1" in out
