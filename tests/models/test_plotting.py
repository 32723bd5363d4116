"""deepclust.models.plotting: every picture is a real PNG of the asked size, and the numbers behind it are right."""
import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from deepclust.models import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_image(data: bytes) -> Image.Image:
    assert data.startswith(PNG_MAGIC)
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: a truncated file fails here
    assert image.format == "PNG"
    return image


def assert_png(data: bytes, size: tuple[int, int]) -> Image.Image:
    image = png_image(data)
    assert image.size == size
    # Not a blank canvas: a drawn figure has many distinct colours.
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20
    return image


HISTORY = ([{"phase": "pretrain", "epoch": e, "loss": 1 / (e + 1), "reconstruction": 1 / (e + 1)} for e in range(12)]
           + [{"phase": "init", "epoch": 0, "loss": None}]
           + [{"phase": "finetune", "epoch": e, "loss": 0.5 - e / 100, "kl": 0.01 + e / 1000, "reconstruction": 0.4,
               "label_change": 0.2 / (e + 1), "acc": 0.5 + e / 100, "nmi": 0.4 + e / 200} for e in range(40)])


def test_history_png_has_a_panel_per_phase_and_every_term():
    fig = plotting.history_figure(HISTORY, size=(800, 600))
    panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in panels] == ["pretrain (12 epochs)", "init (1 epoch)",
                                                          "finetune (40 epochs)"]
    finetune_lines = {line.get_label() for ax in fig.axes if ax.bbox.bounds == panels[2].bbox.bounds
                      for line in ax.get_lines()}
    assert finetune_lines == {"loss", "kl", "reconstruction", "label_change", "acc", "nmi"}
    assert_png(plotting.to_png(fig), (800, 600))


def test_history_puts_view_agreement_on_the_evaluation_axis_and_does_not_draw_the_selected_epoch():
    rows = [{"phase": "finetune", "epoch": e, "loss": 1.0 - e / 10, "view_agreement": 0.8 + e / 100,
             "selected_epoch": min(e + 1, 3)} for e in range(6)]
    fig = plotting.history_figure(rows)
    loss_axis, evaluation_axis = fig.axes
    assert {line.get_label() for line in loss_axis.get_lines()} == {"loss"}
    assert {line.get_label() for line in evaluation_axis.get_lines()} == {"view_agreement"}


def test_history_default_size_grows_with_phases_and_empty_history_is_a_message():
    assert png_image(plotting.to_png(plotting.history_figure(HISTORY))).size == (900, 3 * 260 + 20)
    empty = plotting.history_figure([])
    assert [t.get_text() for t in empty.texts] == ["No epochs yet"]
    assert png_image(plotting.to_png(empty)).size == (900, 280)


def blob_embedding(n=600, k=4, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 8, size=(k, d))
    labels = np.arange(n) % k
    return centers[labels] + rng.normal(size=(n, d)), labels, centers


def test_pca_map_is_deterministic_and_projects_centroids_with_the_points():
    X, labels, centers = blob_embedding()
    a = plotting.project_embedding(X, labels, centers)
    b = plotting.project_embedding(X.copy(), labels, centers)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.centroid_coords, b.centroid_coords)
    assert a.method == "pca" and a.coords.shape == (600, 2) and a.n_clusters == 4
    # Each centroid lands at the mean of its cluster's projected points (PCA is affine).
    for k in range(4):
        np.testing.assert_allclose(a.centroid_coords[k], a.coords[labels == k].mean(0), atol=0.3)
    assert 0.5 < sum(a.explained_variance) <= 1.0
    assert plotting.to_png(plotting.embedding_figure(a)) == plotting.to_png(plotting.embedding_figure(b))
    assert_png(plotting.to_png(plotting.embedding_figure(a, size=(640, 480))), (640, 480))


def test_map_of_a_large_embedding_draws_a_seeded_sample():
    X, labels, centers = blob_embedding(n=3000)
    a = plotting.project_embedding(X, labels, centers, max_points=500, random_state=3)
    b = plotting.project_embedding(X, labels, centers, max_points=500, random_state=3)
    assert len(a.indices) == 500 and len(set(a.indices.tolist())) == 500
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.labels, labels[a.indices])
    other = plotting.project_embedding(X, labels, centers, max_points=500, random_state=4)
    assert not np.array_equal(a.indices, other.indices)


