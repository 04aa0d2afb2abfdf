"""Serving HTTP while the server starts: ``/healthz`` says "not ready" until the database is
connected and migrated, instead of nothing listening at all.

Uvicorn binds its socket only once the app's lifespan has started, and the lifespan is where
the server waits for its database (``db.connection.startup``): a server started before its database had no
``/healthz`` to answer. :class:`StartInBackground` answers uvicorn's lifespan start at once and
runs the app's own in the background; :class:`Readiness` is where it stands. Until it is ready,
every request but the health probe gets 503 with ``Retry-After``. If the start fails, whoever
runs the server is called back (``call_on_failure``) to stop it; the error is kept in
``failure`` for its one-line report.

On stdio there is nothing to answer before the database is there: the lifespan runs before the
first message is read, so a client's ``initialize`` is answered once the database is connected
(or the server exits with one line when ``BUGHIVE_DB_CONNECT_RETRY_SECONDS`` is spent).
"""

from collections.abc import Callable

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STARTING = "connecting to the database"


class Readiness:
    """Whether the server has started: ``starting`` (with the reason it is still waiting),
    ``ready`` or ``failed``. One per server; it starts once per process."""

    def __init__(self) -> None:
        self.status = "starting"
        self.reason = STARTING
        self.failure: BaseException | None = None
        self._on_failure: list[Callable[[], None]] = []

    @property
    def is_ready(self) -> bool:
        return self.status == "ready"

    def waiting(self, reason: str) -> None:
        """Still starting, because of ``reason`` (safe for an unauthenticated probe)."""
        if self.status == "starting":
            self.reason = reason

    def ready(self) -> None:
        self.status, self.reason = "ready", "ready"

    def fail(self, failure: BaseException) -> None:
        if self.failure is None:
            self.status, self.reason, self.failure = "failed", "start-up failed", failure
            for callback in self._on_failure:
                callback()

    def call_on_failure(self, callback: Callable[[], None]) -> None:
        self._on_failure.append(callback)


class StartInBackground:
    """ASGI middleware: answers the lifespan start at once and starts ``app`` in the background;
    refuses requests (but ``open_paths``) with 503 until ``app`` has started."""

    def __init__(self, app: ASGIApp, readiness: Readiness, open_paths: tuple[str, ...]) -> None:
        self.app = app
        self.readiness = readiness
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        opened = scope["type"] != "http" or scope.get("path") in self.open_paths
        if not (opened or self.readiness.is_ready):
            await self._not_ready(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _not_ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "error": "not_ready",
                "error_description": f"the server is starting ({self.readiness.reason}); "
                "retry in a few seconds",
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )
        await response(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        to_app, from_server = anyio.create_memory_object_stream[Message](1)
        stopped = anyio.Event()

        async def app_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.readiness.ready()
            elif message["type"].startswith("lifespan.shutdown."):
                stopped.set()

        async def run_app() -> None:
            try:
                await self.app(scope, from_server.receive, app_send)
            except Exception as exc:  # the app's start failed (it also sent startup.failed)
                self.readiness.fail(exc)
            finally:
                stopped.set()

        async with to_app, from_server, anyio.create_task_group() as group:
            await to_app.send(await receive())  # lifespan.startup
            group.start_soon(run_app)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            if self.readiness.is_ready:
                await to_app.send({"type": "lifespan.shutdown"})
                await stopped.wait()
            group.cancel_scope.cancel()  # a start still waiting for the database, if any
        await send({"type": "lifespan.shutdown.complete"})
