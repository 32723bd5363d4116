"""The operator's commands: `deepclust serve | worker | migrate | keys create | list | revoke`.

They run the service itself, so they import it; they do so inside each command, so the user
commands (which only talk HTTP) stay quick to start.
"""
from __future__ import annotations

import logging
import socket
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

keys = typer.Typer(help="API keys: each belongs to a tenant, is shown once and stored hashed.", no_args_is_help=True)


class LogLevel(str, Enum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


def setup_logging(level: LogLevel = LogLevel.info) -> None:
    numeric = logging.DEBUG if level in (LogLevel.debug, LogLevel.trace) else getattr(logging, level.value.upper())
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a busy port fails here, clearly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP,
    # and with Nagle on every small answer waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}. Another program (another "
                   f"deepclust serve?) may be using the port; choose one with --port or DEEPCLUST_PORT.", err=True)
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    return sock


def serve(host: Annotated[Optional[str], typer.Option(help="Bind address (DEEPCLUST_HOST, default 127.0.0.1).",
                                                      show_default=False)] = None,
          port: Annotated[Optional[int], typer.Option(help="Port (DEEPCLUST_PORT, default 8000).",
                                                      show_default=False)] = None,
          migrate: Annotated[bool, typer.Option("--migrate", help="Also upgrade a non-SQLite database first.")] = False,
          workers: Annotated[int, typer.Option(min=1, help="API processes (uvicorn workers); the job runner "
                                                           "stays one.")] = 1,
          insecure_no_auth: Annotated[bool, typer.Option(
              "--insecure-no-auth", help="Serve on a non-loopback address with authentication disabled "
                                         "(refused without this).")] = False,
          log_level: Annotated[LogLevel, typer.Option(case_sensitive=False)] = LogLevel.info) -> None:
    """Run the API, migrating SQLite first and, with the local dispatcher, the job runner."""
    from deepclust.app import server as serving
    from deepclust.app.core.migrate import upgrade
    from deepclust.app.core.settings import Settings

    setup_logging(log_level)
    settings = Settings(**{k: v for k, v in (("host", host), ("port", port)) if v is not None})
    try:
        warning = serving.check_bind(settings, insecure_no_auth)
    except serving.UnsafeBind as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if warning:
        typer.secho(warning, err=True, fg="red", bold=True)
    sock = bind(settings.host, settings.port)
    if settings.is_sqlite or migrate:
        upgrade(settings.database_url)
    runner = None
    if settings.dispatcher == "local":
        from deepclust.worker.local import LocalRunner

        runner = LocalRunner(settings)
        runner.start()
    base = f"http://{settings.host if ':' not in settings.host else f'[{settings.host}]'}:{settings.port}"
    banner = (f"deepclust dashboard at {base}/  (open it in a browser)\n"
              f"deepclust API at {base}/v1  (docs: {base}/docs, OpenAPI: {base}/openapi.json)\n"
              f"  database {settings.database_url}, data in {settings.data_dir}, dispatcher {settings.dispatcher}, "
              f"auth {'on' if settings.auth_enabled else 'off'}" + (f", {workers} workers" if workers > 1 else ""))
    try:
        serving.run_server(serving.uvicorn_config(settings, log_level.value, workers), sock,
                           on_started=lambda: print(banner, flush=True))
    finally:
        if runner is not None:
            runner.stop()
        sock.close()


def worker(queue: Annotated[Optional[str], typer.Option(help="Queue to consume (DEEPCLUST_QUEUE, default gpu).",
                                                        show_default=False)] = None,
           concurrency: Annotated[int, typer.Option(help="Jobs at once; 1 per GPU.")] = 1,
           check: Annotated[bool, typer.Option("--check", help="Print the device (DEEPCLUST_DEVICE, "
                                               "CUDA_VISIBLE_DEVICES), its memory and the library versions "
                                               "as JSON and exit: 0 if the device is usable, 1 if not.")] = False,
           log_level: Annotated[LogLevel, typer.Option(case_sensitive=False)] = LogLevel.info) -> None:
    """Run a Celery worker for the job queue (DEEPCLUST_DISPATCHER=celery)."""
    from deepclust.app.core.settings import Settings

    if check:
        import json

        from deepclust.worker.environment import describe

        info = describe(Settings().device)
        print(json.dumps(info, indent=1))
        raise typer.Exit(0 if info["usable"] else 1)
    from deepclust.worker.celery_app import app

    setup_logging(log_level)
    celery_level = "DEBUG" if log_level == LogLevel.trace else log_level.value.upper()
    argv = ["worker", "--queues", queue or Settings().queue, "--concurrency", str(concurrency),
            "--pool", "prefork", "--loglevel", celery_level, "--without-gossip", "--without-mingle"]
    app.worker_main(argv)


def migrate(revision: Annotated[str, typer.Argument(help="Revision to upgrade to.")] = "head",
            downgrade: Annotated[Optional[str], typer.Option(metavar="REVISION",
                                                             help="Go down to REVISION (e.g. base) instead.")] = None) -> None:
    """Apply the Alembic migrations to DEEPCLUST_DATABASE_URL."""
    from deepclust.app.core.migrate import downgrade as down
    from deepclust.app.core.migrate import upgrade
    from deepclust.app.core.settings import Settings

    setup_logging()
    settings = Settings()
    if downgrade:
        down(settings.database_url, downgrade)
    else:
        upgrade(settings.database_url, revision)
    print(f"database {settings.database_url}: at {downgrade or revision}")


@keys.command("create")
def keys_create(name: Annotated[str, typer.Option(help="Who the key is for; also names a new tenant.")],
                tenant: Annotated[Optional[str], typer.Option(help="Add the key to this existing tenant "
                                                                   "instead of a new one.")] = None,
                expires_days: Annotated[Optional[float], typer.Option(help="The key stops working after this "
                                                                           "many days.", show_default=False)] = None
                ) -> None:
    """Make an API key (printed once, stored hashed). A taken name is refused."""
    _keys_command(lambda keys, settings: keys.create_key_command(settings, name, tenant, expires_days))


@keys.command("list")
def keys_list() -> None:
    """Every key: id, tenant, name, created, expires, revoked (never the key itself)."""
    _keys_command(lambda keys, settings: keys.keys_table(keys.list_keys(settings)))


@keys.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...), from `deepclust keys list`.")]
                ) -> None:
    """Revoke a key: it answers 401 from the next request on."""
    _keys_command(lambda keys, settings: keys.revoke_key(settings, key_id))


def _keys_command(command) -> None:
    from deepclust.app.tenancy import keys
    from deepclust.app.core.settings import Settings

    setup_logging()
    try:
        print(command(keys, Settings()))
    except keys.KeyCommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
