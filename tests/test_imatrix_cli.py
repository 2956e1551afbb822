"""`tmax-local imatrix`, `tmax-local check` and `convert --imatrix/--check` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

KW = {"linear_k_heads": 2, "linear_v_heads": 4}
pytestmark = pytest.mark.timeout(1800)  # subprocesses on a loaded 2-core machine


def _run(
    *args: str, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmax_local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dict(os.environ, **(env or {})),
    )


def test_imatrix_then_check_from_the_command_line(tiny_gguf, tmp_path):
    f32 = tiny_gguf("F32", **KW)
    out = tmp_path / "m.imatrix.gguf"
    p = _run(
        "imatrix", str(f32), "-o", str(out), "--chunk-size", "64", "--chunks", "3", "--threads", "2"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"wrote {out} (31 tensors, 3 chunks, 192 tokens)"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.imatrix.gguf"]

    q = tiny_gguf("Q4_K_M", **KW)
    js = tmp_path / "r.json"
    p = _run(
        "check",
        str(q),
        "--reference",
        str(f32),
        "--chunk-size",
        "64",
        "--chunks",
        "3",
        "--json",
        str(js),
        "--threads",
        "2",
    )
    assert p.returncode == 0, p.stderr
    data = json.loads(js.read_text())
    for key in ("kl_mean", "kl_p99", "top1_agreement", "ppl", "ppl_reference", "tokens"):
        assert key in data
    assert data["tokens"] == 3 * 31 and data["kl_mean"] > 0 and 0 <= data["top1_agreement"] <= 1
    assert "KL" in p.stdout and "top-1" in p.stdout


def test_user_text_and_errors_are_one_line(tiny_gguf, tmp_path):
    f32 = tiny_gguf("F32", **KW)
    txt = tmp_path / "notes.txt"
    txt.write_text("def f(x):\n    return x * 2\n" * 200, encoding="utf-8")
    p = _run(
        "imatrix",
        str(f32),
        "-o",
        str(tmp_path / "u.gguf"),
        "--text",
        str(txt),
        "--chunk-size",
        "64",
        "--chunks",
        "2",
    )
    assert p.returncode == 0, p.stderr
    r = __import__("gguf").GGUFReader(str(tmp_path / "u.gguf"))
    assert r.get_field("imatrix.datasets").contents() == [str(txt)]

    p = _run(
        "imatrix", str(f32), "-o", str(tmp_path / "v.gguf"), "--text", str(tmp_path / "nope.txt")
    )
    assert p.returncode == 1 and p.stderr.startswith("tmax-local: text file not found")
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    short = tmp_path / "short.txt"
    short.write_text("hi", encoding="utf-8")
    p = _run("check", str(f32), "--reference", str(f32), "--text", str(short))
    assert (
        p.returncode == 1 and "shorter than one chunk" in p.stderr and "Traceback" not in p.stderr
    )
    assert not (tmp_path / "v.gguf").exists()


def test_convert_imatrix_auto_and_check(tiny_checkpoint, tmp_path):
    src = tiny_checkpoint(**KW)
    models = tmp_path / "models"
    out = models / "t-IQ2_M.gguf"
    p = _run(
        "convert",
        str(src),
        "--quant",
        "IQ2_M",
        "-o",
        str(out),
        "--imatrix",
        "auto",
        "--imatrix-chunks",
        "4",
        "--check",
        "--check-chunks",
        "2",
        env={"TMAX_MODELS_DIR": str(models)},
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0] == f"wrote {out}"
    assert lines[1].startswith("check: t-IQ2_M.gguf: ") and "KL" in lines[1] and "top-1" in lines[1]
    cached = sorted(models.glob("*.imatrix.gguf"))
    assert len(cached) == 1
    # The 16-bit reference went to the models dir; nothing partial remains.
    assert not [x for x in models.iterdir() if x.name.startswith(".")]
    before = cached[0].stat().st_mtime_ns
    p = _run(
        "convert",
        str(src),
        "--quant",
        "IQ3_XXS",
        "-o",
        str(models / "t-IQ3_XXS.gguf"),
        "--imatrix",
        "auto",
        "--imatrix-chunks",
        "4",
    )
    assert p.returncode == 0, p.stderr
    assert (
        sorted(models.glob("*.imatrix.gguf")) == cached and cached[0].stat().st_mtime_ns == before
    )

    p = _run("convert", str(src), "--quant", "IQ1_S", "-o", str(tmp_path / "x.gguf"))
    assert p.returncode == 1 and "IQ1_S needs an importance matrix" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_list_quants_marks_the_imatrix_types(tiny_checkpoint):
    p = _run("convert", str(tiny_checkpoint(**KW)), "--list-quants")
    assert p.returncode == 0, p.stderr
    marked = {line.split()[0] for line in p.stdout.splitlines() if "needs --imatrix" in line}
    assert marked == {
        "Q2_K_S",
        "IQ3_XS",
        "IQ3_XXS",
        "IQ2_M",
        "IQ2_S",
        "IQ2_XS",
        "IQ2_XXS",
        "IQ1_M",
        "IQ1_S",
    }


def test_ctrl_c_during_collection_leaves_no_file(tiny_gguf, tmp_path):
    f32 = tiny_gguf("F32", **KW)
    out = tmp_path / "i.gguf"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tmax_local",
            "imatrix",
            str(f32),
            "-o",
            str(out),
            "--chunk-size",
            "64",
            "--chunks",
            "0",
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)  # model loaded, collecting (all chunks of the text: minutes of work)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
