"""The dashboard's pages beyond upload and one job (issue #25): sweeps (form, page, list), the jobs
list grouped by sweep with metric columns, sorting and filters, the complete job page (settings,
model downloads, log, t-SNE, predict with a label column and its CSV) and the dataset page.

Real Chromium against the shared `deepclust serve` (see test_browser.py); tiny data, few epochs.
Each test filters by its own dataset: the server is shared with the other tests of the session.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import numpy as np

from ..conftest import blobs, npz_bytes
from ..processes import wait_for_job
from .conftest import WAIT_MS, api, digit_images, drop_file, screenshot, tenant_key, use_key

N, D, K = 160, 6, 4


def labelled_blobs(seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    return blobs(N, D, K, seed=seed)


def upload(client, name: str, X: np.ndarray, y: np.ndarray | None = None) -> dict:
    arrays = {"x": X} if y is None else {"x": X, "y": y}
    answer = client.post("/v1/datasets", files={"file": (name, npz_bytes(**arrays))})
    assert answer.status_code == 201, answer.text
    return answer.json()


def finished(client, job_id: str) -> dict:
    job = wait_for_job(client, job_id, {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job
    return job


def csv_text(X: np.ndarray, y: np.ndarray, label: str = "label") -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"f{i}" for i in range(X.shape[1])] + [label])
    for row, target in zip(X, y):
        writer.writerow([f"{v:.6g}" for v in row] + [int(target)])
    return out.getvalue()


def top_rows(page) -> list[str]:
    """Ids of the jobs list's top-level job rows, in the order shown."""
    return page.eval_on_selector_all("#jobs-table tbody tr[data-id]:not(.child)", "rs => rs.map(r => r.dataset.id)")


