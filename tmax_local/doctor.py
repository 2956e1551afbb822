"""`tmax-local doctor`: what this machine can run, and whether everything works.

One command to run first, or to paste into a bug report (``--json`` prints the same report as
JSON on stdout). Sections:

- llama.cpp build: version, CPU features it uses, GPU offload compiled in and which backends
  and devices; when the machine has a GPU that the build cannot use, the exact reinstall
  command;
- machine: physical cores, RAM total/available, free disk where models go;
- models found (models dir and the Hugging Face cache): path, quant, size, architecture from
  the GGUF header, and whether each fits in RAM at the default context
  (`tmax_local.memory.choose`, the same computation `run` and the app use);
- a recommendation (quant, context, KV-cache type) from the model's real sizes, with the
  formula (`tmax_local.memory`);
- health: PTY and bash, tree-sitter-bash, terminal colours, rules/config files, sandbox.

Exit status: 0 when every health check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LLAMA_CPP_PYTHON = "llama-cpp-python"

# Extra health checks other parts of tmax-local register (e.g. the sandbox):
# name -> function returning {"ok": bool | None, "detail": str}. ``None`` = not applicable.
HEALTH_HOOKS: dict[str, Callable[[], dict[str, Any]]] = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--cwd", type=Path, default=None, help="project directory whose rules are checked"
    )


def run(args: argparse.Namespace) -> int:
    report = collect(cwd=args.cwd or Path.cwd())
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(render(report))
    return 0 if all(c.get("ok") is not False for c in report["health"].values()) else 1


# -- llama.cpp -------------------------------------------------------------------------
def _ggml_registry() -> tuple[list[str], list[dict[str, Any]]]:
    """(backend names, devices) from ggml's backend registry, through ctypes."""
    import ctypes

    import llama_cpp

    libdir = Path(llama_cpp.__file__).parent / "lib"
    lib = None
    for name in ("libggml.so", "libggml.dylib", "ggml.dll"):
        if (libdir / name).exists():
            lib = ctypes.CDLL(str(libdir / name))
            break
    if lib is None:
        return [], []
    p = ctypes.c_void_p
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype = p
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [p]
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_name.argtypes = [p]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [
        p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    backends = [
        (lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)) or b"").decode()
        for i in range(lib.ggml_backend_reg_count())
    ]
    kinds = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "accelerator"}
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            {
                "name": (lib.ggml_backend_dev_name(dev) or b"").decode(),
                "description": (lib.ggml_backend_dev_description(dev) or b"").decode(),
                "type": kinds.get(lib.ggml_backend_dev_type(dev), "other"),
                "memory_total": total.value,
                "memory_free": free.value,
            }
        )
    return backends, devices


def _cpu_features(system_info: str) -> list[str]:
    """The ``NAME = 1`` entries of llama.cpp's system info (the CPU features it uses)."""
    feats = []
    for item in system_info.replace("\n", "|").split("|"):
        if "=" not in item:
            continue
        name, _, value = item.rpartition("=")
        name = name.split(":")[-1].strip()
        if value.strip() == "1" and name:
            feats.append(name)
    return feats


def detect_gpus() -> list[dict[str, str]]:
    """GPUs this machine has, whatever llama.cpp was built with (driver-level facts)."""
    found: list[dict[str, str]] = []
    if sys.platform == "darwin" and platform.machine() == "arm64":
        found.append({"kind": "Metal", "name": "Apple Silicon GPU"})
    smi = shutil.which("nvidia-smi")
    if smi:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout  # fmt: skip
            for line in out.strip().splitlines():
                found.append({"kind": "CUDA", "name": line.strip()})
    if not any(g["kind"] == "CUDA" for g in found) and Path("/proc/driver/nvidia/gpus").is_dir():
        for d in sorted(Path("/proc/driver/nvidia/gpus").iterdir()):
            found.append({"kind": "CUDA", "name": f"NVIDIA GPU {d.name}"})
    if Path("/dev/kfd").exists():
        found.append({"kind": "HIP", "name": "AMD GPU (ROCm)"})
    return found


CMAKE_FLAGS = {"CUDA": "-DGGML_CUDA=on", "Metal": "-DGGML_METAL=on", "HIP": "-DGGML_HIP=on",
               "Vulkan": "-DGGML_VULKAN=on"}  # fmt: skip


def reinstall_command(kind: str, version: str) -> str:
    return (
        f'CMAKE_ARGS="{CMAKE_FLAGS[kind]}" {sys.executable} -m pip install --force-reinstall '
        f"--no-cache-dir {LLAMA_CPP_PYTHON}=={version}"
    )


