"""`deepclust serve | worker | migrate | keys create`."""
from __future__ import annotations

import argparse
import logging
import sys

from app.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)))
                 if v is not None}
    return Settings(**overrides)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.migrate import upgrade

    settings = _settings(args)
    if settings.is_sqlite or args.migrate:
        upgrade(settings.database_url)
    runner = None
    if settings.dispatcher == "local":
        from worker.local import LocalRunner

        runner = LocalRunner(settings)
        runner.start()
    base = f"http://{settings.host}:{settings.port}"
    print(f"deepclust API at {base}/v1  (docs: {base}/docs, OpenAPI: {base}/openapi.json)\n"
          f"  database {settings.database_url}, data in {settings.data_dir}, dispatcher {settings.dispatcher}, "
          f"auth {'on' if settings.auth_enabled else 'off'}", flush=True)
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    finally:
        if runner is not None:
            runner.stop()
    return 0


def worker(args: argparse.Namespace) -> int:
    from worker.celery_app import app

    settings = Settings()
    argv = ["worker", "--queues", args.queue or settings.queue, "--concurrency", str(args.concurrency),
            "--pool", "prefork", "--loglevel", args.log_level.upper(), "--without-gossip", "--without-mingle"]
    app.worker_main(argv)
    return 0


def migrate(args: argparse.Namespace) -> int:
    from app.migrate import downgrade, upgrade

    settings = Settings()
    if args.downgrade:
        downgrade(settings.database_url, args.downgrade)
    else:
        upgrade(settings.database_url, args.revision)
    print(f"database {settings.database_url}: at {args.downgrade or args.revision}")
    return 0


def keys_create(args: argparse.Namespace) -> int:
    from app.auth import create_key
    from app.db import engine_for, new_session
    from app.migrate import upgrade

    settings = Settings()
    if settings.is_sqlite:
        upgrade(settings.database_url)
    with new_session(engine_for(settings.database_url)) as session:
        try:
            key, row = create_key(session, args.name, args.tenant)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"key {row.id} for tenant {row.tenant_id} (shown once, keep it):\n{key}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepclust", description="Deep clustering as a service.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run migrations (SQLite), the API and, with the local dispatcher, the job runner")
    p.add_argument("--host", help="bind address (DEEPCLUST_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (DEEPCLUST_PORT, default 8000)")
    p.add_argument("--migrate", action="store_true", help="also upgrade a non-SQLite database first")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=serve)

    p = sub.add_parser("worker", help="run a Celery worker for the job queue (DEEPCLUST_DISPATCHER=celery)")
    p.add_argument("--queue", help="queue to consume (DEEPCLUST_QUEUE, default gpu)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs at once; 1 per GPU")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=worker)

    p = sub.add_parser("migrate", help="apply the Alembic migrations to DEEPCLUST_DATABASE_URL")
    p.add_argument("revision", nargs="?", default="head")
    p.add_argument("--downgrade", metavar="REVISION", help="go down to REVISION (e.g. base) instead")
    p.set_defaults(func=migrate)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="make an API key (printed once, stored hashed)")
    p.add_argument("--name", required=True, help="who the key is for; also names a new tenant")
    p.add_argument("--tenant", help="add the key to this existing tenant instead of a new one")
    p.set_defaults(func=keys_create)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
