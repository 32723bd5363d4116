"""`deepclust sweeps ...`, `deepclust jobs list` for comparing runs, and the CLI's polish (issue #25):
global --api/--key/--json before or after the subcommand, JSON errors, help without type
placeholders, tables that keep their key columns at 80 columns, the warning when a key goes to a
server with auth off. Against a real `deepclust serve` (auth on) through typer's CliRunner."""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from deepclust.app.cli import app
from deepclust.app.cli import common
from deepclust.app.client import Client

from ..conftest import blobs

DEAD = "http://127.0.0.1:1"  # nothing listens there


@pytest.fixture(scope="module")
def env(served) -> dict[str, str]:
    return {"DEEPCLUST_API": served.url, "DEEPCLUST_KEY": served.key, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def cli(env):
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, extra: dict | None = None):
        result = runner.invoke(app, list(args), env={**env, **(extra or {})})
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return invoke


@pytest.fixture(scope="module")
def swept(cli, tmp_path_factory) -> dict:
    """Labelled blobs, a kmeans sweep over K=2..4 started and waited for with the CLI, and a
    standalone kmeans job."""
    X, y = blobs(90, 6, 3)
    path = tmp_path_factory.mktemp("runs") / "blobs.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%g",
               header=",".join([f"f{i}" for i in range(6)] + ["y"]), comments="")
    dataset = json.loads(cli("datasets", "upload", str(path), "--label-column", "y", "--json").stdout)
    waited = cli("sweeps", "start", dataset["id"], "-m", "kmeans", "-k", "2-4", "--seeds", "0",
                 "--selection", "input_silhouette", "--name", "choose-k", "--wait")
    sweeps = json.loads(cli("sweeps", "list", "--json").stdout)
    alone = json.loads(cli("jobs", "start", dataset["id"], "-m", "kmeans", "-k", "3", "--wait", "--json").stdout)
    return {"dataset": dataset, "sweep": sweeps[0], "waited": waited, "alone": alone}


def test_sweeps_start_wait_list_show_plot_cancel(cli, swept, tmp_path):
    sweep, waited = swept["sweep"], swept["waited"]
    assert sweep["name"] == "choose-k" and sweep["status"] == "succeeded"
    assert sweep["n_clusters"] == [2, 3, 4] and sweep["seeds"] == [0]
    assert f"sweep {sweep['id']}" in waited.output and "3/3 jobs done" in waited.output
    assert "recommended: K=3" in waited.stdout
    listed = cli("sweeps", "list").stdout
    assert sweep["id"] in listed and "2-4" in listed
    shown = cli("sweeps", "show", sweep["id"]).stdout
    assert "input_silhouette" in shown and "◀" in shown and "recommended: K=3" in shown
    assert json.loads(cli("sweeps", "show", sweep["id"], "--json").stdout)["result"]["recommended"]["n_clusters"] == 3
    cli("sweeps", "plot", sweep["id"], "-o", str(tmp_path / "k.png"))
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = cli("sweeps", "cancel", sweep["id"], "--json", code=1)
    assert json.loads(refused.stdout)["error"]["code"] == "sweep_finished"
    bad = cli("sweeps", "start", swept["dataset"]["id"], "-m", "kmeans", "-k", "two", code=2)
    assert "5-15" in bad.output


def test_jobs_list_groups_sweeps_away_and_compares_runs(cli, swept):
    children, alone = set(swept["sweep"]["job_ids"]), swept["alone"]["id"]
    listed = {j["id"] for j in json.loads(cli("jobs", "list", "--json").stdout)}
    assert alone in listed and not listed & children
    assert {j["id"] for j in json.loads(cli("jobs", "list", "--sweep", swept["sweep"]["id"], "--json").stdout)} == children
    # The server is shared by the session's other tests: look at this test's dataset only.
    ours = ("--dataset", swept["dataset"]["id"])
    assert children | {alone} <= {j["id"] for j in json.loads(cli("jobs", "list", "--all", *ours, "--json").stdout)}
    ranked = json.loads(cli("jobs", "list", "--all", "--sort", "acc", "--method", "kmeans",
                            "--dataset", swept["dataset"]["id"], "--json").stdout)
    accs = [j["metrics"]["acc"] for j in ranked]
    assert accs == sorted(accs, reverse=True) and ranked[0]["n_clusters"] == 3 and len(ranked) == 4
    assert json.loads(cli("jobs", "list", "--all", "--method", "dec", *ours, "--json").stdout) == []
    text = cli("jobs", "list", "--sweep", swept["sweep"]["id"], "--sort", "k", extra={"COLUMNS": "80"}).stdout
    header = text.splitlines()[0]
    for column in ("id", "method", "K", "state", "acc", "silhouette"):
        assert column in header.split(), header
    for job_id in children:
        assert job_id in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_models_list_keeps_its_key_columns_at_80_columns(cli, swept):
    # The server is shared by the session's other tests: check this test's models (6 features).
    models = [m for m in json.loads(cli("models", "list", "--json").stdout)
              if m.get("dataset_id") == swept["dataset"]["id"]]
    assert models
    text = cli("models", "list", extra={"COLUMNS": "80"}).stdout
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert [w for w in text.splitlines()[0].split() if w != "┃"][:4] == ["id", "method", "K", "shape"]
    for model in models:
        line = next(line for line in text.splitlines() if model["id"] in line)
        assert model["method"] in line and "6" in line.split()