def llama_section() -> dict[str, Any]:
    try:
        import llama_cpp
    except ImportError as err:
        return {"ok": False, "error": f"llama-cpp-python is not installed ({err})"}
    from llama_cpp import llama_cpp as lib

    info = (lib.llama_print_system_info() or b"").decode("utf-8", "replace")
    try:
        backends, devices = _ggml_registry()
    except (OSError, AttributeError) as err:
        backends, devices = [], [{"error": str(err)}]
    offload = bool(lib.llama_supports_gpu_offload())
    gpu_backends = [b for b in backends if b and b.upper() not in ("CPU", "BLAS", "RPC")]
    machine_gpus = detect_gpus()
    out: dict[str, Any] = {
        "ok": True,
        "version": llama_cpp.__version__,
        "system_info": info.strip(),
        "cpu_features": _cpu_features(info),
        "gpu_offload": offload,
        "backends": backends,
        "gpu_backends": gpu_backends,
        "devices": devices,
        "machine_gpus": machine_gpus,
        "reinstall": None,
    }
    if machine_gpus and not offload:
        out["reinstall"] = reinstall_command(machine_gpus[0]["kind"], llama_cpp.__version__)
    return out


# -- machine ---------------------------------------------------------------------------
def _free_disk(path: Path) -> tuple[str, int | None]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return str(path), shutil.disk_usage(probe).free
    except OSError:
        return str(path), None


def machine_section() -> dict[str, Any]:
    import psutil

    from tmax_local.paths import models_dir

    vm = psutil.virtual_memory()
    models, free = _free_disk(models_dir())
    hf_cache, hf_free = _free_disk(_hf_cache())
    return {
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cpus": psutil.cpu_count(logical=True),
        "ram_total": vm.total,
        "ram_available": vm.available,
        "models_dir": models,
        "models_dir_free": free,
        "hf_cache": hf_cache,
        "hf_cache_free": hf_free,
    }


def _hf_cache() -> Path:
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "huggingface"
    return base / "hub"


# -- models ----------------------------------------------------------------------------
def find_models() -> list[Path]:
    """GGUF files in the models dir and in the Hugging Face cache's snapshots."""
    from tmax_local.paths import models_dir

    seen: set[Path] = set()
    found: list[Path] = []
    candidates = list(models_dir().glob("*.gguf")) if models_dir().is_dir() else []
    cache = _hf_cache()
    if cache.is_dir():
        candidates += sorted(cache.glob("models--*/snapshots/*/**/*.gguf"))
    for p in candidates:
        with contextlib.suppress(OSError):
            real = p.resolve(strict=True)
            if real not in seen and not p.name.startswith("."):
                seen.add(real)
                found.append(p)
    return found


def models_section(available: int) -> list[dict[str, Any]]:
    from tmax_local import memory

    out: list[dict[str, Any]] = []
    for path in find_models():
        try:
            facts = memory.ModelFacts.from_gguf(path)
        except memory.ModelFileError as err:
            out.append({"path": str(path), "error": str(err)})
            continue
        choice = memory.choose(facts, available)
        out.append(
            {
                "path": str(path),
                "name": facts.name,
                "architecture": facts.architecture,
                "quant": facts.quant,
                "size": facts.file_bytes,
                "trained_context": facts.context_length,
                "kv_bytes_per_token_f16": memory.kv_bytes_per_token(facts),
                "default_context": choice.n_ctx,
                "default_kv": choice.type_k,
                "estimate": choice.estimate.as_dict(),
                "fits": choice.fits,
                "warning": choice.warning,
            }
        )
    return out


def tmax_2b_reference() -> Any:
    """TMax-2B (Qwen3.5-2B shapes) at Q4_K_M as converted by tmax-local (1.40 GB of tensors),
    for a recommendation when no model is present yet."""
    from tmax_local import memory

    return memory.ModelFacts(
        path=None, architecture="qwen35", quant="Q4_K_M", weights_bytes=1_400_000_000,
        file_bytes=1_400_000_000, n_layer=24, n_embd=2048, n_ff=6144, n_head=8, n_head_kv=2,
        key_length=256, value_length=256, n_vocab=248_320, full_attention_interval=4,
        ssm_conv_kernel=4, ssm_state_size=128, ssm_group_count=16, ssm_inner_size=2048,
        ssm_v_heads=16, context_length=262_144, name="tmax-2b (reference)",
    )  # fmt: skip


