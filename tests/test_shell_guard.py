"""The shell's snapshot files are watched, not trusted (tmax_local/shell/guard.py).

Unit tests drive `SnapshotFiles` the way bash's epilogue does (a fixed number of opens
for writing) and then tamper with the file in each way a process of the shell could:
in place, by replacing it, through a hard link, through a mapping, by chmod.  The PtyShell
tests prove the forgeries are convincing (the forged bytes parse as a clean snapshot)
and that the shell still reports what really changed.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from tmax_local.shell import PtyShell, ShellRestarted, guard
from tmax_local.shell.state import SnapshotError, parse_snapshot

pytestmark = pytest.mark.skipif(not guard.available(), reason="no inotify/O_TMPFILE here")


@pytest.fixture
def files(tmp_path: Path):
    path = str(tmp_path / "state")
    g = guard.SnapshotFiles({path: 2})
    g.arm()
    yield g, path
    g.close()


def epilogue_writes(path: str, text: bytes = b"snapshot") -> None:
    """What the epilogue does: truncate, then write the snapshot."""
    with open(path, "wb"):
        pass
    with open(path, "wb") as fh:
        fh.write(text)


def test_the_epilogue_alone_reads_back(files) -> None:
    g, path = files
    epilogue_writes(path)
    assert g.read(path) == b"snapshot"
    assert g.read(path) == b"snapshot"  # our own reads are counted, not held against it


def test_each_arm_starts_a_new_file(files) -> None:
    g, path = files
    epilogue_writes(path, b"one")
    _in_place(path)  # tampered with during the last command…
    g.arm()  # …the next one starts from an empty, unwatched-by-anyone-else file
    assert os.path.getsize(path) == 0
    epilogue_writes(path, b"two")
    assert g.read(path) == b"two"


def _in_place(path: str) -> None:
    with open(path, "r+b") as fh:
        fh.write(b"forged!!")


def _replaced(path: str) -> None:
    other = path + ".new"
    Path(other).write_bytes(b"forged")
    os.replace(other, path)


def _through_a_hard_link(path: str) -> None:
    link = os.path.join(os.path.dirname(path), "..", "elsewhere")
    os.link(path, link)
    with open(link, "r+b") as fh:
        fh.write(b"forged")
    os.unlink(link)


def _chmod(path: str) -> None:
    os.chmod(path, 0o644)


def _appended(path: str) -> None:
    with open(path, "ab") as fh:
        fh.write(b"more")


@pytest.mark.parametrize("tamper", [_in_place, _replaced, _through_a_hard_link, _chmod, _appended])
@pytest.mark.parametrize("before", [False, True], ids=["after", "before"])
def test_a_write_by_anything_else_is_seen(files, tamper, before: bool) -> None:
    """After the epilogue: a background job. Before it: a DEBUG trap, which runs before
    each command of the epilogue."""
    g, path = files
    if before:
        tamper(path)
    epilogue_writes(path)
    if not before:
        tamper(path)
    with pytest.raises(guard.Tampered):
        g.read(path)


def test_a_mapping_opened_early_is_seen(files) -> None:
    """Writing through a shared mapping sends no event, but mapping needs an open."""
    g, path = files
    epilogue_writes(path)
    fd = os.open(path, os.O_RDWR)
    try:
        with mmap.mmap(fd, 0) as m:
            m[:6] = b"forged"
    finally:
        os.close(fd)
    with pytest.raises(guard.Tampered):
        g.read(path)


def test_a_file_the_epilogue_never_finished_is_not_trusted(files) -> None:
    g, path = files
    with open(path, "wb"):
        pass
    with pytest.raises(guard.Tampered):
        g.read(path)


# --------------------------------------------------------------------------- the real shell


def _forge_in_place(path: str, old: bytes, new: bytes) -> bytes:
    data = Path(path).read_bytes()
    forged = data.replace(old, new)
    assert forged != data
    with open(path, "r+b") as fh:
        fh.write(forged)
        fh.truncate()
    return forged


def test_a_rewritten_snapshot_is_not_believed(tmp_path: Path) -> None:
    with PtyShell(tmp_path, timeout=10) as shell:
        shell.run("export GIT_PAGER='touch MARK; cat'", 5)
        state = shell._state_file()
        forged = _forge_in_place(state, b"touch MARK; cat", b"cat")
        # teeth: the forged bytes are a clean snapshot, token and all
        clean = parse_snapshot(forged, token=shell._state_token)
        assert clean.variables["GIT_PAGER"].value == "cat"
        live = shell.live_state()
        assert any("$GIT_PAGER" in why for why in live.changes())


def test_a_rewritten_baseline_is_not_believed(tmp_path: Path) -> None:
    """The start-up snapshot is read once, when bash starts: editing it later changes
    nothing (it would make every change since look like the starting point)."""
    with PtyShell(tmp_path, timeout=10) as shell:
        shell.run("export GIT_PAGER='touch MARK; cat'", 5)
        baseline = shell._baseline_file()
        _forge_in_place(baseline, b"GIT_PAGER\0x\0cat\0", b"GIT_PAGER\0x\0touch MARK; cat\0")
        assert any("$GIT_PAGER" in why for why in shell.live_state().changes())


def test_an_ordinary_shell_is_still_read(tmp_path: Path) -> None:
    with PtyShell(tmp_path, timeout=10) as shell:
        for _ in range(3):
            assert shell.run("echo hi > out.txt; cat out.txt", 5).output == "hi\n"
            assert shell.live_state().changes() == []


def test_a_removed_private_directory_restarts_the_shell(tmp_path: Path) -> None:
    """bash writes its snapshot to paths fixed when it started. With its private directory
    removed it would write none, and a watch on the new directory would count only what
    others wrote there (a forger writing exactly as often as the epilogue would pass):
    the shell is started again, with the new paths, and watched there."""
    with PtyShell(tmp_path, timeout=10) as shell:
        events: list[object] = []
        shell.subscribe(events.append)
        old = shell._state_file()
        shell.run('rm -rf "$(dirname "$BASH_SOURCE")"', 5)
        shell.run("export GIT_PAGER='touch MARK; cat'", 5)
        assert any(isinstance(e, ShellRestarted) for e in events)
        state = shell._state_file()
        assert state != old and os.path.getsize(state) > 0  # the new bash writes it
        _forge_in_place(state, b"touch MARK; cat", b"cat")
        assert any("$GIT_PAGER" in why for why in shell.live_state().changes())


def test_watching_that_stops_working_is_not_replaced_by_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process can use up inotify's limits: once the files were watched, a shell
    whose files can no longer be watched has its snapshot refused (the gate asks)."""
    with PtyShell(tmp_path, timeout=10) as shell:
        shell.run("true", 5)
        assert shell.live_state().changes() == []

        def refuse(self: guard.SnapshotFiles) -> None:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(guard.SnapshotFiles, "arm", refuse)
        shell.run("true", 5)
        with pytest.raises(SnapshotError, match="can no longer be watched"):
            shell.live_state()
        monkeypatch.undo()
        shell.run("true", 5)
        assert shell.live_state().changes() == []
