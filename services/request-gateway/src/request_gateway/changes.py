"""Request changes fanned out to the waiters of this process (long polls, event streams).

Whichever process changes a request (the link worker applying a response, an API process
cancelling one) makes PostgreSQL send `NOTIFY gateway_requests, '<user id>'` when it commits
(a trigger, `db/migrations/gateway_2026_12_02t15_40_00_000000.py`). Each API process holds
one connection of its own listening on that channel, outside its pool, and wakes the
waiters of that user; they read what changed with a pooled connection and give it back
before waiting again, so a waiter holds no database connection while it waits.

A waiter arms its `Watch` before it reads, so a change committed between its read and its
wait still wakes it. While the listener is down, waiters re-check every `RECHECK_S`, and
all of them re-check when it is back (a notification sent meanwhile is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from types import FrameType, TracebackType
from typing import Any, Final, Self

import asyncpg
import structlog

from request_gateway.errors import GatewayErrorCode, gateway_error
from servicekit.errors import ApiError
from servicekit.metrics import declare_gauge

CHANNEL: Final = "gateway_requests"  # the migration's trigger notifies on it
RECONNECT_S: Final = 1.0
RECHECK_S: Final = 1.0  # how often waiters look while notifications are not arriving
READY_TIMEOUT_S: Final = 5.0
DRAIN_TIMEOUT_S: Final = 5.0
# After the last waiter let go, for its answer to go out: granian stops running the event
# loop as soon as the lifespan's shutdown returns.
FLUSH_S: Final = 0.2
CONNECT_TIMEOUT_S: Final = 10.0
# How long a wait over its user's share waits for one of theirs to end before it is refused:
# a client that closes a stream and reconnects at once (a page that navigates) arrives
# before the server has seen the old connection go, a moment later.
RELEASE_GRACE_S: Final = 1.0

OPEN_WAITS = declare_gauge(
    "gateway_open_waits",
    "Long polls and event streams waiting for request changes, in this process.",
    multiprocess_mode="livesum",
)

log = structlog.get_logger("request_gateway.changes")


class Watch:
    """One waiter's subscription to its user's request changes; a context manager that
    gives its place back on exit."""

    def __init__(self, feed: ChangeFeed, user_id: uuid.UUID) -> None:
        self.feed = feed
        self.user_id = user_id
        self.changed = asyncio.Event()

    def arm(self) -> None:
        """Call before reading: a change committed from now on ends the next `wait`."""
        self.changed.clear()

    async def wait(self, timeout_s: float) -> bool:
        """Until a change of the user's requests since `arm`, the feed closing, or the
        timeout; whether something (a change, a closing, a reconnection) woke it."""
        if not self.feed.listening:
            timeout_s = min(timeout_s, RECHECK_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), max(timeout_s, 0))
        return self.changed.is_set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.feed._release(self)


class ChangeFeed:
    """This process's listener and its waiters, bounded per user and in all."""

    def __init__(self, *, per_user: int, per_process: int) -> None:
        self.per_user = per_user
        self.per_process = per_process
        self.listening = False
        self.closing = False
        self._watches: dict[uuid.UUID, set[Watch]] = {}
        self._open = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._released = asyncio.Event()  # set, then replaced, whenever a watch ends

    def check_room(self, user_id: uuid.UUID) -> None:
        """Raise the error `open` would raise now (429 over the user's share, 503 when the
        process is full or stopping)."""
        if self.closing:
            raise _unavailable("The server is shutting down; try again shortly.")
        if len(self._watches.get(user_id, ())) >= self.per_user:
            raise gateway_error(
                429,
                GatewayErrorCode.TOO_MANY_WAITS,
                f"At most {self.per_user} long polls and event streams may be open per user.",
            )
        if self._open >= self.per_process:
            raise _unavailable("This server holds as many waits as it can; try again shortly.")

    async def wait_for_room(self, user_id: uuid.UUID, grace_s: float = RELEASE_GRACE_S) -> None:
        """`check_room`, giving a user whose share is full up to `grace_s` for one of their
        waits to end (see `RELEASE_GRACE_S`); a full or stopping process is refused at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while True:
            try:
                self.check_room(user_id)
                return
            except ApiError as refused:
                remaining = deadline - loop.time()
                if refused.status_code != 429 or remaining <= 0:
                    raise
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), remaining)

    async def open(self, user_id: uuid.UUID) -> Watch:
        """A new watch of the user's changes (use it as a context manager), once there is
        room for it (`wait_for_room`)."""
        await self.wait_for_room(user_id)
        watch = Watch(self, user_id)
        self._watches.setdefault(user_id, set()).add(watch)
        self._open += 1
        self._drained.clear()
        OPEN_WAITS.inc()
        return watch

    def _release(self, watch: Watch) -> None:
        watches = self._watches.get(watch.user_id)
        if watches is None or watch not in watches:
            return
        watches.discard(watch)
        if not watches:
            del self._watches[watch.user_id]
        self._open -= 1
        if not self._open:
            self._drained.set()
        OPEN_WAITS.dec()
        self._released.set()
        self._released = asyncio.Event()

    def wake(self, payload: str) -> None:
        """Wake the waiters of the user a notification names."""
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            log.warning("request_notification_unreadable")
            return
        for watch in self._watches.get(user_id, ()):
            watch.changed.set()

    def wake_all(self) -> None:
        """Wake every waiter to re-check (the listener came back, or the feed closes)."""
        for watches in self._watches.values():
            for watch in watches:
                watch.changed.set()

    def close(self) -> None:
        """Refuse new waits and end the open ones (they answer what they have)."""
        self.closing = True
        self.wake_all()

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Close, then wait until every waiter has let go and its answer could go out."""
        self.close()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            log.warning("request_waiters_not_drained", open=self._open)
            return False
        await asyncio.sleep(FLUSH_S)
        return True

    async def listen(self, dsn: str, ready: asyncio.Event | None = None) -> None:
        """Wake waiters on notifications until cancelled; reconnect when the link drops."""
        while True:
            connection: asyncpg.Connection[Any] | None = None
            try:
                connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, lambda *args: self.wake(args[3]))
                self.listening = True
                self.wake_all()  # whatever changed while not listening is unknown
                if ready is not None:
                    ready.set()
                await lost.wait()
                log.warning("request_notifications_lost", effect="waiters poll until back")
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("request_notifications_unavailable", error=str(exc))
            finally:
                self.listening = False
                if connection is not None and not connection.is_closed():
                    await connection.close(timeout=1)
            self.wake_all()
            await asyncio.sleep(RECONNECT_S)


