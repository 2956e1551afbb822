"""Thread → UI hand-offs: an event pump that collapses bursts, and the approver bridge.

The agent runs in a worker thread and calls its event callback for every token. Posting
one Textual message per token would flood the message queue, so `EventPump.put` appends
to a deque and posts a single `Drain` message until the UI thread has emptied it: events
stay in order, a burst costs one message.

`ApprovalBridge` is the agent's approver callback: it posts the request to the UI and
blocks the agent thread on a `concurrent.futures.Future` until the user answers (or the
run is stopped, which answers for the user).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.message import Message
from textual.message_pump import MessagePump

if TYPE_CHECKING:
    from tmax_local.approval import Answer, ApprovalRequest

__all__ = ["ApprovalBridge", "ApprovalNeeded", "Drain", "EventPump"]


@dataclass
class Drain(Message):
    """Events wait in the pump (posted from a worker thread)."""

    pump: EventPump


class EventPump:
    """Collects events from any thread; the UI drains them in order.

    At most one `Drain` message is in flight, and after each drain the pump stays quiet for
    ``quiet_s`` (the UI drains again on a timer if more arrived): a model streaming 100
    tokens a second wakes the UI ~25 times a second, not 100.
    """

    def __init__(self, target: MessagePump, quiet_s: float = 0.04) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._events: deque[object] = deque()
        self._posted = False
        self.quiet_s = quiet_s
        self.messages_posted = 0

    def put(self, event: object) -> None:
        with self._lock:
            self._events.append(event)
            if self._posted:
                return
            self._posted = True
            self.messages_posted += 1
        self._target.post_message(Drain(self))

    def drain(self, *, rearm: bool = True) -> list[object]:
        """Take every waiting event. With ``rearm`` the next `put` posts again at once;
        without it the caller must call `rearm()` later (see `TmaxApp.on_drain`)."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
            if rearm:
                self._posted = False
        return events

    def rearm(self) -> list[object]:
        """End a quiet period: return what arrived meanwhile, or re-enable posting."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
            if not events:
                self._posted = False
        return events


@dataclass
class ApprovalNeeded(Message):
    """The agent thread waits for the user's answer to `request`."""

    request: ApprovalRequest
    future: Future[Answer] = field(repr=False)


class ApprovalBridge:
    """The approver callback given to the agent: blocks its thread until the UI answers."""

    def __init__(
        self, target: MessagePump, on_cancel: Callable[[ApprovalRequest], Answer]
    ) -> None:
        self._target = target
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._pending: Future[Answer] | None = None
        self._pending_request: ApprovalRequest | None = None

    def __call__(self, request: ApprovalRequest) -> Answer:
        future: Future[Answer] = Future()
        with self._lock:
            self._pending = future
            self._pending_request = request
        if not self._target.post_message(ApprovalNeeded(request, future)):
            future.set_result(self._on_cancel(request))  # the app is closing
        try:
            return future.result()
        finally:
            with self._lock:
                if self._pending is future:
                    self._pending = None
                    self._pending_request = None

    @property
    def waiting(self) -> bool:
        with self._lock:
            return self._pending is not None and not self._pending.done()

    def answer(self, value: Answer) -> None:
        """Deliver the user's answer to the waiting agent thread (UI thread)."""
        with self._lock:
            future = self._pending
        if future is not None and not future.done():
            future.set_result(value)

    def cancel(self) -> None:
        """Answer a pending request for the user (the run is being stopped)."""
        with self._lock:
            future, request = self._pending, self._pending_request
        if future is not None and request is not None and not future.done():
            future.set_result(self._on_cancel(request))
