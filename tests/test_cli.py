import subprocess
import sys


def test_help_lists_program_and_exits_zero():
    proc = subprocess.run(
        [sys.executable, "-m", "tmax_local", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "tmax-local" in proc.stdout


def test_version():
    proc = subprocess.run(
        [sys.executable, "-m", "tmax_local", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("tmax-local ")
