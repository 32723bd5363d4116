"""`deepclust predictions list | show | labels | cancel | delete`, and `deepclust predict --async`'s
start: batch predictions, a model applied to a whole stored dataset in the server's workers."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from deepclust.app.cli.common import (
    API_DEFAULT,
    Api,
    AsJson,
    Key,
    Yes,
    connect,
    emit,
    err,
    fields,
    print_json,
    reports_errors,
    table,
    wants_json,
)
from deepclust.app.cli.jobs import LabelFormat
from deepclust.app.client import BatchPrediction, Client
from deepclust.app.client.progress import prediction_detail

app = typer.Typer(help="Batch predictions: a model applied to a whole stored dataset in the workers.",
                  no_args_is_help=True)

LIST_COLUMNS = ("id", "status", ("samples", prediction_detail), "model_id", "dataset_id", "created_at")
LIST_DROP = ("created_at", "dataset_id", "model_id")
SHOWN = ("id", "model_id", "dataset_id", "status", "detail", "n_samples", "n_clusters", "attempts", "error",
         "created_at", "started_at", "finished_at")


def start(client: Client, model_id: str, data: str, label_column: str | None, wait: bool, as_json: bool) -> None:
    """``predict MODEL FILE --async``: FILE uploaded as a dataset when it is a file (else taken as a
    dataset id), a batch prediction started on it; its id printed, or with ``wait`` followed to the end."""
    path = Path(data)
    if path.is_file():
        dataset = client.upload_dataset(path, label_column=label_column)
        err.print(f"uploaded {path} as dataset {dataset['id']}", highlight=False)
        dataset_id = dataset["id"]
    elif path.exists() or path.suffix:  # a directory, or a file name that is not there: not a dataset id
        raise typer.BadParameter(f"{data!r} is not a file (nor a dataset id like ds_...)", param_hint="FILE")
    else:
        dataset_id = data
    prediction = client.start_prediction(model_id, dataset_id)
    if not wait:
        emit(prediction.resource, as_json, lambda: prediction.id)
        return
    if wants_json(as_json):
        final = prediction.wait(progress=False)
        print_json(final)
        raise typer.Exit(0 if final["status"] == "succeeded" else 1)
    raise typer.Exit(summarize(follow(prediction)))


def follow(prediction: BatchPrediction) -> dict:
    """The live bar until the prediction ends; Ctrl-C offers to cancel it on the server."""
    try:
        return prediction.wait(progress=True, console=err)
    except KeyboardInterrupt:
        err.print()
        if typer.confirm(f"Cancel prediction {prediction.id} on the server?", default=False, err=True):
            prediction.cancel()
            err.print(f"prediction {prediction.id}: cancel requested; it stops within a batch")
        else:
            err.print(f"prediction {prediction.id} keeps running; see it with: deepclust predictions show "
                      f"{prediction.id}")
        raise typer.Exit(130) from None


def summarize(prediction: dict) -> int:
    """How it ended, on stderr; the exit status: 0 when it succeeded."""
    if prediction["status"] == "succeeded":
        err.print(f"[green]prediction {prediction['id']} succeeded[/]: {prediction['n_samples']} samples; "
                  f"deepclust predictions labels {prediction['id']} -o labels.csv", highlight=False)
        return 0
    color = "red" if prediction["status"] == "failed" else "yellow"
    err.print(f"[{color}]prediction {prediction['id']} {prediction['status']}[/]: {prediction_detail(prediction)}",
              highlight=False)
    return 1


@app.command("list")
@reports_errors
def list_(model: Annotated[Optional[str], typer.Option(metavar="MODEL_ID", help="Only predictions by this model.")] = None,
          dataset: Annotated[Optional[str], typer.Option(metavar="DATASET_ID",
                                                         help="Only predictions of this dataset.")] = None,
          status: Annotated[Optional[str], typer.Option(metavar="STATUS", help="queued, running, succeeded, failed "
                                                                               "or cancelled.")] = None,
          limit: Annotated[int, typer.Option(metavar="N", min=1, help="At most N predictions.")] = 50,
          api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """List your batch predictions, newest first."""
    with connect(api, key) as client:
        items = [p.resource for p in client.list_predictions(model_id=model, dataset_id=dataset, status=status,
                                                             limit=limit)]
    emit(items, as_json, lambda: table(items, LIST_COLUMNS, drop=LIST_DROP))


@app.command("show")
@reports_errors
def show(prediction_id: Annotated[str, typer.Argument(help="A batch prediction (deepclust predictions list).")],
         api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Show one batch prediction: its model, dataset, status and progress."""
    with connect(api, key) as client:
        prediction = client.get_prediction(prediction_id).resource
    emit(prediction, as_json, lambda: fields({**prediction, "detail": prediction_detail(prediction)}, SHOWN))