def recommendation_section(models: list[dict[str, Any]], available: int) -> dict[str, Any]:
    from tmax_local import memory

    facts = None
    for m in models:
        if "error" not in m and m["architecture"] == "qwen35":
            facts = memory.ModelFacts.from_gguf(m["path"])
            break
    if facts is None:
        facts = tmax_2b_reference()
    advice = memory.recommend(facts, available)
    formula = (
        "weights + kv_per_token × ctx + recurrent state + compute buffers + base; "
        f"kv_per_token = {facts.n_attention_layers} attention layers × {facts.n_head_kv} KV "
        f"heads × ({facts.key_length} + {facts.value_length}) × bytes per element "
        f"= {memory.kv_bytes_per_token(facts) / 1024:.1f} KiB at f16"
    )
    out: dict[str, Any] = {
        "based_on": str(facts.path) if facts.path else facts.name,
        "ram_budget": memory.budget(available),
        "formula": formula,
    }
    if advice is None:
        out.update(quant=None, n_ctx=None, kv=None, note="not even the smallest setting fits")
    else:
        out.update(
            quant=advice.quant,
            n_ctx=advice.n_ctx,
            kv=advice.kv,
            weights=advice.weights_bytes,
            total=advice.total_bytes,
            flags=f"--quant {advice.quant} --ctx {advice.n_ctx}"
            + (
                f" --cache-type-k {advice.kv} --cache-type-v {advice.kv}"
                if advice.kv != "f16"
                else ""
            ),
        )
    return out


# -- health ----------------------------------------------------------------------------
def _check(fn: Callable[[], str]) -> dict[str, Any]:
    try:
        return {"ok": True, "detail": fn()}
    except Exception as err:
        return {"ok": False, "detail": f"{type(err).__name__}: {err}"}


