"""`tmax-local doctor` as a user runs it: text and --json, with a real converted model found
in the models directory, a broken rules file, and the GPU-reinstall advice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tmax_local import doctor


def _doctor(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmax_local", "doctor", *args],
        capture_output=True, text=True, timeout=180, check=False, cwd=cwd,
        env={**os.environ, **env},
    )  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, tiny_gguf) -> tuple[dict[str, str], Path]:
    models = tmp_path / "models"
    models.mkdir()
    gguf = tiny_gguf("Q8_0", naming="causal", linear_k_heads=2, linear_v_heads=4)
    (models / "tiny-Q8_0.gguf").symlink_to(gguf)
    env = {
        "TMAX_MODELS_DIR": str(models),
        "TMAX_CONFIG_DIR": str(tmp_path / "config"),
        "TMAX_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_CACHE": str(tmp_path / "hf"),
    }
    return env, gguf


def test_doctor_json_reports_build_machine_models_and_health(setup, tmp_path):
    import llama_cpp
    import psutil

    env, gguf = setup
    proc = _doctor("--json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    ll = r["llama_cpp"]
    assert ll["version"] == llama_cpp.__version__
    assert ll["gpu_offload"] == bool(llama_cpp.llama_supports_gpu_offload())
    assert "CPU" in ll["backends"] and ll["cpu_features"]
    assert any(d.get("type") == "CPU" for d in ll["devices"])
    m = r["machine"]
    assert m["physical_cores"] == psutil.cpu_count(logical=False)
    assert 0 < m["ram_available"] <= m["ram_total"] == psutil.virtual_memory().total
    assert m["models_dir"] == env["TMAX_MODELS_DIR"] and m["models_dir_free"] > 0
    [model] = r["models"]
    assert model["path"].endswith("tiny-Q8_0.gguf") and model["quant"] == "Q8_0"
    assert model["architecture"] == "qwen35" and model["size"] == gguf.stat().st_size
    assert model["fits"] is True and model["estimate"]["total"] > model["size"]
    rec = r["recommendation"]
    assert rec["based_on"].endswith("tiny-Q8_0.gguf") and rec["quant"] and rec["n_ctx"]
    assert "kv_per_token" in rec["formula"]
    h = r["health"]
    assert h["pty_bash"]["ok"] and "bash" in h["pty_bash"]["detail"]
    assert h["tree_sitter_bash"]["ok"] and h["rules"]["ok"] and h["colours"]["ok"]
    assert h["sandbox"]["ok"] in (None, True, False)


def test_doctor_text_and_a_broken_rules_file(setup, tmp_path):
    env, _ = setup
    cfg = Path(env["TMAX_CONFIG_DIR"])
    cfg.mkdir()
    (cfg / "rules.toml").write_text("allow = [unclosed\n")
    proc = _doctor(env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    for heading in ("llama.cpp", "machine", "models", "recommendation", "health"):
        assert f"\n{heading}\n" in f"\n{out}"
    assert "✗ rules" in out and "rules.toml" in out
    assert "✓ pty_bash" in out and "tiny-Q8_0.gguf" in out


def test_reinstall_advice_names_the_backend_flag():
    cmd = doctor.reinstall_command("CUDA", "0.3.36")
    assert cmd.startswith('CMAKE_ARGS="-DGGML_CUDA=on" ')
    assert cmd.endswith("-m pip install --force-reinstall --no-cache-dir llama-cpp-python==0.3.36")
    assert "-DGGML_METAL=on" in doctor.reinstall_command("Metal", "0.3.36")


def test_sandbox_hook_is_reported(monkeypatch, tmp_path):
    monkeypatch.setitem(doctor.HEALTH_HOOKS, "sandbox", lambda: {"ok": True, "detail": "landlock"})
    assert doctor.health_section(tmp_path)["sandbox"] == {"ok": True, "detail": "landlock"}
