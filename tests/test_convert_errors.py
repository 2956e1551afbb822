"""Every bad input gives one clear ConversionError and leaves no file behind."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tmax_local.errors import ConversionError, Interrupted

KW = {"naming": "causal", "linear_k_heads": 2, "linear_v_heads": 4}


def _clone(src: Path, dst: Path, *, copy_weights: bool = False) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.suffix == ".safetensors" and not copy_weights:
            (dst / f.name).symlink_to(f)
        else:
            shutil.copy(f, dst / f.name)
    return dst


def _edit_config(path: Path, **changes) -> None:
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path) -> Path:
    return _clone(tiny_checkpoint(**KW), tmp_path / "ckpt")


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def _convert_fails(
    src: Path, out_dir: Path, match: str, quant: str = "F32", **kw
) -> ConversionError:
    from tmax_local.convert import convert_checkpoint

    with pytest.raises(ConversionError, match=match) as info:
        convert_checkpoint(src, quant, out_dir / "model.gguf", progress=False, **kw)
    assert "\n" not in str(info.value)
    assert list(out_dir.iterdir()) == [], "a failed conversion left files behind"
    return info.value


def test_missing_config(ckpt, out_dir):
    (ckpt / "config.json").unlink()
    _convert_fails(ckpt, out_dir, "no config.json")


def test_invalid_config(ckpt, out_dir):
    (ckpt / "config.json").write_text("{ this is not json")
    _convert_fails(ckpt, out_dir, "config.json is not valid JSON")


def test_unsupported_architecture_is_named(ckpt, out_dir):
    _edit_config(ckpt, architectures=["LlamaForCausalLM"])
    _convert_fails(ckpt, out_dir, "unsupported architecture 'LlamaForCausalLM'")


def test_missing_tokenizer(ckpt, out_dir):
    (ckpt / "tokenizer.json").unlink()
    _convert_fails(ckpt, out_dir, "tokenizer.json missing")


def test_truncated_safetensors(tiny_checkpoint, tmp_path, out_dir):
    src = _clone(tiny_checkpoint(**KW), tmp_path / "t", copy_weights=True)
    f = src / "model.safetensors"
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size // 2)
    _convert_fails(src, out_dir, "truncated safetensors")


def test_corrupt_safetensors_header(tiny_checkpoint, tmp_path, out_dir):
    src = _clone(tiny_checkpoint(**KW), tmp_path / "c", copy_weights=True)
    with open(src / "model.safetensors", "r+b") as fh:
        (_n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8)
        fh.write(b"\xff\xfe garbage")
    _convert_fails(src, out_dir, "corrupt safetensors header")


def test_missing_tensor(ckpt, out_dir):
    _edit_config(
        ckpt,
        num_hidden_layers=5,
        layer_types=["linear_attention"] * 3 + ["full_attention", "linear_attention"],
    )
    _convert_fails(ckpt, out_dir, r"missing tensor 'layers\.4\.")


def test_wrong_shape(ckpt, out_dir):
    _edit_config(ckpt, intermediate_size=1024)
    _convert_fails(
        ckpt, out_dir, r"'model\.layers\.0\.mlp\.\w+_proj\.weight' has shape .* expected"
    )


def test_unknown_quant(ckpt, out_dir):
    _convert_fails(ckpt, out_dir, "unknown quantization type 'Q4_K_XL'", quant="Q4_K_XL")


def test_bad_tensor_type_override(ckpt, out_dir):
    _convert_fails(ckpt, out_dir, "unknown tensor type", quant="Q4_K_M", tensor_types=["ffn=Q9_K"])
    _convert_fails(ckpt, out_dir, "PATTERN=TYPE", quant="Q4_K_M", tensor_types=["ffn"])


def test_unwritable_output_location(ckpt, tmp_path):
    from tmax_local.convert import convert_checkpoint

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ConversionError, match=r"cannot write|failed"):
        convert_checkpoint(ckpt, "F32", blocker / "model.gguf", progress=False)
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(ConversionError, match="cannot write"):
                convert_checkpoint(ckpt, "F32", ro / "model.gguf", progress=False)
            assert list(ro.iterdir()) == []
        finally:
            ro.chmod(0o700)


def test_full_output_location(ckpt, out_dir):
    """A write that hits the size limit (as on a full disk) fails cleanly: exit 1, one line,
    no partial file."""
    import resource
    import signal

    def limit() -> None:  # runs in the child
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tmax_local",
            "convert",
            str(ckpt),
            "--quant",
            "F32",
            "--output",
            str(out_dir / "model.gguf"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "not enough space" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("quant", ["F32", "Q4_K_M"])
def test_ctrl_c_leaves_nothing(ckpt, out_dir, quant):
    from tmax_local.convert.api import _convert

    seen = []

    def interrupt(tensor) -> None:
        seen.append(tensor.name)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted") as info:
        _convert(ckpt, quant, out_dir / "model.gguf", progress=False, on_tensor=interrupt)
    assert info.value.exit_code == 130
    assert len(seen) == 5
    assert list(out_dir.iterdir()) == []


def test_ctrl_c_during_llama_quantizer_returns_promptly(ckpt, out_dir, monkeypatch):
    """The quantizer is one long C call; Ctrl-C must not wait for it, and whatever it writes
    after the interrupt is removed when it ends."""
    import _thread
    import threading

    import llama_cpp

    from tmax_local.convert import convert_checkpoint

    real = llama_cpp.llama_model_quantize
    started, release = threading.Event(), threading.Event()

    seen = {}

    def slow_quantize(*args):  # stands in for a quantization that takes minutes
        started.set()
        # released by the test only after convert_checkpoint has already returned
        seen["released_after_return"] = release.wait(60)
        return real(*args)

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", slow_quantize)
    watcher = threading.Thread(target=lambda: started.wait(60) and _thread.interrupt_main())
    watcher.start()
    try:
        with pytest.raises(Interrupted):
            convert_checkpoint(ckpt, "Q4_K_M", out_dir / "model.gguf", progress=False)
        assert not release.is_set()  # returned while the quantizer was still "running"
    finally:
        release.set()
        watcher.join()
        # Wait on what the worker does, not on Thread.join: a Ctrl-C landing inside the
        # converter's worker.join(0.1) can leave CPython 3.11 reporting the worker as not
        # alive while it still runs, and join() then returns at once (seen under load).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            "released_after_return" not in seen or any(out_dir.iterdir())
        ):
            time.sleep(0.05)
        for t in threading.enumerate():
            if t.name == "llama-quantize":
                t.join(120)
    assert list(out_dir.iterdir()) == []
    assert seen["released_after_return"]


def test_values_beyond_f16_range(tiny_checkpoint, tmp_path, out_dir):
    """A bf16 weight of 1e5 cannot be stored as F16: clear error, no file (BF16 still works)."""
    from tmax_local.convert import convert_checkpoint
    from tmax_local.convert.safetensors_io import read_header

    src = _clone(tiny_checkpoint(**KW), tmp_path / "big", copy_weights=True)
    ref = read_header(src / "model.safetensors")["model.layers.0.mlp.up_proj.weight"]
    with open(src / "model.safetensors", "r+b") as fh:
        fh.seek(ref.offset)
        fh.write(struct.pack("<H", 0x47C3))  # bf16 bits of ~1.0e5
    _convert_fails(src, out_dir, "outside the F16 range", quant="F16")
    assert convert_checkpoint(src, "BF16", out_dir / "ok.gguf", progress=False).is_file()