def test_start_a_sweep_and_read_its_page(page, server):
    X, y = labelled_blobs(seed=12)
    with api(server, 0) as client:
        dataset = upload(client, "sweep-blobs.npz", X, y)
    use_key(page, server[1][0])
    page.goto(f"/sweeps/new?dataset_id={dataset['id']}")
    page.wait_for_selector("#sweep-method option[value=kmeans]", state="attached")
    assert page.input_value("#sweep-dataset") == dataset["id"]
    page.select_option("#sweep-method", "kmeans")
    page.fill("#sweep-k-min", "3")
    page.fill("#sweep-k-max", "5")
    page.fill("#sweep-seeds", "0, 1")
    page.select_option("#sweep-selection", "silhouette")
    # The method's params are fields from its schema, the paper's defaults in, ranges checked as typed.
    page.wait_for_selector("#sweep-param-n_init")
    assert page.input_value("#sweep-param-n_init") == "20"
    assert page.is_hidden("#sweep-pretrain-fields")  # k-means has no pretraining
    page.fill("#sweep-param-n_init", "0")
    assert page.text_content("#sweep-param-n_init + small") == "Must be at least 1."
    page.fill("#sweep-param-n_init", "2")
    page.fill("#sweep-name", "blobs K 3..5")
    assert page.text_content("#sweep-size") == "6 jobs (3 K's × 2 seeds)."
    # A grid over the server's job cap: the API's refusal, in its words, and no sweep.
    many = ", ".join(map(str, range(100)))
    page.fill("#sweep-seeds", many)
    assert page.text_content("#sweep-size") == "300 jobs (3 K's × 100 seeds)."
    with api(server, 0) as client:
        sweeps_before = client.get("/v1/sweeps").json()["total"]
        refused = client.post("/v1/sweeps", json={
            "dataset_id": dataset["id"], "method": "kmeans", "params": {"n_init": 2},
            "n_clusters": {"min": 3, "max": 5, "step": 1}, "seeds": list(range(100)), "selection": "silhouette",
            "device": "auto", "name": "blobs K 3..5"})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "grid_too_large"
    page.click("#sweep-submit")
    page.locator("#sweep-error").wait_for()
    assert page.text_content("#sweep-error") == refused.json()["error"]["message"]
    with api(server, 0) as client:
        assert client.get("/v1/sweeps").json()["total"] == sweeps_before
    page.fill("#sweep-seeds", "0, 1")
    assert page.is_hidden("#sweep-error")  # editing the form clears the refusal of what was sent
    screenshot(page, "new_sweep")
    page.click("#sweep-submit")
    page.wait_for_url(re.compile(r"/sweeps/swp_\w+$"))
    sweep_id = page.url.rsplit("/", 1)[1]

    page.wait_for_function("document.querySelector('#sweep-status').textContent === 'succeeded'", timeout=WAIT_MS)
    page.locator("#sweep-result").wait_for()
    with api(server, 0) as client:
        sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["n_clusters"] == [3, 4, 5] and sweep["seeds"] == [0, 1] and sweep["selection"] == "silhouette"
    assert sweep["params"]["n_init"] == 2 and sweep["name"] == "blobs K 3..5"
    # The table: one row per run, the API's numbers, the recommended run marked.
    rows = page.eval_on_selector_all("#sweep-table tbody tr", "rs => rs.map(r => r.dataset.jobId)")
    assert sorted(rows) == sorted(r["job_id"] for r in sweep["result"]["table"]) and len(rows) == 6
    headers = page.eval_on_selector_all("#sweep-table thead th", "ths => ths.map(t => t.dataset.column)")
    assert {"n_clusters", "seed", "job_id", "silhouette", "stability", "acc", "nmi", "selected"} <= set(headers)
    recommended = sweep["result"]["recommended"]
    assert recommended["n_clusters"] == K  # well-separated blobs: silhouette finds them
    assert page.get_attribute(f"#sweep-table tr[data-job-id='{recommended['job_id']}']", "class") == "recommended"
    page.wait_for_function("(i => i && i.complete && i.naturalWidth > 0)(document.querySelector('#sweep-plot'))",
                           timeout=WAIT_MS)
    assert page.eval_on_selector("#sweep-plot", "i => i.naturalWidth") >= 400
    screenshot(page, "sweep")

    # The recommended run's link opens its job.
    page.click("#sweep-recommended-job")
    page.wait_for_url(re.compile(rf"/jobs/{recommended['job_id']}$"))
    page.wait_for_function("document.querySelector('#job-status').textContent === 'succeeded'")
    assert page.text_content("#settings-table tr[data-key=K] td") == str(K)
    # ... and the job leads back to its sweep.
    assert page.text_content("#settings-table tr[data-key=sweep] td") == sweep_id
    page.click("#job-sweep-link")
    page.wait_for_url(re.compile(rf"/sweeps/{sweep_id}$"))

    # The sweeps list shows it with its recommendation, reached from the nav.
    page.click("nav a:has-text('Sweeps')")
    row = page.locator(f"#sweeps-table tr[data-id='{sweep_id}']")
    row.wait_for()
    assert "K = 4" in row.text_content() and "6 of 6 jobs done" in row.text_content()
    assert row.locator(".badge").text_content() == "succeeded"


