"""How ``serve`` stops: on SIGTERM, SIGINT or SIGHUP exactly as at the end of its input.

A signal's default action ends the process on the spot, without its exit handlers, and one of
them is what stops the embedded PostgreSQL (db/connection/embedded.py). So while the server runs, these
signals only ask it to stop: over stdio its input is ended, and the SDK does what it does at
EOF (cancels the calls in flight, leaves the lifespan, which closes the pool); over HTTP uvicorn
shuts down gracefully (requests in flight get ``HTTP_SHUTDOWN_GRACE_SECONDS`` to finish, then
the lifespan closes). ``serve`` then returns normally, with exit code 0: the shutdown was asked
for and done. A second signal forces the stop (the run is cancelled) for a shutdown that hangs.
"""

import asyncio
import logging
import os
import select
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress

import anyio
import uvicorn

log = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How long HTTP requests in flight may take to finish once a stop is asked for; then they are
# cancelled and the lifespan closes. A client's open event stream never finishes by itself, so
# without a bound uvicorn would wait for it forever. Well inside Docker's 10 s before SIGKILL.
HTTP_SHUTDOWN_GRACE_SECONDS = 5


def run_until_signalled(main: Callable[[], Awaitable[None]], stop: Callable[[], None]) -> None:
    """Run ``main`` on a new event loop; the first shutdown signal calls ``stop`` (which must
    make ``main`` return soon), a second one cancels ``main``."""
    anyio.run(_run_until_signalled, main, stop)


async def _run_until_signalled(
    main: Callable[[], Awaitable[None]], stop: Callable[[], None]
) -> None:
    # The event loop's own handlers rather than a receiving task: no task group, so an error
    # of ``main`` (a refused start, say) reaches the caller as it is.
    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as forced:
        stopping = False

        def on_signal(signum: signal.Signals) -> None:
            nonlocal stopping
            if stopping:
                log.warning("%s again: stopping now", signum.name)
                forced.cancel()
                return
            stopping = True
            log.info("%s: shutting down (send it again to force)", signum.name)
            stop()

        for signum in SHUTDOWN_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await main()
        finally:
            for signum in SHUTDOWN_SIGNALS:
                loop.remove_signal_handler(signum)


@contextmanager
def endable_stdin() -> Iterator[Callable[[], None]]:
    """Put a pipe between the process's stdin and fd 0, and yield ``end_input``: after it the
    server reads EOF on fd 0, even though the client keeps its end of stdin open.

    Why not cancel the server instead: the SDK reads stdin in a worker thread that nothing can
    interrupt, and leaving the run waits for that read, i.e. for the client's next line. A pump
    thread copies stdin into the pipe and, on ``end_input``, closes the pipe; it is a daemon
    thread, so its own blocked read never keeps the process from exiting.
    """
    try:
        client = os.dup(0)
    except OSError:  # no stdin at all: EOF is all the server will ever read
        yield lambda: None
        return
    pipe_out, pipe_in = os.pipe()
    wake_out, wake_in = os.pipe()
    os.dup2(pipe_out, 0)
    os.close(pipe_out)
    # The pump owns (and closes) its own descriptors: none is closed under a blocked call.
    pump = threading.Thread(
        target=_pump, args=(os.dup(client), pipe_in, wake_out), name="stdin pump", daemon=True
    )
    pump.start()

    def end_input() -> None:
        with suppress(BrokenPipeError):  # the pump has already ended the input
            os.write(wake_in, b"x")

    try:
        yield end_input
    finally:
        end_input()
        os.close(wake_in)
        os.dup2(client, 0)
        os.close(client)


def _pump(source: int, sink: int, wake: int) -> None:
    """Copy ``source`` into ``sink`` until ``source`` ends or ``wake`` is written to; then
    close ``sink`` (the reader's EOF). poll() rather than a selector: stdin may be a regular
    file or /dev/null, which epoll refuses."""
    poller = select.poll()
    poller.register(source, select.POLLIN)
    poller.register(wake, select.POLLIN)
    try:
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if wake in ready:
                return
            chunk = os.read(source, 65536)
            if not chunk:
                return
            while chunk:
                chunk = chunk[os.write(sink, chunk) :]
    except OSError:  # the client's end broke, or the reader left: either way, the input ends
        return
    finally:
        for fd in (sink, source, wake):
            os.close(fd)


class UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handlers: after a graceful stop they raise the signal
    again with its default action, which kills the process before its exit handlers run.
    ``run_until_signalled`` handles the signals instead and calls ``stop``."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        """What uvicorn does on its first SIGTERM or SIGINT: let requests in flight finish
        (for up to its ``timeout_graceful_shutdown``), then the lifespan shutdown."""
        self.should_exit = True
