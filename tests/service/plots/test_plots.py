"""GET /v1/jobs/{id}/plots/{name}.png|.json on jobs trained by the real worker (run_job, in this process)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from deepclust.app.plots import service as plots
from deepclust.worker.run import run_job

from ..conftest import TINY_DEC, artifacts, blobs, npy_bytes, upload
from ..http.test_bad_input import assert_error

N, D, K = 90, 8, 3


def train(api, backend, filename: str, X: np.ndarray, k: int, y: np.ndarray | None = None) -> dict:
    extra = {"labels": ("y.txt", "\n".join(map(str, y)).encode())} if y is not None else {}
    dataset = upload(api, filename, npy_bytes(X), **extra)
    assert dataset.status_code == 201, dataset.text
    job = api.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], "method": "dec", "n_clusters": k,
                                     **TINY_DEC}).json()
    assert run_job(job["id"], backend.settings) == "succeeded"
    return api.get(f"/v1/jobs/{job['id']}").json()


@pytest.fixture(scope="module")
def features_job(backend):
    X, y = blobs(N, D, K)
    with backend.client() as api:
        yield api, train(api, backend, "blobs.npy", X, K, y), X, y


@pytest.fixture(scope="module")
def digits_job(backend):
    """8x8 digit images, without labels."""
    images = load_digits().images[:150].astype(np.float32)
    with backend.client() as api:
        yield api, train(api, backend, "digits.npy", images, 4), images


def png(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == "PNG" and image.width > 100 and image.height > 100
    return image


def labels_of(api, job) -> tuple[np.ndarray, np.ndarray]:
    items = api.get(f"/v1/jobs/{job['id']}/labels", params={"limit": 10_000}).json()["items"]
    return np.array([i["label"] for i in items]), np.array([i["confidence"] for i in items])


def test_every_plot_of_a_labelled_feature_job(features_job, backend):
    api, job, _, y = features_job
    url = f"/v1/jobs/{job['id']}/plots"
    for name in ("history", "sizes", "embedding", "confusion"):
        png(api.get(f"{url}/{name}.png"))
    # What was drawn for a finished job is kept in the artifact store, numbers beside the picture.
    cached = [key for key in artifacts(backend.data_dir) if key.startswith(f"plots/{job['id']}/")]
    assert sorted(cached) == sorted(f"plots/{job['id']}/{stem}.{ext}" for stem in
                                    ("history", "sizes", "embedding-pca", "confusion") for ext in ("json", "png"))
    again = api.get(f"{url}/embedding.png")
    assert again.content == api.get(f"{url}/embedding.png").content
    assert again.headers["cache-control"].startswith("private")


def test_numbers_behind_the_plots(features_job):
    api, job, X, y = features_job
    url = f"/v1/jobs/{job['id']}/plots"
    labels, _ = labels_of(api, job)
    metrics = api.get(f"/v1/jobs/{job['id']}/metrics").json()

    assert api.get(f"{url}/sizes.json").json() == {"cluster_sizes": metrics["cluster_sizes"]}
    assert api.get(f"{url}/history.json").json() == {"rows": api.get(f"/v1/jobs/{job['id']}/history").json()}

    confusion = api.get(f"{url}/confusion.json").json()
    assert confusion["classes"] == [0, 1, 2] and sorted(confusion["clusters"]) == [0, 1, 2]
    for i, cls in enumerate(confusion["classes"]):
        for j, cluster in enumerate(confusion["clusters"]):
            assert confusion["matrix"][i][j] == int(np.sum((y == cls) & (labels == cluster)))

    emb = api.get(f"{url}/embedding.json").json()
    assert emb["method"] == "pca" and emb["indices"] == list(range(N)) and emb["labels"] == labels.tolist()
    assert np.asarray(emb["points"]).shape == (N, 2) and np.asarray(emb["centroids"]).shape == (K, 2)
    # Blobs this far apart are clusters in the map too: each point is nearest its own cluster's mean.
    points = np.asarray(emb["points"])
    means = np.stack([points[labels == k].mean(0) for k in range(K)])
    assert (np.argmin(((points[:, None] - means) ** 2).sum(-1), 1) == labels).all()
    assert api.get(f"{url}/embedding.json").json() == emb  # PCA is deterministic (and cached)


def test_tsne_projection(features_job):
    api, job, _, _ = features_job
    url = f"/v1/jobs/{job['id']}/plots/embedding"
    png(api.get(f"{url}.png", params={"projection": "tsne"}))
    tsne = api.get(f"{url}.json", params={"projection": "tsne"}).json()
    assert tsne["method"] == "tsne" and len(tsne["points"]) == N and tsne["explained_variance"] is None
    assert_error(api.get(f"{url}.png", params={"projection": "umap"}), 400, "malformed_request")


def test_examples_of_an_image_job_pick_the_most_and_least_confident(digits_job):
    api, job, _ = digits_job
    url = f"/v1/jobs/{job['id']}/plots"
    png(api.get(f"{url}/examples.png"))
    numbers = api.get(f"{url}/examples.json").json()
    labels, confidence = labels_of(api, job)
    assert numbers["n_per_cluster"] == plots.EXAMPLES_PER_CLUSTER
    assert [c["cluster"] for c in numbers["clusters"]] == list(range(4))
    for c in numbers["clusters"]:
        members = np.flatnonzero(labels == c["cluster"])
        assert c["size"] == len(members)
        most = [e["confidence"] for e in c["most_confident"]]
        least = [e["confidence"] for e in c["least_confident"]]
        assert all(labels[e["index"]] == c["cluster"] for e in c["most_confident"] + c["least_confident"])
        assert most == sorted(confidence[members], reverse=True)[:len(most)]
        assert least == sorted(confidence[members])[:len(least)]
        assert len(most) == min(len(members), plots.EXAMPLES_PER_CLUSTER)
    png(api.get(f"{url}/embedding.png"))


def test_plots_that_do_not_apply_answer_409(features_job, digits_job):
    api, job, _, _ = features_job
    assert_error(api.get(f"/v1/jobs/{job['id']}/plots/examples.png"), 409, "not_images")
    assert_error(api.get(f"/v1/jobs/{job['id']}/plots/examples.json"), 409, "not_images")
    api, job, _ = digits_job
    response = api.get(f"/v1/jobs/{job['id']}/plots/confusion.png")
    assert_error(response, 409, "no_labels")
    assert "has no labels" in response.json()["error"]["message"]


def test_before_success_only_the_history_is_drawn(api):
    X, _ = blobs(30, 4, 2)
    dataset = upload(api, "few.npy", npy_bytes(X)).json()
    job = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "dec", "n_clusters": 2, **TINY_DEC}).json()
    url = f"/v1/jobs/{job['id']}/plots"
    image = png(api.get(f"{url}/history.png"))  # queued: "No epochs yet"
    assert image.size == (900, 280)
    assert api.get(f"{url}/history.png").headers["cache-control"] == "no-store"
    assert api.get(f"{url}/history.json").json() == {"rows": []}
    for name in ("embedding", "sizes", "examples", "confusion"):
        response = api.get(f"{url}/{name}.png")
        assert_error(response, 409, "job_not_succeeded")
        assert response.json()["error"]["details"] == {"status": "queued"}
    api.post(f"/v1/jobs/{job['id']}/cancel")
    assert_error(api.get(f"{url}/sizes.json"), 409, "job_not_succeeded")
    png(api.get(f"{url}/history.png"))


def test_unknown_plot_and_other_tenants(features_job, backend):
    api, job, _, _ = features_job
    response = api.get(f"/v1/jobs/{job['id']}/plots/violin.png")
    assert_error(response, 404, "plot_not_found")
    assert response.json()["error"]["details"]["plots"] == list(plots.PLOTS)
    with backend.client() as other:
        assert_error(other.get(f"/v1/jobs/{job['id']}/plots/history.png"), 404, "job_not_found")
        assert_error(other.get(f"/v1/jobs/{job['id']}/plots/sizes.json"), 404, "job_not_found")
    assert_error(api.get("/v1/jobs/job_nope/plots/history.png"), 404, "job_not_found")


def test_drawn_plots_outlive_the_model_and_go_with_the_job(api, backend):
    X, _ = blobs(60, 4, 2, seed=1)
    job = train(api, backend, "gone.npy", X, 2)
    url = f"/v1/jobs/{job['id']}/plots"
    drawn = api.get(f"{url}/embedding.png")
    png(drawn)
    assert api.delete(f"/v1/models/{job['model_id']}").status_code == 204
    assert api.get(f"{url}/embedding.png").content == drawn.content  # drawn once, kept
    png(api.get(f"{url}/sizes.png"))  # sizes need no model
    response = api.get(f"{url}/embedding.png", params={"projection": "tsne"})  # never drawn: needs the model
    assert_error(response, 409, "model_deleted")
    assert job["id"] in response.json()["error"]["message"]

    assert any(key.startswith(f"plots/{job['id']}/") for key in artifacts(backend.data_dir))
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not any(key.startswith(f"plots/{job['id']}/") for key in artifacts(backend.data_dir))
    assert_error(api.get(f"{url}/embedding.png"), 404, "job_not_found")


@pytest.mark.parametrize("suffix", ["png", "json"])
def test_simultaneous_requests_for_an_uncached_plot_compute_it_once(api, backend, monkeypatch, suffix):
    """36 simultaneous requests for one uncached t-SNE map used to compute it 36 times (16.7x one
    plot). The first computes it; the others wait for it and read what it cached."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    X, _ = blobs(60, 4, 2, seed=2)
    job = train(api, backend, f"once-{suffix}.npy", X, 2)
    computed, real = [], plots._embedding

    def embedding_counted(*args, **kwargs):
        computed.append(threading.get_ident())
        time.sleep(0.3)  # long enough that every request arrives while the first one computes
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, "_embedding", embedding_counted)
    url = f"/v1/jobs/{job['id']}/plots/embedding.{suffix}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: api.get(url, params={"projection": "tsne"}), range(8)))
    assert [a.status_code for a in answers] == [200] * 8, answers[0].text
    assert len({a.content for a in answers}) == 1  # every waiter got the one result
    assert len(computed) == 1
    assert plots._flights._locks == {}  # nothing kept once nobody waits
