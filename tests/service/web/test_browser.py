"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `deepclust serve`
(auth on, the local runner). Upload, a refusal, the job form, a job watched to the end, its plots,
predict by dropping a file, cancel, and tenants that see only their own things.

Set DEEPCLUST_SCREENSHOTS=docs/screenshots to save a picture of each page on the way.
"""
from __future__ import annotations

import re

import numpy as np

from ..conftest import npy_bytes, npz_bytes
from ..processes import wait_for_job
from .conftest import K, SCREENSHOTS, WAIT_MS, api, digit_images, drop_file, matrix, screenshot, use_key


def test_serve_prints_the_dashboard_address(served, page):
    assert f"deepclust dashboard at {served.url}/  (open it in a browser)" in served.server.output()
    page.goto(served.url + "/")
    assert page.title() == "Datasets · deepclust"


def test_without_a_key_the_page_says_so(page):
    page.goto("/")
    banner = page.locator("#auth-banner")
    banner.wait_for()
    assert "Send 'Authorization: Bearer <key>'" in banner.text_content()


def test_a_refused_upload_shows_the_api_message(page, server):
    X, _ = matrix()
    bad = X.copy()
    bad[7, 3] = np.nan
    with api(server, 0) as client:
        expected = client.post("/v1/datasets", files={"file": ("bad.npy", npy_bytes(bad))}).json()["error"]["message"]
    use_key(page, server[1][0])
    drop_file(page, "#dropzone", "bad.npy", npy_bytes(bad))
    error = page.locator("#upload-error")
    error.wait_for()
    assert error.text_content() == expected  # verbatim, as the API words it
    assert "Row 7, column 3" in expected


# The test's DEC job: a few epochs on 300 digits. The README's pictures come from a run worth showing
# (DEEPCLUST_SCREENSHOTS set): all 1797 digits with the README's settings, a few minutes on a CPU.
QUICK_DEC = {"param-embedding_dim": "4", "param-lr": "0.01", "param-hidden_dims": "32, 32", "pretrain-epochs": "3",
             "pretrain-batch_size": "64", "param-maxiter": "120", "param-update_interval": "20",
             "param-batch_size": "64", "param-kmeans_n_init": "3"}
SHOWN_DEC = {"param-embedding_dim": "10", "param-lr": "0.01", "param-hidden_dims": "128, 128", "pretrain-epochs": "50",
             "pretrain-batch_size": "128", "param-maxiter": "1500"}


def test_cluster_images_from_the_browser(page, server):
    X, y = digit_images(1797 if SCREENSHOTS else 300)
    settings = SHOWN_DEC if SCREENSHOTS else QUICK_DEC
    use_key(page, server[1][0])
    drop_file(page, "#dropzone", "digits.npz", npz_bytes(x=X, y=y))
    page.locator("#upload-status a", has_text="Cluster it").wait_for()
    assert f"{len(X)} samples of shape [1,8,8], 10 classes" in page.text_content("#upload-status")
    page.locator("#datasets-table tbody tr", has_text="digits.npz").wait_for()  # the list refreshes after
    screenshot(page, "datasets")

    # The form is the method's schema with its defaults; K defaults to the number of classes.
    page.click("#upload-status a")
    page.wait_for_selector("#param-kmeans_n_init")
    with api(server, 0) as client:
        dec = next(m for m in client.get("/v1/methods").json()["items"] if m["name"] == "dec")
    assert page.input_value("#job-method") == "dec"
    assert page.input_value("#job-n-clusters") == "10"
    assert page.input_value("#param-kmeans_n_init") == str(dec["defaults"]["kmeans_n_init"])
    assert page.input_value("#param-hidden_dims") == ", ".join(map(str, dec["defaults"]["hidden_dims"]))
    assert page.input_value("#pretrain-epochs") == str(dec["pretrain_defaults"]["epochs"])

    # Ranges are enforced before anything is sent.
    with api(server, 0) as client:
        jobs_before = client.get("/v1/jobs").json()["total"]
    page.fill("#param-embedding_dim", "0")
    page.fill("#param-lr", "0")
    page.click("#job-submit")
    assert page.text_content("#param-embedding_dim + small") == "Must be at least 1."
    assert page.text_content("#param-lr + small") == "Must be more than 0."
    assert "/jobs/new" in page.url
    with api(server, 0) as client:
        assert client.get("/v1/jobs").json()["total"] == jobs_before

    for field, value in settings.items():
        page.fill(f"#{field}", value)
    page.fill("#job-name", "digits in the browser")
    screenshot(page, "new_job")
    page.click("#job-submit")
    page.wait_for_url(re.compile(r"/jobs/job_\w+$"))
    job_id = page.url.rsplit("/", 1)[1]

    # Live: the badge follows the event stream to the end, then the results appear.
    page.wait_for_function("document.querySelector('#job-status').textContent === 'succeeded'", timeout=WAIT_MS)
    page.locator("#results").wait_for()
    plots = "#results figure:not([hidden]) img"
    page.wait_for_function(f"[...document.querySelectorAll('{plots}')].every(i => i.complete && i.naturalWidth > 0)",
                           timeout=WAIT_MS)
    shown = page.eval_on_selector_all("#results figure:not([hidden])", "els => els.map(e => e.dataset.plot)")
    assert sorted(shown) == ["confusion", "embedding", "examples", "history", "sizes"]
    widths = page.eval_on_selector_all(plots, "imgs => imgs.map(i => i.naturalWidth)")
    assert all(w >= 400 for w in widths), widths
    assert page.locator("#metrics-table th", has_text="ACC").count() == 1
    with api(server, 0) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["name"] == "digits in the browser"
        assert job["params"]["hidden_dims"] == [int(v) for v in settings["param-hidden_dims"].split(",")]
        assert job["pretrain"]["epochs"] == int(settings["pretrain-epochs"])
        sizes = client.get(f"/v1/jobs/{job_id}/metrics").json()["cluster_sizes"]
    assert page.text_content("#metrics-table tr:first-child td") == ", ".join(map(str, sizes))
    assert page.get_attribute("#job-progress-bar", "style") == "width: 100%;"

    # Predict by dropping a file: the table shows what the API answers.
    rows = X[:30]
    drop_file(page, "#predict-dropzone", "rows.npy", npy_bytes(rows))
    page.locator("#predict-result").wait_for()
    with api(server, 0) as client:
        expected = client.post(f"/v1/models/{job['model_id']}/predict", json={"instances": rows.reshape(len(rows), -1).tolist()}).json()
    summary = page.text_content("#predict-summary")
    assert summary.startswith("30 rows of rows.npy") and summary.endswith("The first 20 rows:")
    counts = np.bincount(expected["labels"], minlength=10)
    assert all(f"cluster {k}: {n}" in summary for k, n in enumerate(counts) if n)
    shown_labels = page.eval_on_selector_all("#predict-table tbody tr td:nth-child(2)", "tds => tds.map(t => +t.textContent)")
    assert shown_labels == expected["labels"][:20]
    screenshot(page, "job")

    page.click("nav a:has-text('Jobs')")
    row = page.locator(f"#jobs-table tr[data-id='{job_id}']")
    row.wait_for()
    assert row.locator(".badge").text_content() == "succeeded"
    assert "digits.npz" in row.text_content()

    # The dataset's page, from the list: its images a row per class, and this job among its jobs.
    row.locator("a", has_text="digits.npz").click()
    page.wait_for_selector(f"#dataset-jobs-table tr[data-id='{job_id}']")
    page.wait_for_function("(i => i.complete && i.naturalWidth > 0)(document.querySelector('#samples-image'))")
    screenshot(page, "dataset")


def test_a_predict_file_of_the_wrong_width_is_refused_in_words(page, server):
    X, y = matrix()
    with api(server, 0) as client:
        dataset = client.post("/v1/datasets", files={"file": ("km.npy", npy_bytes(X))}).json()
        job = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": K,
                                            "params": {"n_init": 2}}).json()
        job = wait_for_job(client, job["id"], {"succeeded", "failed"})
        assert job["status"] == "succeeded", job
        expected = client.post(f"/v1/models/{job['model_id']}/predict",
                               files={"file": ("narrow.npy", npy_bytes(X[:5, :3]))}).json()["error"]["message"]
    use_key(page, server[1][0])
    page.goto(f"/jobs/{job['id']}")
    page.locator("#predict").wait_for()
    drop_file(page, "#predict-dropzone", "narrow.npy", npy_bytes(X[:5, :3]))
    error = page.locator("#predict-error")
    error.wait_for()
    assert error.text_content() == expected


def test_cancel_a_running_job_from_its_page(page, server):
    X, _ = matrix()
    with api(server, 0) as client:
        dataset = client.post("/v1/datasets", files={"file": ("long.npy", npy_bytes(X))}).json()
        job = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "dec", "n_clusters": K,
                                            "params": {"hidden_dims": [16], "embedding_dim": 3},
                                            "pretrain": {"epochs": 5000, "batch_size": 8}}).json()
    use_key(page, server[1][0])
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_function("document.querySelector('#job-status').textContent === 'running'", timeout=WAIT_MS)
    # A few epochs in: the live loss curve has something to show.
    page.wait_for_function("+(/pretrain · epoch (\\d+)\\//.exec(document.querySelector('#job-progress-text').textContent)"
                           " || [0, 0])[1] >= 5", timeout=WAIT_MS)
    # While it runs: an ETA from the speed of its progress, as the CLI's bar shows, and the log's
    # tail refreshed as the worker writes it.
    page.wait_for_function("/ETA \\d+:\\d\\d:\\d\\d$/.test(document.querySelector('#job-progress-text').textContent)",
                           timeout=WAIT_MS)
    page.wait_for_function("document.querySelector('#job-logs').textContent.includes('pretrain begins')", timeout=WAIT_MS)
    assert job["id"] in page.text_content("#job-logs")
    screenshot(page, "job_running")
    page.click("#job-cancel")
    page.wait_for_function("document.querySelector('#job-status').textContent === 'cancelled'", timeout=WAIT_MS)
    assert page.is_hidden("#job-cancel") and page.is_hidden("#results")


def test_each_tenant_sees_only_its_own(page, server):
    X, _ = matrix()
    with api(server, 0) as alice:
        mine = alice.post("/v1/datasets", files={"file": ("alice-only.npy", npy_bytes(X[:50]))}).json()
    use_key(page, server[1][1])
    page.goto("/")
    page.wait_for_selector("#datasets-total:not(:empty)")
    assert "alice-only.npy" not in page.text_content("#datasets-table")
    drop_file(page, "#dropzone", "bob.npy", npy_bytes(X[:40]))
    page.locator("#datasets-table tbody tr", has_text="bob.npy").wait_for()
    assert page.locator("#datasets-table tbody tr").count() == 1
    page.goto(f"/jobs/new?dataset_id={mine['id']}")
    page.wait_for_selector("#job-dataset option", state="attached")
    assert page.eval_on_selector_all("#job-dataset option", "os => os.map(o => o.textContent)") == ["bob.npy (40 × [10])"]

    # And deleting from the list removes it for good.
    page.goto("/")
    page.locator("#datasets-table tbody tr", has_text="bob.npy").locator("button", has_text="Delete").click()
    page.wait_for_selector("#datasets-empty:not([hidden])")
    with api(server, 1) as bob:
        assert bob.get("/v1/datasets").json()["total"] == 0
