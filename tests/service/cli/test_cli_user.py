"""The user commands of `deepclust` (datasets, jobs, labels, predict, methods) against a real
`deepclust serve` with auth on: through typer's CliRunner, and as a subprocess for Ctrl-C."""
from __future__ import annotations

import json
import signal
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from deepclust.app.cli import app
from deepclust.app.client import Client

from ..conftest import TINY_DEC, digits
from ..processes import DEEPCLUST, clean_env, wait_until

N, K = 300, 10


@pytest.fixture(scope="module")
def env(served) -> dict[str, str]:
    return {"DEEPCLUST_API": served.url, "DEEPCLUST_KEY": served.key, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def cli(env):
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, input: str | None = None):
        result = runner.invoke(app, list(args), env=env, input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return invoke


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    X, y = digits(N)
    path = tmp_path_factory.mktemp("cli") / "digits.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%g",
               header=",".join([f"p{i}" for i in range(64)] + ["digit"]), comments="")
    return path, X, y


@pytest.fixture(scope="module")
def dataset(cli, digits_csv) -> dict:
    path, _, _ = digits_csv
    return json.loads(cli("datasets", "upload", str(path), "--label-column", "digit", "--name", "digits",
                          "--json").stdout)


def tiny_dec_args() -> list[str]:
    args = ["-m", "dec", "-k", str(K), "--seed", "0"]
    for name, value in TINY_DEC["params"].items():
        args += ["-p", f"{name}={json.dumps(value)}"]
    for name, value in TINY_DEC["pretrain"].items():
        args += ["--pretrain", f"{name}={value}"]
    return args


@pytest.fixture(scope="module")
def finished(cli, dataset) -> tuple[dict, str]:
    result = cli("jobs", "start", dataset["id"], *tiny_dec_args(), "--wait")
    jobs = json.loads(cli("jobs", "list", "--json").stdout)
    return jobs[0], result.output


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("deepclust ")


def test_datasets_upload_list_show(cli, dataset):
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_classes"], dataset["name"]) == (N, 64, 10, "digits")
    listed = cli("datasets", "list").stdout
    assert dataset["id"] in listed and "digits" in listed
    assert json.loads(cli("datasets", "show", dataset["id"], "--json").stdout) == dataset
    shown = cli("datasets", "show", dataset["id"]).stdout
    assert "n_samples" in shown and "300" in shown


def test_methods_table_and_detail(cli):
    overview = cli("methods").stdout
    assert all(name in overview for name in ("kmeans", "dec", "idec", "cdc", "dccf"))
    methods = json.loads(cli("methods", "--json").stdout)
    dec = next(m for m in methods if m["name"] == "dec")
    detail = cli("methods", "dec").stdout
    assert "maxiter" in detail and str(dec["defaults"]["maxiter"]) in detail
    assert "no method 'nope'" in cli("methods", "nope", code=1).output


def test_jobs_start_wait_then_list_show_history(cli, dataset, finished):
    job, waited = finished
    assert job["dataset_id"] == dataset["id"] and job["status"] == "succeeded"
    assert f"job {job['id']} succeeded" in waited and job["model_id"] in waited and "acc " in waited
    shown = json.loads(cli("jobs", "show", job["id"], "--json").stdout)
    assert shown["model_id"] == job["model_id"] and shown["params"]["maxiter"] == TINY_DEC["params"]["maxiter"]
    assert job["id"] in cli("jobs", "list", "--status", "succeeded").stdout
    history = json.loads(cli("jobs", "history", job["id"], "--json").stdout)
    assert [r["epoch"] for r in history if r["phase"] == "pretrain"] == list(range(TINY_DEC["pretrain"]["epochs"]))
    assert "finetune" in cli("jobs", "history", job["id"]).stdout
    assert "succeeded" in cli("jobs", "watch", job["id"]).output  # an ended job: the bar, then the summary


def test_labels_to_csv_npy_json_and_stdout(cli, finished, tmp_path):
    job, _ = finished
    cli("labels", job["id"], "-o", str(tmp_path / "labels.csv"))
    lines = (tmp_path / "labels.csv").read_text().splitlines()
    assert lines[0] == "index,label,confidence" and len(lines) == N + 1
    csv_labels = [int(line.split(",")[1]) for line in lines[1:]]
    cli("labels", job["id"], "-o", str(tmp_path / "labels.npy"))
    assert np.load(tmp_path / "labels.npy").tolist() == csv_labels
    cli("labels", job["id"], "-o", str(tmp_path / "labels.json"))
    page = json.loads((tmp_path / "labels.json").read_text())
    assert page["total"] == N and [item["label"] for item in page["items"]] == csv_labels
    assert cli("labels", job["id"]).stdout.splitlines() == lines
    assert "cannot tell the format" in cli("labels", job["id"], "-o", str(tmp_path / "l.txt"), code=2).output


