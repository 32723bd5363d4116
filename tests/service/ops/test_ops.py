"""Health, readiness, Prometheus metrics, the OpenAPI document, and 503 when a dependency is down."""
from __future__ import annotations

import io
import zipfile

import numpy as np
from fastapi.testclient import TestClient

from deepclust.app.core.settings import Settings
from deepclust.app.main import create_app
from deepclust.models import DeepClusterer

from ..conftest import DEAD_BROKER, TINY_DEC, blobs, npy_bytes, upload
from ..http.test_bad_input import assert_error


def test_health_ready_and_metrics(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    api.get("/v1/jobs/job_nope")
    text = api.get("/metrics").text
    assert 'deepclust_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}' in text
    assert "deepclust_http_request_duration_seconds_bucket" in text
    assert 'deepclust_jobs{status="queued"}' in text and "deepclust_queue_depth" in text


def test_openapi_describes_the_api(api):
    spec = api.get("/openapi.json").json()
    assert {"/v1/datasets", "/v1/jobs", "/v1/jobs/{job_id}/labels", "/v1/models/{model_id}/predict",
            "/healthz", "/readyz", "/metrics", "/v1/methods"} <= set(spec["paths"])
    upload_body = spec["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "file" in upload_body["schema"]["properties"]
    assert spec["components"]["schemas"]["JobCreate"]["examples"]
    assert "ErrorBody" in spec["components"]["schemas"]
    assert api.get("/docs").status_code == 200


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _has_example(spec: dict, media: dict) -> bool:
    return "example" in media or "examples" in media or bool(_resolve(spec, media.get("schema", {})).get("examples"))


def test_every_route_has_a_description_examples_and_its_own_error_codes(api):
    spec = api.get("/openapi.json").json()
    problems = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            problems += [f"{where}: no {k}" for k in ("summary", "description") if not op.get(k)]
            for ctype, media in (op.get("requestBody") or {}).get("content", {}).items():
                if not _has_example(spec, media):
                    problems.append(f"{where}: no example of the {ctype} body")
            for status, response in op["responses"].items():
                for ctype, media in response.get("content", {}).items():
                    if not _has_example(spec, media):
                        problems.append(f"{where}: no example of its {status} {ctype} answer")
                if status[0] in "45":
                    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
                    codes = {e["value"]["error"]["code"] for e in examples.values()}
                    if not codes or not all(f"`{c}`" in response["description"] for c in codes):
                        problems.append(f"{where}: {status} without its error codes")
    for name, schema in spec["components"]["schemas"].items():
        problems += [f"{name}.{p}: no description" for p, prop in schema.get("properties", {}).items()
                     if "description" not in prop and "$ref" not in prop]
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's 422 is not what we answer
    assert problems == []


def test_the_errors_the_api_gives_are_the_ones_its_document_lists(api, backend):
    spec = api.get("/openapi.json").json()

    def declared(method: str, path: str, response) -> None:
        entry = spec["paths"][path][method]["responses"].get(str(response.status_code))
        assert entry is not None, (method, path, response.status_code, response.text)
        code = response.json()["error"]["code"]
        assert f"`{code}`" in entry["description"], (method, path, code, entry["description"])

    X, _ = blobs(20, 3)
    dataset = upload(api, "x.npy", npy_bytes(X)).json()["id"]
    job = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "kmeans", "n_clusters": 2}).json()["id"]
    cases = [
        ("get", "/v1/jobs/{job_id}", api.get("/v1/jobs/job_nope")),
        ("get", "/v1/jobs/{job_id}/labels", api.get(f"/v1/jobs/{job}/labels")),
        ("get", "/v1/jobs/{job_id}/labels", api.get(f"/v1/jobs/{job}/labels", params={"limit": 0})),
        ("delete", "/v1/jobs/{job_id}", api.delete(f"/v1/jobs/{job}")),
        ("delete", "/v1/datasets/{dataset_id}", api.delete(f"/v1/datasets/{dataset}")),
        ("post", "/v1/jobs", api.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 2,
                                                        "params": {"pretrain_epochs": 1}})),
        ("post", "/v1/jobs", api.post("/v1/jobs", content=b"{}", headers={"Content-Type": "text/plain"})),
        ("post", "/v1/jobs", api.post("/v1/jobs", json={"dataset_id": dataset, "method": "x", "n_clusters": 2})),
        ("post", "/v1/datasets", api.post("/v1/datasets", files={"file": ("x.npy", npy_bytes(np.ones(3)))})),
        ("post", "/v1/datasets", api.post("/v1/datasets", files={"file": ("x.bin", b"\x00\x01")})),
        ("post", "/v1/models", api.post("/v1/models", files={"file": ("m.zip", b"not a zip")})),
        ("get", "/v1/models/{model_id}/download", api.get("/v1/models/mdl_nope/download")),
        ("post", "/v1/models/{model_id}/predict", api.post("/v1/models/mdl_nope/predict", json={"instances": [[1]]})),
    ]
    assert api.post(f"/v1/jobs/{job}/cancel").status_code == 202
    cases.append(("post", "/v1/jobs/{job_id}/cancel", api.post(f"/v1/jobs/{job}/cancel")))  # now finished: 409
    with TestClient(api.app) as anonymous:
        cases.append(("get", "/v1/datasets", anonymous.get("/v1/datasets")))
    for method, path, response in cases:
        assert response.status_code >= 400, (method, path, response.text)
        declared(method, path, response)


