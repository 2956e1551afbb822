"""`tmax-local convert` as a user runs it, including Hub repo ids (served from a local
Hugging Face cache: no network)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

KW = {"naming": "causal", "linear_k_heads": 2, "linear_v_heads": 4}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "tmax_local", "convert", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=full_env,
        check=False,
    )


def _read(path: Path):
    import gguf

    return gguf.GGUFReader(str(path))


def test_cli_converts_to_default_location(tiny_checkpoint, tmp_path):
    src = tiny_checkpoint(**KW)
    models = tmp_path / "models"
    proc = _run(str(src), "--quant", "q8_0", env={"TMAX_MODELS_DIR": str(models)})
    assert proc.returncode == 0, proc.stderr
    out = models / f"{src.name}-Q8_0.gguf"
    assert proc.stdout.strip() == f"wrote {out}"
    reader = _read(out)
    assert reader.get_field("general.architecture").contents() == "qwen35"
    # 2 global + 5 per layer + 9 per linear-attention layer (3) + 6 for the full-attention one
    assert len(reader.tensors) == 2 + 4 * 5 + 3 * 9 + 6


def test_cli_list_quants(tiny_checkpoint):
    proc = _run(str(tiny_checkpoint(**KW)), "--list-quants")
    assert proc.returncode == 0, proc.stderr
    scale = {"MB": 1e6, "GB": 1e9}
    rows = {
        m.group(1): float(m.group(2)) * scale[m.group(3)]
        for m in re.finditer(r"^(\S+)\s+([\d.]+) (MB|GB)", proc.stdout, re.MULTILINE)
    }
    from tmax_local.convert import QUANT_TYPES

    assert set(rows) == set(QUANT_TYPES)
    assert rows["F32"] > rows["F16"] > rows["Q8_0"] > rows["Q4_K_M"] > rows["Q2_K"] > 0


def test_cli_error_is_one_line(tiny_checkpoint, tmp_path):
    proc = _run(str(tiny_checkpoint(**KW)), "--quant", "Q4_K_XL", "-o", str(tmp_path / "x.gguf"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("tmax-local: unknown quantization type 'Q4_K_XL'")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []

    proc = _run(str(tmp_path / "no-such-dir"))
    assert proc.returncode == 1 and "checkpoint not found" in proc.stderr


def _fake_hub_cache(root: Path, repo: str, snapshots: dict[str, tuple[str, Path]]) -> Path:
    """A Hugging Face cache holding ``repo`` at the given refs → (commit, checkpoint dir)."""
    base = root / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    for ref, (commit, src) in snapshots.items():
        (base / "refs" / ref).write_text(commit)
        snap = base / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if not (snap / f.name).exists():
                (snap / f.name).symlink_to(f)
    return root


def test_repo_id_and_revision_from_hf_cache(tiny_checkpoint, tmp_path):
    main = tiny_checkpoint(**KW)
    step = tiny_checkpoint(
        naming="causal", linear_k_heads=4, linear_v_heads=4, dtype="float16", seed=3
    )
    cache = _fake_hub_cache(
        tmp_path / "hub",
        "tmax-test/tiny-tmax",
        {"main": ("a" * 40, main), "step-0200": ("b" * 40, step)},
    )
    env = {
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "TMAX_MODELS_DIR": str(tmp_path / "m"),
    }

    proc = _run("tmax-test/tiny-tmax", "--revision", "step-0200", "--quant", "F16", env=env)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "m" / "tiny-tmax-step-0200-F16.gguf"  # named after the revision
    assert _read(out).get_field("qwen35.ssm.time_step_rank").contents() == 4  # step-0200: K=V=4
    assert _read(out).get_field("qwen35.ssm.group_count").contents() == 4


def test_uncached_repo_offline_is_a_clear_error(tmp_path):
    env = {"HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    proc = _run("tmax-test/not-there", "-o", str(tmp_path / "x.gguf"), env=env)
    assert proc.returncode == 1
    assert "not in the local Hugging Face cache" in proc.stderr
    assert "Traceback" not in proc.stderr