def test_global_options_before_or_after_the_subcommand(cli, served):
    dead = {"DEEPCLUST_API": DEAD, "DEEPCLUST_KEY": "wrong"}
    before = cli("--api", served.url, "--key", served.key, "--json", "jobs", "list", extra=dead)
    assert isinstance(json.loads(before.stdout), list)
    after = cli("jobs", "list", "--api", served.url, "--key", served.key, "--json", extra=dead)
    assert json.loads(after.stdout) == json.loads(before.stdout)
    # the subcommand's own option wins over the root's
    cli("--api", DEAD, "datasets", "list", "--api", served.url, "--key", served.key, extra=dead)
    failed = cli("--api", DEAD, "datasets", "list", code=1)
    assert "Cannot reach the deepclust API at http://127.0.0.1:1" in failed.output


def test_errors_under_json_carry_the_api_code(cli):
    for args in (("--json", "jobs", "show", "job_nope"), ("jobs", "show", "job_nope", "--json")):
        result = cli(*args, code=1)
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "job_not_found" and error["message"] and "details" in error
    unauthorized = cli("--json", "--key", "not-a-key", "sweeps", "list", code=1, extra={"DEEPCLUST_KEY": "x"})
    assert json.loads(unauthorized.stdout)["error"]["code"] == "unauthorized"
    plain = cli("jobs", "show", "job_nope", code=1)
    assert "(404 job_not_found)" in plain.output and not plain.stdout.startswith("{")


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_help_has_no_type_placeholders_and_names_arguments():
    import typer

    runner, command = CliRunner(), typer.main.get_command(app)
    paths = list(_commands(command))
    assert ("sweeps", "start") in paths and ("jobs", "list") in paths
    for path in [(), *paths]:
        text = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"}).output
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage and "<" not in text, (path, text)
        for placeholder in ("<bool>", "<str>", "<int>", "<file>"):
            assert placeholder not in text, (path, text)
    usage = runner.invoke(app, ["datasets", "upload", "--help"], env={"COLUMNS": "100"}).output
    assert "Usage: deepclust datasets upload [OPTIONS] FILE" in usage
    assert "[OPTIONS] JOB_ID" in runner.invoke(app, ["jobs", "show", "--help"], env={"COLUMNS": "100"}).output
    assert "--port PORT" in " ".join(runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "100"}).output.split())


def test_a_server_with_auth_off_says_so_and_the_cli_warns_about_the_key(backend, monkeypatch):
    from fastapi.testclient import TestClient

    with TestClient(backend.app(auth="disabled")) as open_server:
        assert open_server.get("/v1/jobs").headers["x-deepclust-auth"] == "disabled"
        assert open_server.get("/healthz").headers["x-deepclust-auth"] == "disabled"
    with TestClient(backend.shared_app) as closed:
        assert "x-deepclust-auth" not in closed.get("/healthz").headers

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [], "total": 0}, headers={"X-Deepclust-Auth": "disabled"})

    monkeypatch.setattr(common, "Client", lambda url, key=None: Client(url, key=key,
                                                                       transport=httpx.MockTransport(answer)))
    runner = CliRunner()
    warned = runner.invoke(app, ["--key", "some-key", "jobs", "list"], env={"COLUMNS": "100"})
    assert warned.exit_code == 0 and "authentication disabled" in warned.stderr
    assert warned.stderr.count("warning") == 1
    quiet = runner.invoke(app, ["jobs", "list"], env={"COLUMNS": "100", "DEEPCLUST_KEY": None})
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
