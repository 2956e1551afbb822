"""Helpers for driving the real app with Textual's Pilot: a scripted model's replies, the
app with no animation, and waits on a condition (never a sleep)."""

from __future__ import annotations

import time

from tmax_local.tui.app import TmaxApp, TuiOptions, make_app


def call(command: str, prose: str = "Let me do that.") -> str:
    """A model reply: ``prose``, then one bash tool call running ``command``."""
    return (
        f"{prose}\n<tool_call>\n<function=bash>\n<parameter=command>\n{command}\n"
        "</parameter>\n</function>\n</tool_call>"
    )


def fixed_app(opts: TuiOptions) -> TmaxApp:
    """The app of `make_app`, with no animation and a fixed RAM figure."""
    app = make_app(opts)
    app.deterministic = True
    app.ram_probe = lambda: "1 GiB"
    return app


async def wait_until(pilot, predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await pilot.pause(0.02)


async def start(pilot, task: str, timeout: float = 30.0) -> TmaxApp:
    """Wait for the model and the shell (``timeout`` s each), then submit ``task``."""
    app: TmaxApp = pilot.app
    await wait_until(pilot, lambda: app.session.model_ready, "model loaded", timeout)
    await wait_until(pilot, lambda: app.session.shell is not None, "shell started", timeout)
    app.query_one("#task").value = task
    await pilot.press("enter")
    return app
