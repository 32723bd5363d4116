"""The client's sweeps and runs to compare, against a real `deepclust serve` (auth on): start_sweep
-> Sweep.wait() with a bar over its jobs, result(), table(), plot(); list_sweeps, get_sweep;
list_jobs filtered and as a DataFrame."""
from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from deepclust.app.client import Client, Conflict, Job, Sweep

from ..conftest import TINY_DEC, blobs


@pytest.fixture(scope="module")
def api(served):
    with Client(served.url, key=served.key) as client:
        yield client


@pytest.fixture(scope="module")
def swept(api):
    """A kmeans sweep over K=2..4 on three labelled blobs, waited for with its bar drawn into a string,
    and a standalone kmeans job on the same data."""
    X, y = blobs(90, 6, 3)
    dataset = api.upload_dataset(X, labels=y, name="blobs")
    sweep = api.start_sweep(dataset["id"], "kmeans", range(2, 5), seeds=[0], selection="input_silhouette",
                            name="choose-k")
    alone = api.start_job(dataset["id"], "kmeans", 3)
    screen = io.StringIO()
    final = sweep.wait(progress=True, console=Console(file=screen, force_terminal=True, width=160), timeout=300)
    alone.wait(progress=False, timeout=300)
    return dataset, sweep, final, alone, screen.getvalue()


def test_a_sweep_waits_with_a_bar_and_recommends_k(swept):
    _, sweep, final, _, screen = swept
    assert isinstance(sweep, Sweep) and final["status"] == "succeeded" == sweep.status
    assert f"sweep {sweep.id}" in screen and "3/3 jobs done" in screen and "recommended K=3" in screen
    result = sweep.result()
    assert result["recommended"]["n_clusters"] == 3
    best = sweep.recommended()
    assert isinstance(best, Job) and best.id == result["recommended"]["job_id"] and best.resource["n_clusters"] == 3


def test_table_is_a_dataframe_and_plot_is_a_png(swept, tmp_path):
    _, sweep, _, _, _ = swept
    table = sweep.table()
    assert isinstance(table, pd.DataFrame) and list(table["n_clusters"]) == [2, 3, 4]
    assert {"seed", "job_id", "selected", "input_silhouette", "acc", "nmi"} <= set(table.columns)
    assert table.loc[table["selected"], "n_clusters"].tolist() == [3]
    png = sweep.plot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    path = sweep.plot(tmp_path / "sweep.png")
    assert path.read_bytes() == png


def test_list_and_get_sweeps(api, swept):
    dataset, sweep, _, _, _ = swept
    assert sweep.id in {s.id for s in api.list_sweeps()}
    assert [s.id for s in api.list_sweeps(dataset_id=dataset["id"])] == [sweep.id]
    again = api.get_sweep(sweep.id)
    assert again.resource["name"] == "choose-k" and again.result() == sweep.result()


def test_list_jobs_filters_and_compares_runs_as_a_frame(api, swept):
    dataset, sweep, final, alone, _ = swept
    children = set(final["job_ids"])
    assert {j.id for j in sweep.jobs()} == children
    assert {j.id for j in api.list_jobs(sweep_id=sweep.id)} == children
    standalone = {j.id for j in api.list_jobs(dataset_id=dataset["id"], standalone=True)}
    assert standalone == {alone.id}
    assert {j.id for j in api.list_jobs(dataset_id=dataset["id"], standalone=False)} == children
    assert len(api.list_jobs(dataset_id=dataset["id"], limit=2)) == 2
    assert api.list_jobs(dataset_id=dataset["id"], method="dec") == []

    frame = api.list_jobs(dataset_id=dataset["id"], method="kmeans", status="succeeded", as_frame=True)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert {"id", "method", "n_clusters", "seed", "acc", "nmi", "silhouette", "nonempty_clusters"} <= set(frame.columns)
    assert frame.set_index("id").loc[alone.id, "acc"] == 1.0
    assert frame.sort_values("acc", ascending=False).iloc[0]["n_clusters"] == 3
    assert list(frame.sort_values("n_clusters")["nonempty_clusters"]) == [2, 3, 3, 4]


def test_result_before_success_is_a_conflict_and_a_sweep_cancels(api, swept):
    dataset, _, _, _, _ = swept
    sweep = api.start_sweep(dataset["id"], "dec", [2, 3, 4, 5], seeds=[0, 1], params=TINY_DEC["params"],
                            pretrain={"epochs": 50, "batch_size": 16})
    with pytest.raises(Conflict) as caught:
        sweep.result()
    assert caught.value.code == "sweep_not_succeeded"
    sweep.cancel()
    final = sweep.wait(progress=False, timeout=300)
    assert final["status"] == "cancelled"
    with pytest.raises(Exception) as failed:
        sweep.wait(progress=False, raise_on_failure=True)
    assert failed.value.code == "sweep_cancelled"
