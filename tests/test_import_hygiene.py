"""The core (agent, runtime, shell, approval, converter) must import without Textual,
and importing any module must do no work (no output)."""

import pkgutil
import subprocess
import sys

import pytest

import tmax_local

HEADLESS_EXCLUDED = ("tmax_local.tui",)


def _modules() -> list[str]:
    import tmax_local.convert  # mapped from convert/ by pyproject: not found by walking tmax_local/

    names = ["tmax_local", "tmax_local.convert"]
    walked = [*pkgutil.walk_packages(tmax_local.__path__, prefix="tmax_local.")]
    walked += pkgutil.walk_packages(tmax_local.convert.__path__, prefix="tmax_local.convert.")
    for info in walked:
        if info.name.startswith(HEADLESS_EXCLUDED) or info.name == "tmax_local.__main__":
            continue
        names.append(info.name)
    return sorted(names)


def test_the_converter_is_part_of_the_package_namespace():
    import tmax_local.convert

    assert tmax_local.convert.__file__.replace("\\", "/").endswith("convert/__init__.py")
    assert len([m for m in _modules() if m.startswith("tmax_local.convert.")]) >= 1


@pytest.mark.parametrize("module", _modules())
def test_core_module_imports_without_textual_and_silently(module):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == ""


def test_every_package_directory_is_listed_for_the_wheel():
    """A subpackage missing from pyproject's explicit list works in a checkout but not when installed."""
    import tomllib
    from pathlib import Path

    root = Path(tmax_local.__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"tmax_local.convert"} | {
        "tmax_local" + ("." + ".".join(d.relative_to(root / "tmax_local").parts) if d != root / "tmax_local" else "")
        for d in (root / "tmax_local").rglob("*")
        if d.is_dir() and (d / "__init__.py").exists()
    } | {"tmax_local"}
    on_disk |= {
        "tmax_local.convert." + ".".join(d.relative_to(root / "convert").parts)
        for d in (root / "convert").rglob("*")
        if d.is_dir() and (d / "__init__.py").exists()
    }
    assert on_disk <= listed, sorted(on_disk - listed)
