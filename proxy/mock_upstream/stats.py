"""`MockStats`: request/stream counters per model string and in total, and a way to await a condition."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

StreamOutcome = Literal["completed", "faulted", "closed_by_client"]
OTHER_MODELS: Final[str] = "<other>"


@dataclass(slots=True)
class Counters:
    """Counters of one model string (or all). A stream that started ends exactly one way:
    `streams_started == streams_completed + streams_faulted + streams_closed_by_client + active_streams`."""

    requests: int = 0  # model requests received, on any wire
    bad_requests: int = 0  # answered 400 before any fault: bad JSON, bad mock parameters
    faults_injected: int = 0
    streams_started: int = 0  # stream headers sent
    streams_completed: int = 0  # ended normally (the finish, then `[DONE]` or the wire's last event)
    streams_faulted: int = 0  # ended (or cut) by an injected fault
    streams_closed_by_client: int = 0  # the client went away (or cancelled) before the mock finished
    active_streams: int = 0  # now
    responses_completed: int = 0  # non-streaming answers sent
    responses_closed_by_client: int = 0  # non-streaming requests the client abandoned while waiting

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class MockStats:
    """What the mock saw. Every change wakes `wait_for` waiters; no polling or sleeping needed."""

    def __init__(self, max_bodies: int = 50, max_models: int = 1000) -> None:
        self.total = Counters()
        self.models: dict[str, Counters] = {}
        self.last_request_bodies: deque[dict[str, Any]] = deque(maxlen=max_bodies)
        self.last_authorization: str | None = None
        self._max_models = max_models
        self._waiters: list[tuple[Callable[[MockStats], bool], asyncio.Future[None]]] = []

    # ---- reading
    def for_model(self, model: str) -> Counters:
        """The counters of one model string (zeros if never seen)."""
        return self.models.get(model) or Counters()

    def snapshot(self, bodies: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "total": self.total.as_dict(),
            "models": {name: c.as_dict() for name, c in self.models.items()},
            "last_authorization": self.last_authorization,
        }
        if bodies:
            out["last_request_bodies"] = list(self.last_request_bodies)
        return out

    def reset(self) -> None:
        """Zero every counter except `active_streams` (those streams are still running)."""
        self.total = Counters(active_streams=self.total.active_streams)
        self.models = {
            name: Counters(active_streams=c.active_streams)
            for name, c in self.models.items()
            if c.active_streams
        }
        self.last_request_bodies.clear()
        self.last_authorization = None
        self._changed()

    async def wait_for(self, predicate: Callable[[MockStats], bool], timeout: float) -> None:
        """Return once `predicate(stats)` is true (checked now and on every change); else `TimeoutError`."""
        if predicate(self):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(
                f"mock stats condition not met within {timeout}s: {self.snapshot(bodies=False)}"
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # ---- recording (called by the server)
    def _counters(self, model: str | None) -> tuple[Counters, ...]:
        if model is None:
            return (self.total,)
        counters = self.models.get(model)
        if counters is None:
            if len(self.models) >= self._max_models:
                model = OTHER_MODELS
                counters = self.models.get(model)
            if counters is None:
                counters = self.models[model] = Counters()
        return (self.total, counters)

    def on_request(self, model: str | None, body: dict[str, Any] | None, authorization: str | None) -> None:
        for c in self._counters(model):
            c.requests += 1
        if body is not None:
            self.last_request_bodies.append(body)
        if authorization is not None:
            self.last_authorization = authorization
        self._changed()

    def on_bad_request(self, model: str | None) -> None:
        for c in self._counters(model):
            c.bad_requests += 1
        self._changed()

    def on_fault(self, model: str) -> None:
        for c in self._counters(model):
            c.faults_injected += 1
        self._changed()

    def on_stream_start(self, model: str) -> None:
        for c in self._counters(model):
            c.streams_started += 1
            c.active_streams += 1
        self._changed()

    def on_stream_end(self, model: str, outcome: StreamOutcome) -> None:
        for c in self._counters(model):
            c.active_streams -= 1
            if outcome == "completed":
                c.streams_completed += 1
            elif outcome == "faulted":
                c.streams_faulted += 1
            else:
                c.streams_closed_by_client += 1
        self._changed()

    def on_response(self, model: str, completed: bool) -> None:
        for c in self._counters(model):
            if completed:
                c.responses_completed += 1
            else:
                c.responses_closed_by_client += 1
        self._changed()

    def _changed(self) -> None:
        if not self._waiters:
            return
        for entry in list(self._waiters):
            predicate, future = entry
            if future.done():
                continue
            try:
                ok = predicate(self)
            except Exception as exc:
                future.set_exception(exc)
                continue
            if ok:
                future.set_result(None)