def test_docs_and_redoc_load_their_assets_from_the_server_not_a_cdn(api):
    for page, assets in [("/docs", ["/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"]),
                         ("/redoc", ["/docs-assets/redoc.standalone.js"])]:
        html = api.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "cdn" not in html.text.lower() and "googleapis" not in html.text and "/openapi.json" in html.text
        for asset in assets:
            assert asset in html.text
            served = api.get(asset)
            assert served.status_code == 200 and len(served.content) > 100_000
    bundle = api.get("/docs-assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle  # Swagger UI 5 reads the OpenAPI 3.1 document FastAPI writes
    assert api.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_broker_down_gives_503_and_creates_nothing(backend, tmp_path):
    app = backend.app(dispatcher="celery", broker_url=DEAD_BROKER)
    with backend.client(app) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready" and "broker" in ready.json()["error"]["message"]
        X = blobs(30, 3)[0]
        dataset = upload(api, "x.npy", npy_bytes(X)).json()["id"]
        response = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 3, **TINY_DEC})
        assert_error(response, 503, "broker_unavailable")
        assert api.get("/v1/jobs").json()["total"] == 0

        # A sweep goes whole (its jobs and links too), and so does a batch prediction.
        sweep = {"dataset_id": dataset, "method": "dec", "n_clusters": [2, 3], "seeds": [0, 1], **TINY_DEC}
        assert_error(api.post("/v1/sweeps", json=sweep), 503, "broker_unavailable")
        assert api.get("/v1/sweeps").json()["total"] == 0 and api.get("/v1/jobs").json()["total"] == 0
        model = api.post("/v1/models", files={"file": ("m.zip", library_model_zip(tmp_path, X))})
        assert model.status_code == 201, model.text  # an import sends nothing to the workers
        predicted = api.post("/v1/predictions", json={"model_id": model.json()["id"], "dataset_id": dataset})
        assert_error(predicted, 503, "broker_unavailable")
        assert api.get("/v1/predictions").json()["total"] == 0


def library_model_zip(where, X: np.ndarray) -> bytes:
    """A k-means model fit with the library, saved and zipped: what a user imports."""
    DeepClusterer("kmeans", 3, random_state=0).fit(X).save(where / "km")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name in ("model.safetensors", "manifest.json"):
            bundle.write(where / "km" / name, name)
    return buffer.getvalue()


def test_database_down_gives_503(tmp_path):
    settings = Settings(data_dir=tmp_path, auth="disabled", reaper_interval_seconds=0,
                        database_url="postgresql+psycopg2://postgres@127.0.0.1:1/test?connect_timeout=2")
    with TestClient(create_app(settings)) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503 and "database" in ready.json()["error"]["message"]
        assert_error(api.get("/v1/datasets"), 503, "database_unavailable")
        assert api.get("/healthz").status_code == 200


def test_database_down_with_auth_on_gives_503_on_every_route(tmp_path):
    """The key lookup runs in the access middleware, outside the route's error handlers: an outage
    there must answer 503 database_unavailable too, never a 500."""
    settings = Settings(data_dir=tmp_path, auth="enabled", reaper_interval_seconds=0,
                        database_url="postgresql+psycopg2://postgres@127.0.0.1:1/test?connect_timeout=2")
    with TestClient(create_app(settings), raise_server_exceptions=False,
                    headers={"Authorization": "Bearer dck_anything"}) as api:
        for method, path in [("get", "/v1/datasets"), ("get", "/v1/jobs/job_x"), ("post", "/v1/jobs"),
                             ("get", "/v1/jobs/job_x/events"), ("get", "/v1/models")]:
            response = getattr(api, method)(path, **({"json": {}} if method == "post" else {}))
            error = assert_error(response, 503, "database_unavailable")
            assert response.headers["Retry-After"] == "2" and error["details"]["dependency"] == "database"
        assert_error(api.get("/v1/jobs"), 503, "database_unavailable")
        assert api.get("/healthz").status_code == 200
