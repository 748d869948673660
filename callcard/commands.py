"""Commands over the bus: a request and its reply between two processes.

A web worker or the dialler has no AMI session of its own; the bridge process holds the only
one. So their commands travel as requests on the serving part's topic and the answer comes
back on the caller's own reply topic. An error raised by the serving side is raised again on
the calling side as the same class (when both sides know it), so routes keep their clear
messages; a request nobody answers in time raises the caller's `timeout_error`.

Request: `{"id", "reply_to", "method", "args", "kwargs"}`; reply: `{"id", "result"}` or
`{"id", "error": <class name>, "message"}`. Arguments and results are JSON.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from callcard.bus import Bus, Subscription, until_stopped

log = logging.getLogger(__name__)

Errors = Mapping[str, type[Exception]]


def _error_name(exc: Exception, errors: Errors) -> str:
    """The nearest class of `exc` both sides know, or "" (the caller then raises its fallback)."""
    for cls in type(exc).__mro__:
        if errors.get(cls.__name__) is cls:
            return cls.__name__
    return ""


async def serve_commands(bus: Bus, topic: str, methods: Mapping[str, Callable[..., Any]], stop: asyncio.Event,
                         errors: Errors) -> None:
    """Answer requests on `topic` with `methods` until `stop` is set; each request runs in its own
    task, so one slow command never holds up the others."""
    sub = await bus.subscribe(topic)
    running: set[asyncio.Task[None]] = set()
    try:
        async for request in until_stopped(sub, stop):
            task = asyncio.create_task(_answer(bus, methods, errors, request))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        for task in running:
            task.cancel()
        await sub.close()


async def _answer(bus: Bus, methods: Mapping[str, Callable[..., Any]], errors: Errors,
                  request: dict[str, Any]) -> None:
    request_id, reply_to = request.get("id"), request.get("reply_to")
    if not isinstance(request_id, str) or not isinstance(reply_to, str):
        log.error("commands: dropped a request without id or reply_to: %r", request)
        return
    method = methods.get(str(request.get("method")))
    try:
        if method is None:
            raise LookupError(f"unknown command {request.get('method')!r}")
        result = method(*request.get("args", ()), **request.get("kwargs", {}))
        if inspect.isawaitable(result):
            result = await result
        reply: dict[str, Any] = {"id": request_id, "result": result}
    except Exception as exc:
        name = _error_name(exc, errors)
        if not name:
            log.exception("commands: %s failed", request.get("method"))
        reply = {"id": request_id, "error": name, "message": str(exc)}
    await bus.publish(reply_to, reply)


class CommandClient:
    """Sends requests to one serving topic and waits for each reply on a topic of its own."""

    def __init__(self, bus: Bus, topic: str, *, timeout: float, errors: Errors,
                 fallback: type[Exception], timeout_error: type[Exception]) -> None:
        self._bus = bus
        self._topic = topic
        self._timeout = timeout
        self._errors = errors
        self._fallback = fallback
        self._timeout_error = timeout_error
        self._reply_to = f"{topic}.reply.{uuid.uuid4().hex}"
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        await self._start()
        request_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._bus.publish(self._topic, {"id": request_id, "reply_to": self._reply_to, "method": method,
                                                  "args": list(args), "kwargs": kwargs})
            async with asyncio.timeout(self._timeout):
                reply = await future
        except TimeoutError:
            raise self._timeout_error(
                f"{method}: no answer on {self._topic} within {self._timeout:g} s (is its process running?)"
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise self._errors.get(reply["error"], self._fallback)(reply.get("message", ""))
        return reply.get("result")

    async def _start(self) -> None:
        """Subscribe to the reply topic before the first request goes out."""
        async with self._starting:
            if self._reader is None:
                sub = await self._bus.subscribe(self._reply_to)
                self._reader = asyncio.create_task(self._read(sub), name=f"replies-{self._topic}")

    async def _read(self, sub: Subscription) -> None:
        try:
            while True:
                reply = await sub.get()
                future = self._pending.get(str(reply.get("id")))
                if future is not None and not future.done():
                    future.set_result(reply)
        finally:
            await sub.close()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
