"""Supervision of the bot's services: ordered start, restarts, graceful stop.

Theory of operation. A :class:`Supervisor` owns one nursery in which every
service runs. Services start one after the other, in the order given, with
``nursery.start``: a service is ready when it calls ``task_status.started()``,
so the database is open before the gateway connects, and the gateway before
the web server says ready.

When a service fails:

- a *critical* service (database, gateway) that raises, or that returns while
  the bot is not stopping, ends the process: the supervisor logs one ERROR
  line naming the service and why, cancels the rest and :meth:`Supervisor.run`
  returns exit status 1;
- a non-critical one is restarted after a capped exponential backoff (1 s,
  2 s, 4 s ... 60 s), reset once it has run for a minute without failing. A
  non-critical service that fails to start does not hold up the others.

Exit status: 0 after a clean stop; 1 after a critical failure, or when the
deadline or a second signal cut the drain short (work may have been lost).

SIGINT or SIGTERM (or :meth:`Supervisor.request_shutdown`) starts a graceful
shutdown: each service's ``drain`` (stop taking new work, finish what is in
flight) runs in reverse start order within the shutdown deadline (default
10 s); then the services are cancelled one at a time, again in reverse start
order, each stopped before the next is cancelled (the gateway stores its
sessions while the database is still open). A second signal, or the deadline,
cancels everything at once.

Exceptions::

    FatalServiceError(service, reason)   a critical service could not go on
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

log = logging.getLogger(__name__)

RunFn = Callable[..., Awaitable[Any]]
"""``async def run(*, task_status=trio.TASK_STATUS_IGNORED)``."""


class FatalServiceError(Exception):
    """A critical service failed or stopped; the process must end."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class ServiceState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclasses.dataclass(slots=True)
class Service:
    """One supervised service.

    Attributes:
        name: short name used in logs and stats (``database``, ``gateway``).
        run: the service's ``run`` coroutine function.
        critical: whether its failure ends the process.
        drain: optional coroutine function called at shutdown to stop taking
            new work and let in-flight work finish.
    """

    name: str
    run: RunFn
    critical: bool = False
    drain: Callable[[], Awaitable[None]] | None = None
    state: ServiceState = ServiceState.STARTING
    restarts: int = 0
    last_error: str | None = None


