"""Keys and tenants: `deepclust keys create | list | revoke`, expiry, 401 at once for a revoked or
expired key, the refusal to serve without keys on a reachable address, /metrics without
per-tenant data (or behind its own token)."""
from __future__ import annotations

import re
import subprocess
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from deepclust.app.tenancy.auth import create_key
from deepclust.app.core.db import engine_for, new_session, utcnow
from deepclust.app.core.settings import Settings
from deepclust.app.main import create_app
from deepclust.app.server import UnsafeBind, check_bind

from ..conftest import blobs, npy_bytes, upload
from ..processes import DEEPCLUST, clean_env
from ..http.test_bad_input import assert_error


def deepclust(tmp_path, *args: str, **settings) -> subprocess.CompletedProcess:
    env = clean_env(data_dir=tmp_path / "data", **settings)
    return subprocess.run([DEEPCLUST, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def made_key(result: subprocess.CompletedProcess) -> tuple[str, str, str]:
    """(key id, tenant id, key) from the output of `keys create`."""
    assert result.returncode == 0, result.stderr
    key_id, tenant = re.search(r"key (key_\w+) for tenant (tn_\w+)", result.stdout).groups()
    return key_id, tenant, result.stdout.strip().splitlines()[-1]


def test_key_lifecycle_from_the_command_line(tmp_path):
    alice_id, tenant, alice = made_key(deepclust(tmp_path, "keys", "create", "--name", "alice"))
    laptop_id, same_tenant, laptop = made_key(deepclust(tmp_path, "keys", "create", "--name", "laptop",
                                                        "--tenant", tenant, "--expires-days", "30"))
    assert same_tenant == tenant

    # A name that exists is refused, not duplicated.
    again = deepclust(tmp_path, "keys", "create", "--name", "alice")
    assert again.returncode == 1 and f"--tenant {tenant}" in again.stderr
    twice = deepclust(tmp_path, "keys", "create", "--name", "laptop", "--tenant", tenant)
    assert twice.returncode == 1 and "already has a key named 'laptop'" in twice.stderr
    assert deepclust(tmp_path, "keys", "create", "--name", "x", "--expires-days", "0").returncode == 1
    for days in ("nan", "inf", "-inf", "1e300"):  # nan and 1e300 once printed a traceback
        refused = deepclust(tmp_path, "keys", "create", "--name", "x", "--expires-days", days)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert "--expires-days must be a number of days" in refused.stderr

    listed = deepclust(tmp_path, "keys", "list")
    assert listed.returncode == 0
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(lines) == {alice_id, laptop_id}
    assert tenant in lines[alice_id] and "alice" in lines[alice_id] and lines[alice_id].endswith("active")
    expires = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%d")
    assert expires in lines[laptop_id]
    assert alice not in listed.stdout and laptop not in listed.stdout  # never the key itself

    settings = Settings(data_dir=tmp_path / "data", auth="enabled", reaper_interval_seconds=0)
    with TestClient(create_app(settings)) as api:
        dataset = api.post("/v1/datasets", files={"file": ("x.npy", npy_bytes(blobs(20, 3)[0]))},
                           headers={"Authorization": f"Bearer {alice}"})
        assert dataset.status_code == 201
        # Both keys are the same tenant's: the laptop sees alice's dataset.
        assert api.get("/v1/datasets", headers={"Authorization": f"Bearer {laptop}"}).json()["total"] == 1

        revoked = deepclust(tmp_path, "keys", "revoke", alice_id)
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        error = assert_error(api.get("/v1/datasets", headers={"Authorization": f"Bearer {alice}"}),
                             401, "unauthorized")
        assert "revoked" in error["message"]
        assert api.get("/v1/datasets", headers={"Authorization": f"Bearer {laptop}"}).status_code == 200
    listed = deepclust(tmp_path, "keys", "list").stdout
    assert next(line for line in listed.splitlines() if line.startswith(alice_id)).endswith("revoked")
    assert deepclust(tmp_path, "keys", "revoke", "key_nope").returncode == 1


def test_an_expired_key_answers_401(backend):
    with new_session(engine_for(backend.settings.database_url)) as session:
        key, _ = create_key(session, "expired-yesterday", expires_at=utcnow() - timedelta(days=1))
        fresh, _ = create_key(session, "expires-tomorrow", expires_at=utcnow() + timedelta(days=1))
    with TestClient(backend.shared_app) as api:
        error = assert_error(api.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}), 401, "unauthorized")
        assert "expired" in error["message"]
        assert api.get("/v1/jobs", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_serving_without_keys_on_a_reachable_address_is_refused(tmp_path):
    refused = deepclust(tmp_path, "serve", "--host", "0.0.0.0", "--port", "1", auth="disabled")
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 with authentication disabled" in refused.stderr
    assert "--insecure-no-auth" in refused.stderr
    with pytest.raises(UnsafeBind):
        check_bind(Settings(data_dir=tmp_path, host="10.0.0.5", auth="disabled"))
    warning = check_bind(Settings(data_dir=tmp_path, host="10.0.0.5", auth="disabled"), insecure_no_auth=True)
    assert "WITHOUT AUTHENTICATION" in warning
    # What needs no refusal: keys on, or loopback.
    assert check_bind(Settings(data_dir=tmp_path, host="0.0.0.0", auth="auto")) is None
    assert check_bind(Settings(data_dir=tmp_path, host="127.0.0.1", auth="disabled")) is None


def test_metrics_show_no_tenant_data(backend):
    with backend.client() as alice:
        dataset = upload(alice, "x.npy", npy_bytes(blobs(20, 3)[0])).json()["id"]
        alice.get(f"/v1/datasets/{dataset}")
        alice.get("/v1/jobs/job_" + "a" * 30)
        tenant = alice.get("/v1/datasets").json()  # a page: nothing in it names the tenant, the metrics neither
        text = TestClient(backend.shared_app).get("/metrics").text  # no key
        assert "deepclust_http_requests_total" in text
        assert dataset not in text and "job_aaaa" not in text and "tn_" not in text and "key_" not in text
        assert tenant["total"] == 1


def test_metrics_token(backend):
    app = backend.app(metrics_token="s3cret")
    with TestClient(app) as anyone:
        assert_error(anyone.get("/metrics"), 401, "unauthorized")
        assert_error(anyone.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        assert anyone.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
