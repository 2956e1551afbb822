"""`--model` resolution: files, folders, checkpoints converted once, repo ids reused offline."""

from __future__ import annotations

import json
import os

import pytest

from tmax_local.agent import resolve
from tmax_local.errors import ModelNotFound


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("TMAX_MODELS_DIR", str(d))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return d


def test_files_folders_and_scripts(tmp_path, models_dir):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert resolve.resolve_model(str(f)) == resolve.ResolvedModel("gguf", f, "m.gguf")
    folder = tmp_path / "ggufs"
    folder.mkdir()
    (folder / "tmax-2b-Q8_0.gguf").write_bytes(b"GGUF")
    (folder / "tmax-2b-Q4_K_M.gguf").write_bytes(b"GGUF")
    assert resolve.resolve_model(str(folder), "q8_0").path.name == "tmax-2b-Q8_0.gguf"
    with pytest.raises(ModelNotFound, match="none matches"):
        resolve.resolve_model(str(folder), "Q6_K")
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["hi"]))
    r = resolve.resolve_model(f"script:{script}")
    assert r.kind == "script"
    backend = resolve.load_backend(r)
    assert backend.replies == ["hi"]
    with pytest.raises(ModelNotFound):
        resolve.resolve_model(str(tmp_path / "nothing-here.gguf"))
    with pytest.raises(ModelNotFound):
        resolve.resolve_model("not a model")


def test_repo_id_reuses_converted_file_without_network(models_dir):
    ready = models_dir / "tmax-2b-Q4_K_M.gguf"
    ready.write_bytes(b"GGUF")
    r = resolve.resolve_model("allenai/tmax-2b")
    assert r.path == ready and r.name == "allenai/tmax-2b"
    with pytest.raises(ModelNotFound, match="tmax-local convert allenai/tmax-2b --quant Q8_0"):
        resolve.resolve_model("allenai/tmax-2b", "Q8_0")


def test_checkpoint_dir_is_converted_once(tmp_path, models_dir):
    pytest.importorskip("transformers")
    from tmax_local.testing.checkpoints import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny-ckpt")
    r = resolve.resolve_model(str(ckpt), "Q8_0", progress=False)
    assert r.path == models_dir / "tiny-ckpt-Q8_0.gguf" and r.path.is_file()
    stamp = r.path.stat().st_mtime_ns
    again = resolve.resolve_model(str(ckpt), "Q8_0", progress=False)
    assert again.path == r.path and again.path.stat().st_mtime_ns == stamp
    engine = resolve.load_backend(again, _small_options())
    assert engine.context_limit == 2048 and engine.count_tokens("<|im_end|>") == 1
    engine.close()


def _small_options():
    from tmax_local.agent.engine import EngineOptions

    return EngineOptions(ctx=2048, threads=2)


def test_gguf_repo_file_choice():
    files = [
        "README.md",
        "tmax-2b-Q4_K_M.gguf",
        "tmax-2b-Q8_0.gguf",
        "sub/tmax-2b-Q4_K_M-00001.gguf",
    ]
    assert resolve._pick_gguf_file(files, "Q8_0") == "tmax-2b-Q8_0.gguf"
    assert resolve._pick_gguf_file(files, "Q4_K_M") == "tmax-2b-Q4_K_M.gguf"
    assert resolve._pick_gguf_file(files, "Q6_K") is None


def test_offline_check_is_quick_and_honours_the_env(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve.hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    assert resolve.hub_reachable(timeout=1.0) is False
    assert os.environ["HF_ENDPOINT"].endswith(":9")