@contextlib.asynccontextmanager
async def running_feed(dsn: str, *, per_user: int, per_process: int) -> AsyncIterator[ChangeFeed]:
    """A feed listening on `dsn` for the block's duration; drained (waiters ended, their
    answers sent) after, before the runtime closes."""
    feed = ChangeFeed(per_user=per_user, per_process=per_process)
    ready = asyncio.Event()
    listener = asyncio.create_task(feed.listen(dsn, ready))
    restore = _close_on_termination(feed)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=READY_TIMEOUT_S)
        yield feed
    finally:
        restore()
        await feed.drain()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


def _close_on_termination(feed: ChangeFeed) -> Callable[[], None]:
    """Close the feed the moment SIGTERM or SIGINT arrives; return the undo.

    A granian worker stops accepting at the signal but runs the lifespan's shutdown only
    once its open connections have ended: waits must end at the signal, not at shutdown.
    The handler the event loop installed (it wakes the loop, which then tells granian)
    still runs after this one. Outside the main thread, or with no handler to chain (a
    test's process), nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    chained: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def close_then(number: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(feed.close)
            previous(number, frame)

        signal.signal(signum, close_then)
        chained[signum] = previous

    def restore() -> None:
        for signum, previous in chained.items():
            signal.signal(signum, previous)

    return restore


def _unavailable(message: str) -> ApiError:
    code = str(GatewayErrorCode.WAITS_UNAVAILABLE)
    return ApiError(503, code, message, headers={"Retry-After": "1"})