def test_the_jobs_list_groups_sorts_and_filters(page, server):
    X, y = labelled_blobs(seed=13)
    with api(server, 0) as client:
        dataset = upload(client, "list-blobs.npz", X, y)
        singles = [client.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": k,
                                                 "params": {"n_init": 2}, "name": f"kmeans K={k}"}).json()
                   for k in (2, 4, 3)]
        dec = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "dec", "n_clusters": K,
                                            "params": {"hidden_dims": [16], "embedding_dim": 3, "maxiter": 40},
                                            "pretrain": {"epochs": 2, "batch_size": 64}}).json()
        sweep = client.post("/v1/sweeps", json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": [3, 4],
                                                "seeds": [0], "params": {"n_init": 2}}).json()
        singles = [finished(client, j["id"]) for j in singles]
        finished(client, dec["id"])
        for job_id in sweep["job_ids"]:
            finished(client, job_id)
        listed = {j["id"]: j for j in client.get("/v1/jobs", params={"dataset_id": dataset["id"],
                                                                      "standalone": "true"}).json()["items"]}
    use_key(page, server[1][0])
    page.goto(f"/jobs?dataset_id={dataset['id']}")
    page.wait_for_selector(f"#jobs-table tr[data-sweep-id='{sweep['id']}']")
    # Grouped: the standalone jobs and one row for the sweep; its jobs are not top-level rows.
    assert sorted(top_rows(page)) == sorted([*(j["id"] for j in singles), dec["id"]])
    assert page.locator("#jobs-table tr.child").count() == 0
    assert page.text_content("#jobs-total") == "4 jobs and 1 sweep"
    # Metric columns show the list's summary.
    acc = {job_id: job["metrics"]["acc"] for job_id, job in listed.items()}
    shown = page.text_content(f"#jobs-table tr[data-id='{singles[0]['id']}'] td.metric-acc")
    assert float(shown) == round(acc[singles[0]["id"]], 3) and acc[singles[0]["id"]] == 0.5  # K=2 on 4 blobs
    assert page.text_content(f"#jobs-table tr[data-id='{singles[1]['id']}'] td.metric-nonempty") == "4"

    # Expanding the sweep shows its jobs under it.
    page.click(f"#jobs-table tr[data-sweep-id='{sweep['id']}'] button.toggle")
    page.wait_for_selector(f"#jobs-table tr.child[data-sweep='{sweep['id']}']")
    children = page.eval_on_selector_all(f"#jobs-table tr.child[data-sweep='{sweep['id']}']", "rs => rs.map(r => r.dataset.id)")
    assert sorted(children) == sorted(sweep["job_ids"])
    screenshot(page, "jobs")

    # Sorting: a click on ACC puts the best first, a second click the worst first.
    page.click("#jobs-table th[data-sort=acc]")
    assert [acc[i] for i in top_rows(page)] == sorted(acc.values(), reverse=True)
    assert len(set(acc.values())) >= 3  # K=2, 3 and 4 on four blobs: an order to get wrong
    assert page.get_attribute("#jobs-table th[data-sort=acc]", "aria-sort") == "descending"
    page.click("#jobs-table th[data-sort=acc]")
    assert [acc[i] for i in top_rows(page)] == sorted(acc.values())
    page.click("#jobs-table th[data-sort=k]")
    assert [listed[i]["n_clusters"] for i in top_rows(page)] == sorted((j["n_clusters"] for j in listed.values()),
                                                                         reverse=True)

    # Filters: by method (the sweep is kmeans too), by sweep (its jobs only, flat), by status.
    page.select_option("#jobs-method", "dec")
    page.wait_for_function("document.querySelector('#jobs-total').textContent === '1 job'")
    assert top_rows(page) == [dec["id"]] and page.locator("#jobs-table tr.sweep").count() == 0
    assert "method=dec" in page.url
    page.select_option("#jobs-method", "")
    page.select_option("#jobs-sweep", sweep["id"])
    page.wait_for_function("document.querySelector('#jobs-total').textContent === '2 jobs'")
    assert sorted(top_rows(page)) == sorted(sweep["job_ids"])
    page.select_option("#jobs-sweep", "")
    page.select_option("#jobs-status", "failed")
    page.wait_for_selector("#jobs-empty:not([hidden])")
    assert page.locator("#jobs-table tbody tr").count() == 0

    # Two filter changes in a row whose answers arrive out of order: the newer filter's rows stay.
    page.select_option("#jobs-status", "")
    page.wait_for_function("document.querySelector('#jobs-total').textContent === '4 jobs and 1 sweep'")
    held = []
    page.route("**/v1/jobs?*method=dec*", lambda route: held.append(route))
    page.select_option("#jobs-method", "dec")  # its list answer is held
    page.select_option("#jobs-method", "")
    page.select_option("#jobs-sweep", sweep["id"])
    page.wait_for_function("document.querySelector('#jobs-total').textContent === '2 jobs'")
    assert len(held) == 1
    with page.expect_response(lambda response: "method=dec" in response.url):
        held[0].continue_()
    page.wait_for_timeout(300)  # the old answer, now in, must not be rendered over the new one
    assert page.text_content("#jobs-total") == "2 jobs"
    assert sorted(top_rows(page)) == sorted(sweep["job_ids"])