def _pty_bash() -> str:
    from tmax_local.shell import PtyShell

    bash = shutil.which("bash")
    if bash is None:
        raise RuntimeError("bash not found on PATH")
    version = subprocess.run(
        [bash, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()[0]
    t0 = time.perf_counter()
    with PtyShell(Path.cwd(), timeout=10) as shell:
        result = shell.run("echo tmax-doctor-ok")
    if "tmax-doctor-ok" not in result.output or result.exit_code != 0:
        raise RuntimeError(f"the PTY shell answered {result.output!r} ({result.exit_code})")
    return f"{bash}: {version}; a command ran in {1000 * (time.perf_counter() - t0):.0f} ms"


def _tree_sitter() -> str:
    from tmax_local.approval.syntax import parse_parts

    parts, problems = parse_parts("echo hi | grep h && ls -l")
    if len(parts) != 3:
        raise RuntimeError(f"parsed {len(parts)} parts instead of 3 ({problems})")
    import tree_sitter_bash

    return f"tree-sitter-bash loads and parses (module {tree_sitter_bash.__name__})"


def _colours() -> str:
    term = os.environ.get("TERM", "")
    colorterm = os.environ.get("COLORTERM", "")
    if os.environ.get("NO_COLOR"):
        depth = "none (NO_COLOR is set)"
    elif colorterm in ("truecolor", "24bit"):
        depth = "24-bit"
    elif "256" in term:
        depth = "256"
    elif term in ("", "dumb"):
        depth = "none"
    else:
        depth = "16"
    tty = "a terminal" if sys.stdout.isatty() else "not a terminal"
    return (
        f"TERM={term or '(unset)'} COLORTERM={colorterm or '(unset)'}: {depth} colours; "
        f"stdout is {tty}"
    )


def _rules(cwd: Path) -> Callable[[], str]:
    def check() -> str:
        from tmax_local.approval.store import (
            PROJECT_FILE,
            load_project_rules,
            load_saved_rules,
            rules_path,
        )

        saved = load_saved_rules()
        project = load_project_rules(cwd)
        where = rules_path()
        return (
            f"{where} ({'absent' if not where.exists() else 'ok'}, {len(saved.allow)} allow / "
            f"{len(saved.deny)} deny); {cwd / PROJECT_FILE} "
            f"({'absent' if not (cwd / PROJECT_FILE).exists() else 'ok'}, "
            f"{len(project.allow)} allow / {len(project.deny)} deny)"
        )

    return check


def _sandbox() -> dict[str, Any]:
    hook = HEALTH_HOOKS.get("sandbox")
    if hook is not None:
        return hook()
    from tmax_local.shell import sandbox

    return _check_dict(sandbox.health)


def _check_dict(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return dict(fn())
    except Exception as err:
        return {"ok": False, "detail": f"{type(err).__name__}: {err}"}


def health_section(cwd: Path) -> dict[str, dict[str, Any]]:
    out = {
        "pty_bash": _check(_pty_bash),
        "tree_sitter_bash": _check(_tree_sitter),
        "colours": _check(_colours),
        "rules": _check(_rules(cwd)),
        "sandbox": _sandbox(),
    }
    for name, hook in HEALTH_HOOKS.items():
        if name not in out:
            out[name] = hook()
    return out


# -- the report ------------------------------------------------------------------------
def collect(cwd: Path) -> dict[str, Any]:
    from tmax_local import __version__

    machine = machine_section()
    models = models_section(machine["ram_available"])
    return {
        "tmax_local": __version__,
        "llama_cpp": llama_section(),
        "machine": machine,
        "models": models,
        "recommendation": recommendation_section(models, machine["ram_available"]),
        "health": health_section(cwd),
    }


def _b(n: int | float | None) -> str:
    if n is None:
        return "?"
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def render(r: dict[str, Any]) -> str:
    lines = [f"tmax-local {r['tmax_local']} doctor", ""]
    ll = r["llama_cpp"]
    lines.append("llama.cpp")
    if "error" in ll:
        lines.append(f"  ✗ {ll['error']}")
    else:
        gpu = (
            f"yes ({', '.join(ll['gpu_backends']) or 'backend unknown'})"
            if ll["gpu_offload"]
            else "no (CPU only)"
        )
        lines += [
            f"  version        llama-cpp-python {ll['version']}",
            f"  CPU features   {' '.join(ll['cpu_features']) or '?'}",
            f"  GPU offload    {gpu}",
            f"  backends       {', '.join(ll['backends']) or '?'}",
        ]
        for d in ll["devices"]:
            if "error" in d:
                continue
            mem = f", {_b(d['memory_total'])}" if d["memory_total"] else ""
            lines.append(f"  device         {d['name']}: {d['description']} ({d['type']}{mem})")
        for g in ll["machine_gpus"]:
            lines.append(f"  machine GPU    {g['name']} ({g['kind']})")
        if ll["reinstall"]:
            lines.append("  ! this machine has a GPU but this build cannot use it; reinstall with:")
            lines.append(f"    {ll['reinstall']}")
    m = r["machine"]
    lines += [
        "",
        "machine",
        f"  system         {m['os']}, Python {m['python']}",
        f"  CPU            {m['physical_cores']} physical cores ({m['logical_cpus']} logical)",
        f"  RAM            {_b(m['ram_available'])} available of {_b(m['ram_total'])}",
        f"  models dir     {m['models_dir']} ({_b(m['models_dir_free'])} free)",
        f"  HF cache       {m['hf_cache']} ({_b(m['hf_cache_free'])} free)",
        "",
        "models",
    ]
    if not r["models"]:
        lines.append("  (none found: `tmax-local convert allenai/tmax-2b` or start the app)")
    for mod in r["models"]:
        if "error" in mod:
            lines.append(f"  ✗ {mod['path']}: {mod['error']}")
            continue
        mark = "✓" if mod["fits"] else "!"
        lines.append(
            f"  {mark} {mod['path']}\n"
            f"      {mod['architecture']} {mod['quant']}, {_b(mod['size'])}; at "
            f"{mod['default_context']} tokens ({mod['default_kv']} KV) needs about "
            f"{_b(mod['estimate']['total'])}" + ("" if mod["fits"] else f" — {mod['warning']}")
        )
    rec = r["recommendation"]
    lines += ["", "recommendation"]
    if rec["quant"] is None:
        lines.append(f"  ! {rec['note']} (budget {_b(rec['ram_budget'])})")
    else:
        lines.append(
            f"  {rec['quant']}, {rec['n_ctx']} tokens of context, {rec['kv']} KV cache: about "
            f"{_b(rec['total'])} of a {_b(rec['ram_budget'])} budget  ({rec['flags']})"
        )
    lines.append(f"  based on {rec['based_on']}")
    lines.append(f"  memory ≈ {rec['formula']}")
    lines += ["", "health"]
    for name, c in r["health"].items():
        mark = {True: "✓", False: "✗", None: "-"}[c.get("ok")]
        lines.append(f"  {mark} {name:<17}{c.get('detail', '')}")
    return "\n".join(lines)
