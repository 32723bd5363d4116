"""The training loop with phases of its tests' own: batch order and drop-last, the per-step
seeded transform, hooks that end a phase, phase state in checkpoints, and resume."""
import numpy as np
import pytest
import torch

from deepclust.models import FINETUNE, INIT, Callback, DeepClusterer, LossNotFinite, load_checkpoint, save_checkpoint
from deepclust.models.networks.mlp import ClusterModel, DenseAutoencoder
from deepclust.models.preprocessing import Scaler
from deepclust.models.training import Phase, Run, train
from deepclust.models.training.callbacks import CallbackList
from deepclust.models.training.data import ArrayData
from deepclust.models.training.loop import step_seed


class Recording(Phase):
    """Reconstruction steps that record what they see; optional stops; its step count as state."""

    def __init__(self, name="custom", epochs=3, batch_size=16, order="shuffle", drop_last=False, transform=None,
                 stop_after_epoch=None, stop_before=None):
        self.name, self.n_epochs, self.batch_size, self.order = name, epochs, batch_size, order
        self.drop_last, self.transform = drop_last, transform
        self.stop_after_epoch, self.stop_before = stop_after_epoch, stop_before
        self.steps, self.indices, self.inputs = 0, [], []

    def iterations(self, n_samples):
        return self.n_epochs * self.iterations_per_epoch(n_samples)

    def optimizer(self, model):
        return torch.optim.SGD(model.parameters(), lr=0.05)

    def before_step(self, model, data, iteration, run):
        return iteration == self.stop_before

    def step(self, model, batch):
        self.indices.append(batch.index.tolist())
        self.inputs.append(batch.x.clone())
        self.steps += 1
        z, x_hat = model.autoencoder(batch.x)
        return {"loss": ((x_hat - batch.x) ** 2).mean()}

    def end_epoch(self, model, data, epoch, run):
        return epoch == self.stop_after_epoch

    def epoch_logs(self):
        return {"steps": float(self.steps)}

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


class Checkpoints(Callback):
    def __init__(self):
        self.states = []

    def on_checkpoint(self, state):
        self.states.append(state)


def setup(n=50):
    X = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    data = ArrayData(X, Scaler.fit(X, "none"), torch.device("cpu"))
    torch.manual_seed(0)
    return ClusterModel(DenseAutoencoder(4, [8], 2), 2, 2), data


def fit(phases, callbacks=(), resume=None, history=None):
    model, data = setup()
    run = Run(CallbackList(callbacks), base_state={"method": "test"}, history=history)
    train(model, data, phases, run, seed=5, resume=resume)
    return model, run


def test_batches_of_a_pass_cover_the_data_once_and_drop_last_keeps_full_batches_only():
    keep = Recording(epochs=2)
    fit([keep])
    assert [len(i) for i in keep.indices] == [16, 16, 16, 2] * 2
    assert sorted(sum(keep.indices[:4], [])) == list(range(50))
    assert keep.indices[:4] != keep.indices[4:]  # reshuffled each pass

    drop = Recording(epochs=2, drop_last=True)
    _, run = fit([drop])
    assert [len(i) for i in drop.indices] == [16] * 6
    assert len(set(sum(drop.indices[:3], []))) == 48
    assert [h["epoch"] for h in run.history] == [0, 1]

    sequential = Recording(epochs=1, order="sequential")
    fit([sequential])
    assert sum(sequential.indices, []) == list(range(50))


def noise(x, generator):
    return x + torch.randn(x.shape, generator=generator, device=x.device)