def test_tsne_map_keeps_clusters_apart_on_at_most_10k_points():
    X, labels, centers = blob_embedding(n=200)
    # One OpenMP thread: on a loaded shared CI machine more threads spin and are many times slower.
    with threadpool_limits(1):
        m = plotting.project_embedding(X, labels, centers, method="tsne", max_points=50_000, random_state=0)
    assert m.method == "tsne" and m.coords.shape == (200, 2) and m.centroid_coords.shape == (4, 2)
    # Well separated blobs stay separated: every point is nearer its own cluster's mean.
    means = np.stack([m.coords[labels == k].mean(0) for k in range(4)])
    nearest = np.argmin(((m.coords[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95
    assert plotting.sample_indices(25_000, plotting.TSNE_MAX_POINTS).size == 10_000
    assert_png(plotting.to_png(plotting.embedding_figure(m)), (720, 600))


def test_map_of_a_one_dimensional_embedding_and_bad_input():
    m = plotting.project_embedding(np.arange(10.0)[:, None], np.arange(10) % 2, [[1.0], [8.0]])
    np.testing.assert_array_equal(m.coords[:, 0], np.arange(10.0))
    np.testing.assert_array_equal(m.centroid_coords, [[1.0, 0.0], [8.0, 0.0]])
    with pytest.raises(ValueError, match="labels"):
        plotting.project_embedding(np.zeros((5, 2)), [0, 1])
    with pytest.raises(ValueError, match="'pca' or 'tsne'"):
        plotting.project_embedding(np.zeros((5, 2)), [0, 1, 0, 1, 0], method="umap")


def test_sizes_png():
    fig = plotting.sizes_figure([5, 0, 12])
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == [5, 0, 12]
    assert_png(plotting.to_png(fig), (500, 400))
    assert png_image(plotting.to_png(plotting.sizes_figure(list(range(30))))).size == (32 * 30 + 160, 400)


def test_select_examples_picks_most_and_least_confident_of_each_cluster():
    labels = np.array([0, 1, 0, 0, 1, 0, 1, 0, 2])
    confidence = np.array([0.9, 0.5, 0.3, 0.95, 0.8, 0.6, 0.7, 0.3, 1.0])
    chosen = plotting.select_examples(labels, confidence, n_per_cluster=2, n_clusters=4)
    assert [(c.cluster, c.size) for c in chosen] == [(0, 5), (1, 3), (2, 1), (3, 0)]
    assert chosen[0].most_confident == [3, 0] and chosen[0].least_confident == [2, 7]  # tie: lower index first
    assert chosen[1].most_confident == [4, 6] and chosen[1].least_confident == [1, 6]
    assert chosen[2].most_confident == [8] and chosen[2].least_confident == [8]
    assert chosen[3].most_confident == [] and chosen[3].least_confident == []


def test_examples_grid_shows_the_chosen_images_in_their_cells():
    # Every image is one flat grey level equal to its index, so the mosaic tells which one sits where.
    n, k, per = 40, 3, 4
    images = np.repeat(np.arange(n, dtype=np.float32)[:, None, None, None], 8 * 8, axis=1).reshape(n, 1, 8, 8)
    labels = np.arange(n) % k
    confidence = np.random.default_rng(0).random(n)
    fig = plotting.examples_figure(images, labels, confidence, n_per_cluster=per, size=(600, 300))
    mosaic = fig.axes[0].get_images()[0].get_array()
    chosen = plotting.select_examples(labels, confidence, per)
    cell = 8 + 1  # image + padding
    shown = {}
    for row, c in enumerate(chosen):
        for col, index in enumerate(c.most_confident + [None] + c.least_confident):
            if index is not None:
                shown.setdefault(index, set()).add(float(mosaic[row * cell + 4, col * cell + 4]))
    # Grey levels are scaled together, so they keep their order: each cell shows the chosen index.
    assert all(len(levels) == 1 for levels in shown.values())
    level = {index: levels.pop() for index, levels in shown.items()}
    assert len(set(level.values())) == len(level)
    assert sorted(level, key=level.get) == sorted(level)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"{c.cluster} ({c.size})" for c in chosen]
    assert_png(plotting.to_png(fig), (600, 300))


def test_examples_grid_of_digits_and_rgb_images():
    digits = load_digits()
    images = digits.images[:300, None]
    confidence = np.random.default_rng(1).random(300)
    data = plotting.to_png(plotting.examples_figure(images, digits.target[:300], confidence))
    assert png_image(data).size == (min(1600, 17 * 9 * 5 + 200), min(4000, 10 * 9 * 5 + 90))
    rgb = np.random.default_rng(2).random((30, 3, 6, 6))
    fig = plotting.examples_figure(rgb, np.arange(30) % 2, np.linspace(0, 1, 30), n_per_cluster=3)
    assert fig.axes[0].get_images()[0].get_array().shape[-1] == 3
    with pytest.raises(ValueError, match="images must be"):
        plotting.examples_figure(np.zeros((4, 10)), [0, 1, 0, 1], np.ones(4))


def test_confusion_counts_are_right_and_clusters_follow_their_matched_class():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 5])
    y_pred = np.array([2, 2, 1, 0, 0, 1, 1, 1, 3, 3])
    conf = plotting.confusion_counts(y_true, y_pred, n_clusters=5)
    assert conf.classes == [0, 1, 2, 5]
    assert conf.clusters == [2, 0, 1, 3, 4]
    for i, cls in enumerate(conf.classes):
        for j, cluster in enumerate(conf.clusters):
            assert conf.matrix[i, j] == np.sum((y_true == cls) & (y_pred == cluster))
    assert conf.matrix.sum() == len(y_true)
    assert np.trace(conf.matrix) == 2 + 2 + 3 + 1
    fig = plotting.confusion_figure(conf, size=(500, 400))
    assert sorted(int(t.get_text()) for t in fig.axes[0].texts) == sorted(conf.matrix[conf.matrix > 0].tolist())
    assert_png(plotting.to_png(fig), (500, 400))
    assert conf.to_dict()["matrix"][0] == conf.matrix[0].tolist()
