"""The web dashboard: server-rendered page shells (Jinja2) whose scripts call the JSON API.

The pages hold no data of their own: the browser fetches it with the API key the user entered
(kept in sessionStorage, sent as the Bearer header), so a page shows only that tenant's resources
and the server needs no session or cookie. No Node build: the scripts are plain ES modules.
"""
from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from deepclust.app.datasets.ingest import formats
from deepclust.app.errors import not_found
from deepclust.app.web import overview
from deepclust.models import selection

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["formats"] = formats  # the upload hints list the formats of the one table
templates.env.globals["criteria"] = tuple(selection.CRITERIA)  # the sweep form offers the criteria the API takes
router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

# Ids are opaque to the pages, but only this alphabet ever reaches a template.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def _page(request: Request, template: str, page: str, script: str, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"page": page, "script": script, **context})


@router.get("/", name="web-datasets")
def datasets_page(request: Request) -> HTMLResponse:
    return _page(request, "datasets.html", "datasets", "datasets.js")


@router.get("/jobs", name="web-jobs")
def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html", "jobs", "jobs.js")


@router.get("/jobs/new", name="web-new-job")
def new_job_page(request: Request) -> HTMLResponse:
    return _page(request, "new_job.html", "new-job", "new_job.js")


@router.get("/jobs/{job_id}", name="web-job")
def job_page(request: Request, job_id: str) -> HTMLResponse:
    # The page only names the id; whether the job exists (and is this key's) the API answers.
    if not _ID.match(job_id):
        raise not_found("job", job_id)
    return _page(request, "job.html", "job", "job.js", job_id=job_id)


@router.get("/datasets/{dataset_id}", name="web-dataset")
def dataset_page(request: Request, dataset_id: str) -> HTMLResponse:
    if not _ID.match(dataset_id):
        raise not_found("dataset", dataset_id)
    return _page(request, "dataset.html", "datasets", "dataset.js", dataset_id=dataset_id)


@router.get("/sweeps", name="web-sweeps")
def sweeps_page(request: Request) -> HTMLResponse:
    return _page(request, "sweeps.html", "sweeps", "sweeps.js")


@router.get("/sweeps/new", name="web-new-sweep")
def new_sweep_page(request: Request) -> HTMLResponse:
    return _page(request, "new_sweep.html", "new-sweep", "new_sweep.js")


@router.get("/sweeps/{sweep_id}", name="web-sweep")
def sweep_page(request: Request, sweep_id: str) -> HTMLResponse:
    if not _ID.match(sweep_id):
        raise not_found("sweep", sweep_id)
    return _page(request, "sweep.html", "sweeps", "sweep.js", sweep_id=sweep_id)


def install_dashboard(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="web-static")
    app.include_router(router)
    app.include_router(overview.router)
