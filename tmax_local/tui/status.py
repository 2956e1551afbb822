"""The status bar: model, backend, speed, context fill, RAM, step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tmax_local.agent import harness

CONTEXT_WARN_FRACTION = 0.8


def _k(tokens: int) -> str:
    if tokens >= 1024 and tokens % 1024 == 0:
        return f"{tokens // 1024}k"
    if tokens >= 10_000:
        return f"{tokens / 1000:.1f}k"
    return str(tokens)


@dataclass(frozen=True)
class StatusInfo:
    model: str = "no model"
    quant: str = ""
    backend: str = "CPU"
    layers_offloaded: str = ""
    loading: str = ""  # e.g. "loading 40%"; empty once loaded
    gen_tok_s: float | None = None
    cached: int | None = None  # prompt tokens a model server took from its cache last turn
    context_used: int = 0
    ctx: int = harness.CONTEXT_TOKENS
    ram: str = ""
    step: int = 0
    max_steps: int = harness.MAX_STEPS
    mode: str = "ask"
    sandbox: str = ""  # e.g. "sandbox workspace, no net"; empty until the shell runs
    state: str = "idle"

    @property
    def context_fraction(self) -> float:
        return self.context_used / self.ctx if self.ctx else 0.0

    @property
    def context_warning(self) -> bool:
        return self.context_fraction >= CONTEXT_WARN_FRACTION


def default_ram_probe() -> str:
    """Resident memory of this process (and its children, e.g. the shell)."""
    import psutil

    proc = psutil.Process()
    rss = proc.memory_info().rss
    return f"{rss / 2**30:.1f} GiB" if rss >= 2**30 else f"{rss / 2**20:.0f} MiB"


class StatusBar(Widget):
    """One line of figures; turns the context field to a warning as it fills."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    info: reactive[StatusInfo] = reactive(StatusInfo, layout=False)

    def __init__(self, ram_probe: Callable[[], str] | None = None, *, id: str | None = None):
        super().__init__(id=id)
        self._ram_probe = ram_probe or default_ram_probe

    def on_mount(self) -> None:
        self.refresh_ram()
        self.set_interval(2.0, self.refresh_ram)

    def refresh_ram(self) -> None:
        ram = self._ram_probe()
        if ram != self.info.ram:
            self.info = replace(self.info, ram=ram)

    def update_info(self, **changes: Any) -> None:
        self.info = replace(self.info, **changes)

    def render(self) -> Text:
        i = self.info
        t = Text(no_wrap=True, overflow="ellipsis")
        model = i.model + (f" {i.quant}" if i.quant else "")
        t.append(model, style="bold")
        backend = i.backend + (f" {i.layers_offloaded}" if i.layers_offloaded else "")
        t.append(f" │ {backend}")
        if i.loading:
            t.append(f" │ {i.loading}", style="italic")
        if i.gen_tok_s is not None:
            t.append(f" │ {i.gen_tok_s:.1f} tok/s")
        if i.cached is not None:
            t.append(f" │ cached {_k(i.cached)}")
        pct = round(100 * i.context_fraction)
        ctx = f" │ ctx {_k(i.context_used)}/{_k(i.ctx)} {pct}%"
        t.append(ctx, style="bold reverse" if i.context_warning else "")
        if i.ram:
            t.append(f" │ RAM {i.ram}")
        t.append(f" │ step {i.step}/{i.max_steps}")
        t.append(f" │ {i.mode}")
        if i.sandbox:
            t.append(f" │ {i.sandbox}")
        t.append(f" │ {i.state}", style="italic")
        return t
