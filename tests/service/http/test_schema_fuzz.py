"""Schemathesis against /openapi.json, on a real socket: its example, coverage and fuzzing phases
send generated requests, valid and not, to every operation, with a bounded example count; the run
must find zero 5xx and zero answers that differ from the document (status, headers, content
type, body), invalid requests refused, keys enforced, wrong verbs answered 405 with their Allow.

The command line runs it (its pytest plugin does not run on pytest 9). A dataset, a job and a
model exist, and their ids are given for the path parameters, so the operations reach the
service's own logic rather than stopping at 404.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from deepclust.app.tenancy.auth import create_key
from deepclust.app.core.db import engine_for, new_session
from deepclust.app.core.migrate import upgrade
from deepclust.app.core.settings import Settings
from deepclust.app.main import create_app
from deepclust.worker.run import run_job

from ..conftest import blobs, npy_bytes
from ..processes import ServerThread

MAX_EXAMPLES = 15
SCHEMATHESIS = str(Path(sys.executable).parent / "st")
# Every answer as documented, invalid data refused, keys enforced, wrong verbs a 405 with Allow.
# Not positive_data_acceptance: a schema-valid upload may still be refused for its content (any
# string is a "binary" file to the schema, not any file is a dataset); no OpenAPI document says that.
# Not max_response_time: speed is measured in benchmarks/, never asserted in a test.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,"
          "allow_header_conformance,use_after_free,ensure_resource_availability,ignored_auth")


def test_every_operation_answers_as_documented(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", auth="enabled", reaper_interval_seconds=0,
                        max_upload_bytes=1 << 20, progress_interval_seconds=0)
    upgrade(settings.database_url)
    with new_session(engine_for(settings.database_url)) as session:
        key, _ = create_key(session, "fuzz")
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {key}"}
    X, y = blobs(40, 4)  # four features: the width of the documented predict example

    def dataset(client) -> str:
        return client.post("/v1/datasets", files={"file": ("x.npy", npy_bytes(X)),
                                                  "labels": ("y.txt", "\n".join(map(str, y)).encode())}).json()["id"]

    def trained(client, dataset_id: str) -> dict:
        job = client.post("/v1/jobs", json={"dataset_id": dataset_id, "method": "kmeans", "n_clusters": 3}).json()
        assert run_job(job["id"], settings) == "succeeded"
        return client.get(f"/v1/jobs/{job['id']}").json()

    with TestClient(app, headers=headers) as client:
        main = dataset(client)
        job = trained(client, main)
        # The deletes get resources of their own, so the other operations keep finding theirs.
        doomed = {"DELETE /v1/datasets/{dataset_id}": ("dataset_id", dataset(client)),
                  "DELETE /v1/jobs/{job_id}": ("job_id", trained(client, main)["id"]),
                  "DELETE /v1/models/{model_id}": ("model_id", trained(client, main)["model_id"])}
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\ndataset_id = "{main}"\njob_id = "{job["id"]}"\nmodel_id = "{job["model_id"]}"\n'
                      + "".join(f'\n[[operations]]\ninclude-name = "{name}"\nparameters = {{ {param} = "{value}" }}\n'
                                for name, (param, value) in doomed.items()))
    with ServerThread(app) as server:
        run = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(config), "run", f"{server.url}/openapi.json",
             "-H", f"Authorization: Bearer {key}", "--checks", CHECKS,
             "--phases", "examples,coverage,fuzzing", "--max-examples", str(MAX_EXAMPLES), "--seed", "0",
             "--workers", "1", "--no-color", "--request-timeout", "60"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-5000:]