class Supervisor:
    """Starts services in order and keeps them running until shutdown."""

    def __init__(
        self,
        services: Sequence[Service],
        *,
        shutdown_timeout: float = 10.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        stable_after: float = 60.0,
        handle_signals: bool = True,
    ) -> None:
        self.services = list(services)
        self.shutdown_timeout = shutdown_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stable_after = stable_after
        self.handle_signals = handle_signals
        self.started = trio.Event()
        self.stopping = trio.Event()
        self.started_at: float | None = None
        self._cancel: trio.CancelScope | None = None
        #: Why the drain was cut short (deadline, second signal), else None.
        self.cut_short: str | None = None
        # Per started service: its cancel scope and an event set once it ended.
        self._running: list[tuple[trio.CancelScope, trio.Event]] = []

    def request_shutdown(self, reason: str = "requested") -> None:
        """Begin a graceful shutdown (idempotent)."""
        if not self.stopping.is_set():
            log.info("app.stopping", extra={"reason": reason})
            self.stopping.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> int:
        """Run until shutdown. Returns the exit status: 0 clean, 1 fatal."""
        fatal: FatalServiceError | None = None
        try:
            async with trio.open_nursery() as root:
                if self.handle_signals:
                    await root.start(self._watch_signals)
                root.start_soon(self._enforce_deadline)
                task_status.started()
                await self._run_services()
                root.cancel_scope.cancel()
        except* FatalServiceError as group:
            fatal = _first(group, FatalServiceError)
        if fatal is not None:
            log.error(
                "app.fatal", extra={"service": fatal.service, "error": fatal.reason}
            )
            return 1
        if self.cut_short is not None:
            # In-flight work was cancelled: say so in the exit status.
            log.error("app.stopped_unclean", extra={"reason": self.cut_short})
            return 1
        log.info("app.stopped")
        return 0

    async def _run_services(self) -> None:
        with trio.CancelScope() as self._cancel:
            async with trio.open_nursery() as nursery:
                for service in self.services:
                    if self.stopping.is_set():
                        break
                    await nursery.start(self._supervise, service)
                self.started_at = trio.current_time()
                self.started.set()
                log.info(
                    "app.started", extra={"services": [s.name for s in self.services]}
                )
                await self.stopping.wait()
                await self._drain()
                await self._stop_in_order()
                nursery.cancel_scope.cancel()

    async def _drain(self) -> None:
        for service in reversed(self.services):
            if service.drain is None or service.state is not ServiceState.RUNNING:
                continue
            try:
                await service.drain()
            except Exception as exc:
                log.warning(
                    "app.drain_failed",
                    extra={"service": service.name, "error": type(exc).__name__},
                )

    async def _stop_in_order(self) -> None:
        for scope, done in reversed(self._running):
            scope.cancel()
            await done.wait()

    async def _enforce_deadline(self) -> None:
        await self.stopping.wait()
        if not self.started.is_set():
            # Nothing is in flight before every service has started.
            self._hard_stop("stopped while starting")
            return
        await trio.sleep(self.shutdown_timeout)
        self.cut_short = "shutdown deadline passed"
        self._hard_stop(self.cut_short)

    def _hard_stop(self, reason: str) -> None:
        if self._cancel is not None and not self._cancel.cancel_called:
            log.warning("app.cancelling", extra={"reason": reason})
            self._cancel.cancel()

    async def _watch_signals(
        self, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self.stopping.is_set():
                    self.cut_short = "second signal"
                    self._hard_stop(self.cut_short)
                else:
                    self.request_shutdown(signal.Signals(signum).name)

    async def _supervise(self, service: Service, *, task_status: Any) -> None:
        """Run one service, restarting it while it is not critical."""
        scope, done = trio.CancelScope(), trio.Event()
        self._running.append((scope, done))
        try:
            with scope:
                await self._supervise_loop(service, task_status)
        finally:
            done.set()
            if self.stopping.is_set() and service.state is not ServiceState.FAILED:
                service.state = ServiceState.STOPPED

    async def _supervise_loop(self, service: Service, task_status: Any) -> None:
        reported = False
        attempt = 0
        while True:
            began = trio.current_time()
            failure, ready = await self._run_once(
                service, None if reported else task_status
            )
            reported = reported or ready
            if self.stopping.is_set():
                service.state = ServiceState.STOPPED
                return
            reason = _describe(failure) if failure else "stopped unexpectedly"
            service.last_error = reason
            if service.critical:
                service.state = ServiceState.FAILED
                raise FatalServiceError(service.name, reason) from failure
            if not reported:
                # A non-critical service that cannot start must not hold up
                # the services after it; it keeps retrying in the background.
                task_status.started()
                reported = True
            if trio.current_time() - began >= self.stable_after:
                attempt = 0
            delay = min(self.backoff_cap, self.backoff_base * 2**attempt)
            delay *= random.uniform(0.8, 1.0)
            attempt += 1
            service.restarts += 1
            service.state = ServiceState.RESTARTING
            log.warning(
                "app.service_restarting",
                extra={
                    "service": service.name,
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                    "error": reason,
                },
            )
            await trio.sleep(delay)

    async def _run_once(
        self, service: Service, task_status: Any
    ) -> tuple[BaseException | None, bool]:
        """Run ``service`` once.

        Returns:
            Its exception (None if it returned) and whether ``task_status``
            was reported started.
        """
        service.state = ServiceState.STARTING
        failure: BaseException | None = None
        ready = False
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                service.state = ServiceState.RUNNING
                log.info("app.service_started", extra={"service": service.name})
                if task_status is not None:
                    task_status.started()
                    ready = True
        except* Exception as group:
            failure = _first(group, Exception)
        if failure is not None and not self.stopping.is_set():
            level = logging.ERROR if service.critical else logging.WARNING
            log.log(
                level,
                "app.service_failed",
                exc_info=failure,
                extra={"service": service.name, "error": _describe(failure)},
            )
        return failure, ready

    def stats(self) -> dict[str, Any]:
        """Each service's state and restart count, and the uptime."""
        uptime = None
        if self.started_at is not None:
            uptime = round(trio.current_time() - self.started_at, 3)
        return {
            "uptime_s": uptime,
            "stopping": self.stopping.is_set(),
            "services": {
                s.name: {
                    "state": s.state.value,
                    "restarts": s.restarts,
                    "critical": s.critical,
                    "last_error": s.last_error,
                }
                for s in self.services
            },
        }


def _first(group: BaseExceptionGroup[Any], kind: type[Any]) -> Any:
    """The first leaf exception of ``kind`` in a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _first(exc, kind)
            if found is not None:
                return found
        elif isinstance(exc, kind):
            return exc
    return None


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