@app.command("labels")
@reports_errors
def labels(prediction_id: Annotated[str, typer.Argument(help="A succeeded batch prediction.")],
           output: Annotated[Optional[Path], typer.Option("--output", "-o", dir_okay=False,
                                                          help="Write here (format from the suffix: .csv, .npy, "
                                                               ".json); default: CSV on stdout.")] = None,
           format: Annotated[Optional[LabelFormat], typer.Option(help="Override the format.")] = None,
           probabilities: Annotated[bool, typer.Option("--probabilities", "-p",
                                                       help="Add each sample's probabilities (csv columns "
                                                            "p0..pK-1; npy fields labels and probabilities).")]
           = False,
           api: Api = API_DEFAULT, key: Key = None) -> None:
    """The label of every sample of the predicted dataset: index, label, confidence."""
    chosen = format.value if format else (output.suffix.lstrip(".").lower() if output else "csv")
    if chosen not in ("csv", "npy", "json"):
        raise typer.BadParameter(f"cannot tell the format from {output.name!r}; use .csv, .npy or .json, "
                                 "or --format", param_hint="--output")
    path = f"/v1/predictions/{prediction_id}/labels"
    query = {"format": chosen, "limit": 100_000, **({"probabilities": "true"} if probabilities else {})}
    with connect(api, key) as client:
        response = client.request("GET", path, params=query)
        data = response.content
        if chosen == "json":  # every page, as one document
            page = response.json()
            while len(page["items"]) < page["total"]:
                page["items"] += client._json("GET", path, params={**query, "offset": len(page["items"])})["items"]
            data = (json.dumps(page) + "\n").encode()
    if output is None:
        sys.stdout.buffer.write(data) if chosen == "npy" else sys.stdout.write(data.decode())
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        err.print(f"wrote the labels of prediction {prediction_id} to {output}")


@app.command("logs")
@reports_errors
def logs(prediction_id: Annotated[str, typer.Argument(help="A batch prediction (deepclust predictions list).")],
         api: Api = API_DEFAULT, key: Key = None) -> None:
    """What the worker logged for this prediction (each attempt, where a retry resumed, a failure)."""
    with connect(api, key) as client:
        sys.stdout.write(client.get_prediction(prediction_id).logs())


@app.command("cancel")
@reports_errors
def cancel(prediction_id: Annotated[str, typer.Argument(help="A batch prediction that has not ended.")],
           api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Cancel a batch prediction: a queued one at once, a running one within a batch."""
    with connect(api, key) as client:
        prediction = client.get_prediction(prediction_id)
        prediction.cancel()
    emit(prediction.resource, as_json, lambda: f"prediction {prediction.id}: " + (
        "cancelled" if prediction.status == "cancelled" else "cancel requested; it stops within a batch"))


@app.command("delete")
@reports_errors
def delete(prediction_id: Annotated[str, typer.Argument(help="A finished batch prediction.")], yes: Yes = False,
           api: Api = API_DEFAULT, key: Key = None) -> None:
    """Delete a finished batch prediction with its labels."""
    if not yes:
        typer.confirm(f"Delete prediction {prediction_id} with its labels?", abort=True, err=True)
    with connect(api, key) as client:
        client.get_prediction(prediction_id).delete()
    err.print(f"deleted prediction {prediction_id}")