def test_the_complete_job_page(page, server, tmp_path):
    X, y = labelled_blobs(seed=14)
    with api(server, 0) as client:
        dataset = client.post("/v1/datasets", data={"label_column": "cls"},
                              files={"file": ("blobs.csv", csv_text(X, y, "cls").encode())}).json()
        assert dataset["has_labels"] and dataset["n_classes"] == K, dataset
        job = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "idec", "n_clusters": K,
                                            "name": "idec on blobs",
                                            "params": {"hidden_dims": [16], "embedding_dim": 3, "maxiter": 60},
                                            "pretrain": {"epochs": 3, "batch_size": 32}}).json()
        job = finished(client, job["id"])
    use_key(page, server[1][0])
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_function("document.querySelector('#job-status').textContent === 'succeeded'")
    assert page.title() == f"Job {job['id']} · deepclust"  # once, the sections sat inside the title block
    assert page.locator("#batch").count() == 1 and page.locator("#logs").count() == 1

    # Settings: the params and pretraining as the API recorded them, defaults filled in.
    page.wait_for_selector("#params-table tr[data-key=hidden_dims]")
    assert page.text_content("#params-table tr[data-key=hidden_dims] td") == "[16]"
    assert page.text_content("#params-table tr[data-key=maxiter] td") == "60"
    assert page.locator("#params-table tbody tr").count() == len(job["params"])
    assert page.text_content("#pretrain-table tr[data-key=epochs] td") == "3"
    assert page.text_content("#pretrain-table tr[data-key=batch_size] td") == "32"
    assert page.text_content("#settings-table tr[data-key=guard] td") == job["guard"]

    # The model and its downloads: each link answers 200 with its type; the browser saves the zip.
    page.locator("#results").wait_for()
    assert page.text_content("#model-id") == job["model_id"]
    links = {name: page.get_attribute(f"#download-{name}", "href") for name in ("zip", "onnx")}
    assert links == {"zip": f"/v1/models/{job['model_id']}/download",
                     "onnx": f"/v1/models/{job['model_id']}/download?format=onnx"}
    with api(server, 0) as client:
        for name, media_type in {"zip": "application/zip", "onnx": "application/octet-stream"}.items():
            answer = client.get(links[name])
            assert answer.status_code == 200 and answer.headers["content-type"] == media_type
            assert answer.content[:2] == b"PK" if name == "zip" else len(answer.content) > 1000
    with page.expect_download() as saved:
        page.click("#download-zip")
    assert saved.value.suggested_filename == f"{job['model_id']}.zip"
    assert Path(saved.value.path()).read_bytes()[:2] == b"PK"

    # The log: what the worker wrote for this job.
    page.wait_for_function("document.querySelector('#job-logs').textContent.includes('pretrain')")
    assert job["id"] in page.text_content("#job-logs")

    # t-SNE instead of PCA: another picture, drawn on the server.
    img = "#results figure[data-plot=embedding] img"
    page.wait_for_function(f"(i => i.complete && i.naturalWidth > 0)(document.querySelector('{img}'))", timeout=WAIT_MS)
    pca_src = page.get_attribute(img, "src")
    page.check("#embedding-tsne")
    page.wait_for_function(f"(i => i.dataset.projection === 'tsne' && i.src !== {pca_src!r} && i.complete "
                           f"&& i.naturalWidth > 0)(document.querySelector('{img}'))", timeout=WAIT_MS)
    assert page.get_attribute(img, "src").startswith("blob:")

    # Predict a CSV that carries a label column, dropped by name.
    rows = X[:25]
    page.fill("#predict-label-column", "cls")
    drop_file(page, "#predict-dropzone", "new.csv", csv_text(rows, y[:25], "cls").encode())
    page.locator("#predict-result").wait_for()
    with api(server, 0) as client:
        expected = client.post(f"/v1/models/{job['model_id']}/predict",
                               json={"instances": rows.tolist()}).json()
    shown = page.eval_on_selector_all("#predict-table tbody tr td:nth-child(2)", "tds => tds.map(t => +t.textContent)")
    assert shown == expected["labels"][:20]
    assert page.text_content("#predict-summary").startswith("25 rows of new.csv")
    with page.expect_download() as saved:
        page.click("#predict-download")
    assert saved.value.suggested_filename == "new-predictions.csv"
    table = list(csv.DictReader(io.StringIO(Path(saved.value.path()).read_text())))
    assert [int(r["label"]) for r in table] == expected["labels"] and [int(r["row"]) for r in table] == list(range(25))
    probabilities = [p[label] for p, label in zip(expected["probabilities"], expected["labels"])]
    assert np.allclose([float(r["probability"]) for r in table], probabilities, atol=1e-4)
    # The same file without naming the column is one column too wide: refused in the API's words.
    page.fill("#predict-label-column", "")
    drop_file(page, "#predict-dropzone", "new.csv", csv_text(rows, y[:25], "cls").encode())
    page.locator("#predict-error").wait_for()
    assert str(D) in page.text_content("#predict-error")

    # Predict a stored dataset (batch, in the workers): the job's own is offered first; its labels CSV
    # is the API's.
    assert page.input_value("#batch-dataset") == dataset["id"]
    page.click("#batch-start")
    row = page.locator("#batch-table tbody tr[data-status=succeeded]")
    row.wait_for(timeout=WAIT_MS)
    prediction_id = row.get_attribute("data-id")
    with page.expect_download() as saved:
        row.locator("a", has_text="Labels (CSV)").click()
    with api(server, 0) as client:
        prediction = client.get(f"/v1/predictions/{prediction_id}").json()
        assert prediction["model_id"] == job["model_id"] and prediction["dataset_id"] == dataset["id"]
        expected_csv = client.get(f"/v1/predictions/{prediction_id}/labels", params={"format": "csv"}).text
    content = Path(saved.value.path()).read_text()
    assert content == expected_csv and len(content.strip().splitlines()) == N + 1
    assert content.startswith("index,label,confidence")

    # The job page links its dataset's page, which lists the job.
    page.click("#job-dataset-link")
    page.wait_for_url(re.compile(rf"/datasets/{dataset['id']}$"))
    page.wait_for_selector(f"#dataset-jobs-table tr[data-id='{job['id']}']")


