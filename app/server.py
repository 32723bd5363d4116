"""How `deepclust serve` runs the API: the start-up refusals and the uvicorn options.

Kept apart from the command-line parser so any front end (argparse, Typer) calls the same thing:

    check_bind(settings, insecure_no_auth)        # raises UnsafeBind, or returns a warning to print
    config = uvicorn_config(settings, log_level, workers)
    run_server(config, sock, on_started)          # blocks until the server stops
"""
from __future__ import annotations

import contextlib
import os

from deepclust.app.core.settings import LOOPBACK_HOSTS, Settings


class UnsafeBind(RuntimeError):
    pass


def check_bind(settings: Settings, insecure_no_auth: bool = False) -> str | None:
    """Refuse to serve without keys on an address others can reach; ``insecure_no_auth`` overrides
    it, and the returned warning must then be shown."""
    if settings.auth_enabled or settings.host in LOOPBACK_HOSTS:
        return None
    if not insecure_no_auth:
        raise UnsafeBind(f"refusing to serve on {settings.host} with authentication disabled (DEEPCLUST_AUTH="
                         f"{settings.auth}): anyone who can reach this address could read and delete every "
                         "dataset. Make keys with `deepclust keys create` and set DEEPCLUST_AUTH=enabled, bind "
                         "to 127.0.0.1, or pass --insecure-no-auth if this really is what you want.")
    return (f"WARNING: serving on {settings.host} WITHOUT AUTHENTICATION (--insecure-no-auth): every client "
            "that can reach this address has full access to all data.")


def uvicorn_config(settings: Settings, log_level: str, workers: int = 1):
    """One process: the app built from ``settings``. Several: each worker builds its own from the
    environment, which gets the settings this process resolved from its command line (the bind
    address decides whether keys are needed)."""
    import uvicorn

    # In-flight requests get shutdown_grace_seconds once a stop is asked for; then they are cancelled.
    # A client that half-closes before the body it announced gets a 400 (app/http/protocol.py).
    from deepclust.app.http.protocol import H11HalfCloseProtocol

    common = {"log_level": log_level, "log_config": None, "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
              "http": H11HalfCloseProtocol}
    if workers <= 1:
        from deepclust.app.main import create_app

        return uvicorn.Config(create_app(settings), **common)
    os.environ.update({"DEEPCLUST_HOST": settings.host, "DEEPCLUST_PORT": str(settings.port),
                       "DEEPCLUST_AUTH": settings.auth, "DEEPCLUST_DATA_DIR": str(settings.data_dir),
                       "DEEPCLUST_DATABASE_URL": settings.database_url})
    return uvicorn.Config("deepclust.app.main:create_app", factory=True, workers=workers, **common)


def run_server(config, sock, on_started=None) -> None:
    """Serve ``config`` on the bound ``sock``: in this process, or in ``config.workers`` children."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn re-raises the stop signal once it has shut down, which would end this process
            # with 130/143 before the caller's clean-up runs; a stop that was asked for is a clean exit.
            with super().capture_signals():
                yield
                self._captured_signals.clear()

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and on_started is not None:  # listening and the app's startup done
                on_started()

    if config.workers > 1:
        if on_started is not None:
            on_started()
        Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()
    else:
        Server(config).run(sockets=[sock])