def test_the_transform_is_seeded_per_step_and_a_resumed_run_sees_the_same_augmentations():
    recorder = Checkpoints()
    reference = Recording(epochs=4, order="sequential", transform=noise)
    model, _ = fit([reference], [recorder])
    again = Recording(epochs=4, order="sequential", transform=noise)
    torch.rand(100)  # the global RNG is not where the augmentations come from
    fit([again])
    for a, b in zip(reference.inputs, again.inputs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    clean = Recording(epochs=1, order="sequential")
    fit([clean])
    # The same rows (the first batch of epochs 0 and 1) get different noise at each step.
    first, second = reference.inputs[0] - clean.inputs[0], reference.inputs[4] - clean.inputs[0]
    assert first.abs().mean() > 0.5 and not torch.allclose(first, second)

    state = recorder.states[1]  # after epoch 1, 8 steps
    assert state["iteration"] == 8 and state["phase_state"] == {"steps": 8}
    resumed = Recording(epochs=4, order="sequential", transform=noise)
    resumed_model, _ = fit([resumed], resume=state, history=state["history"])
    assert resumed.steps == 16 and len(resumed.inputs) == 8
    for a, b in zip(resumed.inputs, reference.inputs[8:]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[k], v, rtol=0, atol=0)


class TwoViews(Recording):
    """A two-view phase: the step gets the clean rows (``batch.x``) and a seeded noisy copy."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.second_view, self.views = noise, []

    def step(self, model, batch):
        self.views.append(batch.view.clone())
        return super().step(model, batch)


def test_a_two_view_step_sees_the_clean_batch_and_a_seeded_copy_and_a_resume_replays_both():
    recorder = Checkpoints()
    reference = TwoViews(epochs=4, order="sequential")
    model, _ = fit([reference], [recorder])
    clean = Recording(epochs=4, order="sequential")
    fit([clean])
    single = Recording(epochs=4, order="sequential", transform=noise)
    fit([single])
    assert len(reference.views) == len(reference.inputs) == 16
    for x, c, view, transformed in zip(reference.inputs, clean.inputs, reference.views, single.inputs):
        assert torch.equal(x, c)  # batch.x is the clean rows
        assert (view - x).abs().mean() > 0.5  # the view is an augmented copy of them
        torch.testing.assert_close(view, transformed, rtol=0, atol=0)  # drawn as a transform would be
    assert not torch.allclose(reference.views[0] - clean.inputs[0], reference.views[4] - clean.inputs[4])
    # Without a second view the step gets none.
    assert Recording().second_view is None

    state = recorder.states[1]
    resumed = TwoViews(epochs=4, order="sequential")
    resumed_model, _ = fit([resumed], resume=state, history=state["history"])
    assert len(resumed.views) == 8
    for a, b in zip(resumed.views, reference.views[8:]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[k], v, rtol=0, atol=0)


def test_step_seeds_differ_by_phase_and_iteration_and_never_change():
    seeds = {step_seed(0, phase, i) for phase in ("pretrain", "finetune") for i in range(100)}
    assert len(seeds) == 200 and all(0 <= s < 2 ** 63 for s in seeds)
    assert step_seed(3, "pretrain", 7) == step_seed(3, "pretrain", 7) != step_seed(4, "pretrain", 7)


def test_an_epoch_end_hook_ends_its_phase_and_a_resume_from_there_goes_on_to_the_next():
    recorder = Checkpoints()
    first, then = Recording("a", epochs=5, stop_after_epoch=1), Recording("b", epochs=1)
    model, run = fit([first, then], [recorder])
    assert [(h["phase"], h["epoch"], h["steps"]) for h in run.history] == [("a", 0, 4), ("a", 1, 8), ("b", 0, 4)]
    stopped = recorder.states[1]
    assert (stopped["phase"], stopped["iteration"], stopped["phase_stopped"]) == ("a", 8, True)

    first_again, then_again = Recording("a", epochs=5, stop_after_epoch=1), Recording("b", epochs=1)
    resumed_model, resumed_run = fit([first_again, then_again], resume=stopped, history=stopped["history"])
    assert first_again.steps == 8 and not first_again.indices  # restored, and no step taken
    assert then_again.indices == then.indices and resumed_run.history == run.history
    for k, v in model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[k], v, rtol=0, atol=0)


def test_a_hook_that_ends_the_phase_mid_epoch_keeps_the_partial_epoch():
    phase = Recording(epochs=3, stop_before=6)
    _, run = fit([phase])
    assert phase.steps == 6
    assert [(h["epoch"], h["steps"]) for h in run.history] == [(0, 4), (1, 6)]


def test_checkpoints_are_plain_and_load_without_pickle(tmp_path):
    recorder = Checkpoints()
    fit([Recording(epochs=2)], [recorder])
    save_checkpoint(recorder.states[0], tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")  # weights_only=True
    assert state["phase"] == "custom" and state["phase_state"] == {"steps": 4} and state["method"] == "test"
    assert {"model", "optimizer", "rng", "history", "version"} <= set(state)


def test_a_checkpoint_of_another_version_or_phase_is_refused():
    recorder = Checkpoints()
    fit([Recording(epochs=2)], [recorder])
    state = recorder.states[0]
    with pytest.raises(ValueError, match="checkpoint version 1 is not 2"):
        fit([Recording(epochs=2)], resume={**state, "version": 1})
    with pytest.raises(ValueError, match="checkpoint is in phase 'custom', which this run does not have"):
        fit([Recording("other", epochs=2)], resume=state)


class Labels(Callback):
    def __init__(self):
        self.seen = []

    def on_labels(self, phase, iteration, labels, label_change):
        self.seen.append((phase, iteration, len(labels), label_change))


def test_every_phase_that_labels_reports_it(blobs, tiny):
    X, _ = blobs
    log = Labels()
    DeepClusterer("dec", 4, random_state=0, scaling="standard", **{**tiny, "maxiter": 45, "tol": 0.0}).fit(
        X, callbacks=[log])
    assert [(p, i, n) for p, i, n, _ in log.seen] == [(INIT, 0, 600), (FINETUNE, 0, 600), (FINETUNE, 20, 600),
                                                       (FINETUNE, 40, 600)]
    assert log.seen[0][3] is None and all(0 <= c <= 1 for *_, c in log.seen[1:])
    log = Labels()
    DeepClusterer("kmeans", 4, random_state=0, n_init=2).fit(X, callbacks=[log])
    assert [(p, i, n, c) for p, i, n, c in log.seen] == [(INIT, 0, 600, None)]


def test_a_diverging_loss_stops_training_at_the_epoch_end_naming_phase_and_epoch(blobs, tiny):
    """Data on a scale whose squares overflow float32: the first epoch's reconstruction loss is
    infinite, and fit stops there instead of training on (and reporting) NaN."""
    X, _ = blobs
    rows = []

    class History(Callback):
        def on_epoch_end(self, phase, epoch, epochs, logs):
            rows.append((phase, epoch))

    with pytest.raises(LossNotFinite) as raised:
        DeepClusterer("dec", 4, random_state=0, scaling="none", **tiny).fit(X * np.float32(1e20), callbacks=[History()])
    assert (raised.value.phase, raised.value.epoch) == ("pretrain", 0)
    assert "pretrain epoch 0" in str(raised.value) and "learning rate" in str(raised.value)
    assert rows == []  # the non-finite epoch reaches no callback