def test_the_dataset_page_of_features(page, server):
    X, y = labelled_blobs(seed=15)
    with api(server, 0) as client:
        dataset = upload(client, "features.npz", X, y)
    use_key(page, server[1][0])
    page.goto("/")
    page.click(f"#datasets-table tr[data-id='{dataset['id']}'] a[href='/datasets/{dataset['id']}']")
    page.wait_for_url(re.compile(rf"/datasets/{dataset['id']}$"))
    page.wait_for_selector("#dataset-features:not([hidden])")
    assert page.text_content("#dataset-facts tr[data-key=samples] td") == str(N)
    cells = page.eval_on_selector_all("#features-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert len(cells) == D
    for i, (column, lo, hi, mean, std) in enumerate(cells):
        assert int(column) == i
        assert np.allclose([float(lo), float(hi), float(mean), float(std)],
                           [X[:, i].min(), X[:, i].max(), X[:, i].mean(), X[:, i].std()], atol=2e-3)
    counts = page.eval_on_selector_all("#class-bars .class-count", "s => s.map(e => parseInt(e.textContent))")
    assert counts == np.bincount(y).tolist()
    assert page.is_hidden("#dataset-samples")
    assert page.locator("#dataset-jobs-empty").is_visible()


def test_the_dataset_page_of_images(page, server):
    X, y = digit_images(120)
    with api(server, 0) as client:
        dataset = upload(client, "digits-page.npz", X, y)
        # Its content is only for its own tenant, and there are no sample images of feature vectors.
        with api(server, 1) as bob:
            for path in ("overview", "samples.png"):
                answer = bob.get(f"/dashboard/datasets/{dataset['id']}/{path}")
                assert answer.status_code == 404 and answer.json()["error"]["code"] == "dataset_not_found"
        # Without a key: 401 in the API's error shape, as for /v1.
        anonymous = httpx.get(f"{server[0]}/dashboard/datasets/{dataset['id']}/overview")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
        features = upload(client, "flat.npz", labelled_blobs()[0])
        answer = client.get(f"/dashboard/datasets/{features['id']}/samples.png")
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_images"
        assert client.get(f"/dashboard/datasets/{dataset['id']}/samples.png").headers["content-type"] == "image/png"
    use_key(page, server[1][0])
    page.goto(f"/datasets/{dataset['id']}")
    page.wait_for_function("(i => i.complete && i.naturalWidth > 0)(document.querySelector('#samples-image'))",
                           timeout=WAIT_MS)
    # One row per class: ten rows of 8x8 digits scaled up.
    height = page.eval_on_selector("#samples-image", "i => i.naturalHeight")
    assert height >= 10 * 8 * 7
    assert page.is_hidden("#dataset-features")
    counts = page.eval_on_selector_all("#class-bars .class-count", "s => s.map(e => parseInt(e.textContent))")
    assert counts == np.bincount(y).tolist()


def test_long_lists_show_a_page_at_a_time(page, served):
    """Datasets and jobs beyond the first 100 come a page per "Show more", until all are shown."""
    key = tenant_key(served, "pager")  # a tenant of its own: the other tests' rows stay out
    X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        datasets = [upload(client, f"d{i:03d}.npz", X)["id"] for i in range(105)]
        for _ in range(102):
            job = client.post("/v1/jobs", json={"dataset_id": datasets[0], "method": "kmeans", "n_clusters": 2})
            assert job.status_code == 202, job.text
            client.post(f"/v1/jobs/{job.json()['id']}/cancel")  # the queue stays free for the other tests
    use_key(page, key)

    page.goto("/")
    more = page.locator("#datasets-more")
    more.wait_for()
    assert more.text_content() == "Show 5 more (100 of 105 shown)"
    rows = page.locator("#datasets-table tbody tr")
    assert rows.count() == 100
    assert rows.first.get_attribute("data-id") == datasets[-1]  # newest first
    # A delete while "Show more" still loads: the older answer (read from the server before the
    # delete, held until the list after the delete is shown) must not bring the deleted one back.
    held = []

    def hold_the_first(route):
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route("**/v1/datasets?limit=200*", hold_the_first)
    more.click()
    for _ in range(500):  # the handler runs while the page is waited on
        if held:
            break
        page.wait_for_timeout(20)
    assert held, "the Show more request never came"
    page.click(f"#datasets-table tr[data-id='{datasets[-2]}'] button.danger")
    page.wait_for_function("document.querySelectorAll('#datasets-table tbody tr').length === 104")
    route, answer = held[0]
    with page.expect_response(lambda response: "limit=200" in response.url):
        route.fulfill(response=answer)
    page.wait_for_timeout(300)  # the old answer, now in, must not be rendered over the new one
    shown = page.eval_on_selector_all("#datasets-table tbody tr", "rs => rs.map(r => r.dataset.id)")
    assert len(shown) == 104 and datasets[-2] not in shown
    page.unroute("**/v1/datasets?limit=200*")
    assert more.is_hidden()
    assert rows.last.get_attribute("data-id") == datasets[0]

    page.goto("/jobs")
    more = page.locator("#jobs-more")
    more.wait_for()
    assert more.text_content() == "Show 2 more (100 of 102 shown)"
    assert len(top_rows(page)) == 100
    more.click()
    page.wait_for_function("document.querySelectorAll('#jobs-table tbody tr[data-id]').length === 102")
    assert more.is_hidden()
    screenshot(page, "jobs-paged")
