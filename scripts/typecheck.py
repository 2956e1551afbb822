"""Type-check the package as it is installed: `convert/` is `tmax_local.convert`.

mypy names modules after directories, so it is pointed at a link tree that mirrors the
installed layout (`tmax_local/*` plus `tmax_local/convert` → `convert/`); paths in its report
are mapped back to the repository's. Settings: `[tool.mypy]` in pyproject.toml.
Usage: python scripts/typecheck.py [extra mypy args]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="tmax-mypy-") as tmp:
        tree = Path(tmp) / "tmax_local"
        tree.mkdir()
        for entry in (ROOT / "tmax_local").iterdir():
            if entry.name not in ("convert", "__pycache__"):
                (tree / entry.name).symlink_to(entry)
        (tree / "convert").symlink_to(ROOT / "convert")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--cache-dir",
                str(ROOT / ".mypy_cache"),
                "-p",
                "tmax_local",
                *argv,
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
    out = (proc.stdout + proc.stderr).replace("tmax_local/convert/", "convert/")
    sys.stdout.write(out)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
