"""Health, readiness, Prometheus metrics, the OpenAPI document, and 503 when a dependency is down."""
from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

from .conftest import DEAD_BROKER, TINY_DEC, blobs, npy_bytes, upload
from .test_bad_input import assert_error


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


def test_broker_down_gives_503_and_creates_nothing(backend):
    app = backend.app(dispatcher="celery", broker_url=DEAD_BROKER)
    with backend.client(app) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready" and "broker" in ready.json()["error"]["message"]
        dataset = upload(api, "x.npy", npy_bytes(blobs(30, 3)[0])).json()["id"]
        response = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 3, **TINY_DEC})
        assert_error(response, 503, "broker_unavailable")
        assert api.get("/v1/jobs").json()["total"] == 0


def test_database_down_gives_503(tmp_path):
    settings = Settings(data_dir=tmp_path, auth="disabled", reaper_interval_seconds=0,
                        database_url="postgresql+psycopg2://postgres@127.0.0.1:1/test?connect_timeout=2")
    with TestClient(create_app(settings)) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503 and "database" in ready.json()["error"]["message"]
        assert_error(api.get("/v1/datasets"), 503, "database_unavailable")
        assert api.get("/healthz").status_code == 200
