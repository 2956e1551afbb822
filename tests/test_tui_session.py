"""The app's session module: no Textual, one-way imports, status figures computed right."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from tmax_local.tui.session import describe_engine, offloaded_layers


def test_session_module_imports_neither_textual_nor_the_app() -> None:
    code = (
        "import sys\n"
        "import tmax_local.tui.session\n"
        "bad = [m for m in sys.modules if m.startswith(('textual', 'tmax_local.tui.app',"
        " 'tmax_local.convert.api'))]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("requested", "shown"),
    [(9, "9/24 layers"), (24, "24/24 layers"), (30, "24/24 layers"), (-1, "24/24 layers")],
)
def test_offloaded_layers_compare_as_numbers(requested: int, shown: str) -> None:
    # The bug: "9" >= "24" as text, so 9 of 24 layers showed as 24/24.
    assert offloaded_layers(requested, {"qwen35.block_count": "24"}) == shown


def test_status_of_a_partly_offloaded_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: True)
    llm = SimpleNamespace(
        metadata={"general.name": "tmax-2b", "general.file_type": "15", "qwen35.block_count": "24"},
        model_params=SimpleNamespace(n_gpu_layers=9),
    )
    engine = SimpleNamespace(llm=llm, name="x.gguf", context_limit=4096)
    info = describe_engine(engine)  # type: ignore[arg-type]
    assert (info.name, info.quant, info.layers, info.context_limit) == (
        "tmax-2b",
        "Q4_K_M",
        "9/24 layers",
        4096,
    )
    assert info.backend in ("CUDA", "Metal")