def test_predict_a_file_with_its_label_column(cli, finished, digits_csv, tmp_path):
    job, _ = finished
    path, X, _ = digits_csv
    few = tmp_path / "few.csv"
    few.write_text("\n".join(path.read_text().splitlines()[:6]) + "\n")  # header + 5 rows, label column kept
    stored = [int(line.split(",")[1]) for line in cli("labels", job["id"]).stdout.splitlines()[1:6]]
    result = json.loads(cli("predict", job["model_id"], str(few), "--label-column", "digit", "--json").stdout)
    assert result["labels"] == stored and np.allclose(np.sum(result["probabilities"], 1), 1, atol=1e-5)
    table = cli("predict", job["model_id"], str(few), "--label-column", "digit").stdout
    assert "confidence" in table and len([l for l in table.splitlines() if l.strip()[:1].isdigit()]) == 5
    cli("predict", job["model_id"], str(few), "--label-column", "digit", "-o", str(tmp_path / "p.csv"))
    assert [int(l.split(",")[1]) for l in (tmp_path / "p.csv").read_text().splitlines()[1:]] == stored


def test_models_download_import_delete_and_job_logs(cli, finished, tmp_path):
    job, _ = finished
    assert f"job {job['id']} succeeded" in cli("jobs", "logs", job["id"]).stdout
    cli("models", "download", job["model_id"], "-o", str(tmp_path / "m.zip"))
    imported = json.loads(cli("models", "import", str(tmp_path / "m.zip"), "--json").stdout)
    assert imported["method"] == "dec" and imported["job_id"] is None
    assert imported["id"] in cli("models", "list").stdout
    assert json.loads(cli("models", "show", imported["id"], "--json").stdout) == imported
    cli("models", "download", job["model_id"], "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert (tmp_path / "m.onnx").stat().st_size > 1000
    assert "deleted model" in cli("models", "delete", imported["id"], "-y").output
    assert "404 model_not_found" in cli("models", "show", imported["id"], code=1).output


def test_delete_asks_first_then_removes(cli, dataset, digits_csv, served):
    path, _, _ = digits_csv
    other = json.loads(cli("datasets", "upload", str(path), "--json").stdout)
    assert "Aborted" in cli("datasets", "delete", other["id"], input="n\n", code=1).output
    cli("datasets", "show", other["id"])  # still there
    cli("datasets", "delete", other["id"], input="y\n")
    assert "404 dataset_not_found" in cli("datasets", "show", other["id"], code=1).output

    done = json.loads(cli("jobs", "start", dataset["id"], "-m", "kmeans", "-k", "3", "--wait", "--json").stdout)
    assert done["status"] == "succeeded"
    assert "deleted job" in cli("jobs", "delete", done["id"], "-y").output
    assert "404 job_not_found" in cli("jobs", "show", done["id"], code=1).output

    busy = json.loads(cli("jobs", "start", dataset["id"], "-m", "dec", "-k", "3", "--pretrain", "epochs=500",
                          "--json").stdout)
    assert "409 job_active" in cli("jobs", "delete", busy["id"], "-y", code=1).output
    cli("jobs", "cancel", busy["id"])
    with Client(served.url, key=served.key) as client:
        assert client.job(busy["id"]).wait(progress=False, timeout=300)["status"] == "cancelled"
    cli("jobs", "delete", busy["id"], "-y")


def test_errors_are_one_line_with_the_api_code(cli, finished, served):
    job, _ = finished
    failed = cli("jobs", "cancel", job["id"], code=1)
    assert "error (409 job_finished)" in failed.output and "Traceback" not in failed.output
    assert "error (404 job_not_found)" in cli("jobs", "show", "job_nope", code=1).output
    assert "is not KEY=VALUE" in cli("jobs", "start", "ds_x", "-m", "dec", "-k", "3", "-p", "maxiter", code=2).output
    no_key = CliRunner().invoke(app, ["datasets", "list"], env={"DEEPCLUST_API": served.url, "DEEPCLUST_KEY": ""})
    assert no_key.exit_code == 1 and "error (401 unauthorized)" in no_key.output


def test_ctrl_c_while_waiting_offers_to_cancel_the_job(env, dataset, served):
    """As a person would: `jobs start --wait` in a terminal, Ctrl-C, answer yes."""
    args = [DEEPCLUST, "jobs", "start", dataset["id"], "-m", "dec", "-k", str(K), "--pretrain", "epochs=500",
            "--pretrain", "batch_size=16", "--wait"]
    process = subprocess.Popen(args, env={**clean_env(), **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with Client(served.url, key=served.key) as client:
        def running_job():
            jobs = client.jobs(status="running", dataset_id=dataset["id"])
            return jobs[0] if jobs and (jobs[0].resource["progress"].get("epoch") or 0) >= 1 else None

        job = wait_until(running_job, 300, "the job to be training")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate("y\n", timeout=120)
        assert process.returncode == 130, stderr
        assert f"Cancel job {job.id} on the server?" in stderr and "cancel requested" in stderr
        assert job.wait(progress=False, timeout=120)["status"] == "cancelled"


def test_serve_refuses_an_unknown_log_level_with_a_usage_message():
    result = CliRunner().invoke(app, ["serve", "--log-level", "verbose"])
    assert result.exit_code == 2 and "verbose" in result.output and "info" in result.output
