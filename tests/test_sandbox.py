"""The sandboxed shell against escape attempts: real kernel (Landlock), real PTY, real bash.

Every attack tries to create or change a marker outside the project.  In
``workspace`` mode all of them must fail with the shell still usable; with
``off`` the same commands must succeed, so the suite can tell the difference.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tmax_local.shell import PtyShell
from tmax_local.shell import sandbox as sb

SUPPORT = sb.detect()
needs_landlock = pytest.mark.skipif(
    SUPPORT.mechanism != "landlock", reason=f"no Landlock here: {SUPPORT.describe()}"
)
needs_net_rules = pytest.mark.skipif(not SUPPORT.network, reason="Landlock ABI < 4: no TCP rules")
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

SECRET = "-----BEGIN FAKE KEY----- tmax-sandbox-test"


@dataclass
class World:
    root: Path  # the project's parent
    project: Path
    home: Path
    outside: Path  # a directory next to the project
    etc_marker: Path

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "HOME": str(self.home), "LANG": "C.UTF-8"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    project = tmp_path / "project"
    home = tmp_path / "home"
    outside = tmp_path / "outside"
    for d in (project, home / ".ssh", home / ".config" / "gh", outside):
        d.mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(SECRET + "\n")
    (home / ".config" / "gh" / "hosts.yml").write_text(SECRET + "\n")
    (home / ".bashrc").write_text("# readable\n")
    (outside / "existing.txt").write_text("original\n")
    etc_marker = Path("/etc") / f"tmax-sandbox-test-{secrets.token_hex(4)}"
    w = World(tmp_path, project, home, outside, etc_marker)
    yield w
    etc_marker.unlink(missing_ok=True)


def make_shell(w: World, mode: str, **kw: object) -> PtyShell:
    return PtyShell(
        w.project, timeout=20, kill_grace=0.3, env=w.env(), sandbox_mode=mode, **kw
    ).start()


# Each attack: commands run in order, then where the damage would show.
# "{etc}" is replaced by a fresh file name under /etc.
ATTACKS: dict[str, list[str]] = {
    "home": ["echo pwned > ~/marker"],
    "home_dotfile": ["echo pwned >> ~/.bashrc && echo pwned > ~/marker"],
    "etc": ["echo pwned > {etc} && cp {etc} ~/marker"],
    "parent": ["touch ../marker"],
    "symlink_dir": ["ln -s ../outside link && echo pwned > link/marker"],
    "symlink_file": ["ln -s ../outside/existing.txt f && echo pwned > f && echo pwned > ../marker"],
    "hardlink": ["ln ../outside/existing.txt hard && echo pwned > hard && touch ../marker"],
    "mv": ["echo pwned > m && mv m ../marker"],
    "cp": ["echo pwned > c && cp c ../marker"],
    "tee": ["echo pwned | tee ../marker"],
    "dd": ["echo pwned | dd of=../marker status=none"],
    "python": [f"{sys.executable} -c \"open('../marker', 'w').write('pwned')\""],
    "background_job": ["(sleep 0.2; echo pwned > ../marker) & wait"],
    "nohup": ["nohup sh -c 'echo pwned > ../marker' >/dev/null 2>&1; sleep 0.3"],
    "setsid": ["setsid sh -c 'echo pwned > ../marker'; sleep 0.3"],
    "exec_bash": ["exec bash", "echo pwned > ../marker"],
    "exec_env_bash": ["exec env -i bash --norc", "echo pwned > ../marker"],
    "after_restart": ["kill -9 $$", "echo pwned > ../marker"],
    "mkdir_outside": ["mkdir ../marker"],
    "rm_outside": ["rm -f ../outside/existing.txt && touch ../marker"],
}


def damage(w: World) -> list[str]:
    found = []
    for place in (w.root / "marker", w.home / "marker", w.outside / "marker"):
        if place.exists():
            found.append(str(place))
    existing = w.outside / "existing.txt"
    if not existing.exists():
        found.append("outside/existing.txt removed")
    elif existing.read_text() != "original\n":
        found.append("outside/existing.txt changed")
    if "pwned" in (w.home / ".bashrc").read_text():
        found.append("~/.bashrc changed")
    if w.etc_marker.exists():
        found.append(str(w.etc_marker))
    return found


def run_attack(sh: PtyShell, w: World, name: str) -> list[str]:
    outputs = []
    for command in ATTACKS[name]:
        result = sh.run(command.replace("{etc}", str(w.etc_marker)), timeout=15)
        outputs.append(result.output)
    return outputs


@needs_landlock
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_workspace_blocks_escape(world: World, name: str) -> None:
    sh = make_shell(world, "workspace")
    try:
        outputs = run_attack(sh, world, name)
        assert damage(world) == [], outputs
        alive = sh.run("echo alive && pwd")
        assert alive.exit_code == 0 and alive.output == f"alive\n{world.project}\n"
    finally:
        sh.close()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_off_lets_the_same_commands_through(world: World, name: str) -> None:
    """The control: without the sandbox every attack does its damage."""
    if name == "etc" and not os.access("/etc", os.W_OK):
        pytest.skip("/etc is not writable for this user even without a sandbox")
    sh = make_shell(world, "off")
    try:
        outputs = run_attack(sh, world, name)
        assert damage(world) != [], outputs
    finally:
        sh.close()


@needs_landlock
def test_denials_are_explained_to_the_model(world: World) -> None:
    sh = make_shell(world, "workspace")
    try:
        r = sh.run("touch ../marker")
        assert r.exit_code == 1
        assert r.sandbox_denials == (
            f"[sandbox] write to {world.root / 'marker'} denied (workspace mode: writes"
            f" allowed only under {world.project} and $TMPDIR)",
        )
        assert r.output.endswith(r.sandbox_denials[0] + "\n")
        r = sh.run("cat ~/.ssh/id_rsa")
        assert SECRET not in r.output
        assert r.sandbox_denials == (
            "[sandbox] access to ~/.ssh/id_rsa denied (credential location; the sandbox"
            " blocks reading and writing it)",
        )
        r = sh.run("head -c 10 /dev/kmsg")
        assert r.sandbox_denials == (
            "[sandbox] read of /dev/kmsg denied (not readable in the sandbox)",
        )
        # Not the sandbox's doing: no note.
        (world.project / "locked").mkdir(mode=0o500)
        r = sh.run("cat missing-file; ls /nonexistent")
        assert r.exit_code != 0 and r.sandbox_denials == ()
        r = sh.run("./locked")  # a directory is not executable: EACCES, not the sandbox
        assert "Permission denied" in r.output or "Is a directory" in r.output
        assert r.sandbox_denials == ()
    finally:
        sh.close()


@needs_landlock
def test_credentials_are_not_readable(world: World) -> None:
    sh = make_shell(world, "workspace")
    try:
        for command in (
            "cat ~/.ssh/id_rsa",
            "cp ~/.ssh/id_rsa stolen; cat stolen",
            f"{sys.executable} -c \"print(open('{world.home}/.ssh/id_rsa').read())\"",
            "cat ~/.config/gh/hosts.yml",
            "grep -r BEGIN ~ 2>&1",
            "tar cf - -C ~ .ssh 2>&1 | strings",
        ):
            r = sh.run(command)
            assert SECRET not in r.output, command
        assert "id_rsa" in sh.run("ls ~/.ssh").output  # names are visible, contents are not
        assert sh.run("cat ~/.bashrc").output == "# readable\n"
    finally:
        sh.close()


@needs_landlock
def test_devices_other_than_its_own_are_closed(world: World) -> None:
    """Raw disks would let root read every file; another terminal would let a command
    read the user's keystrokes or type into their shell (TIOCSTI)."""
    master, slave = os.openpty()
    other_tty = os.ttyname(slave)
    disks = [
        f"/dev/{n}"
        for n in sorted(os.listdir("/dev"))
        if n.startswith(("loop", "sd", "vd", "nvme"))
    ]
    disks = [d for d in disks if os.path.exists(d) and os.access(d, os.R_OK)][:1]
    probe = (
        f'{sys.executable} -c "import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY'
        f" | os.O_NOCTTY | os.O_NONBLOCK)); print('opened')\""
    )
    targets = [other_tty, "/dev/kmsg", *disks]
    try:
        for mode, expect in (("workspace", False), ("off", True)):
            sh = make_shell(world, mode)
            try:
                for target in targets:
                    if mode == "off" and not os.access(target, os.R_OK):
                        continue
                    r = sh.run(f"{probe} {target}")
                    assert ("opened" in r.output) is expect, (mode, target, r.output)
                ok = sh.run(
                    "head -c 4 /dev/urandom | wc -c; echo x > /dev/null; tty >/dev/null && stty size"
                )
                assert ok.exit_code == 0, ok.output
            finally:
                sh.close()
    finally:
        os.close(master)
        os.close(slave)


@needs_landlock
def test_root_keeps_no_capabilities(world: World) -> None:
    """Landlock limits file access, not what capabilities allow (kernel modules, raw and
    netlink sockets, reboot): as root the sandbox drops them all."""
    if os.geteuid() != 0:
        pytest.skip("only root has capabilities to drop")
    caps = "grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status"
    for mode in ("off", "workspace"):
        sh = make_shell(world, mode)
        try:
            values = {
                line.split(":")[0]: int(line.split()[1], 16)
                for line in sh.run(caps).output.splitlines()
            }
            sh.run("exec bash")  # a fresh exec as uid 0 gets nothing back
            again = sh.run(caps).output
        finally:
            sh.close()
        if mode == "off":
            assert values["CapEff"] != 0
        else:
            assert values == {"CapEff": 0, "CapPrm": 0, "CapBnd": 0}
            assert again.count("0000000000000000") == 3


@needs_landlock
def test_cannot_signal_processes_outside(world: World) -> None:
    if SUPPORT.abi < 6:
        pytest.skip("signal scoping needs Landlock ABI 6")
    victim = subprocess.Popen(["sleep", "60"])
    sh = make_shell(world, "workspace")
    try:
        r = sh.run(f"kill -TERM {victim.pid}")
        assert r.exit_code != 0 and "Operation not permitted" in r.output
        assert victim.poll() is None
        assert sh.run("sleep 30 & kill $! && wait $!; echo $?").output == "143\n"
    finally:
        sh.close()
        victim.kill()
        victim.wait()


# -- controls: what must keep working -------------------------------------------------
@needs_landlock
def test_workspace_controls_succeed(world: World) -> None:
    if shutil.which("git") is None:
        pytest.skip("git missing")
    sh = make_shell(world, "workspace")
    try:
        script = [
            "mkdir -p sub/deeper && echo data > sub/deeper/f && cat sub/deeper/f",
            "ln -s sub/deeper/f link && cat link && ln sub/deeper/f hard && mv hard moved",
            "cp moved copied && echo more | tee -a copied >/dev/null && dd if=copied of=dd.out status=none",
            f"{sys.executable} -c \"open('py.out', 'w').write('ok')\"",
            't=$(mktemp) && echo tmp > $t && cat $t && rm $t && [ "${t#$TMPDIR}" != "$t" ]',
            "(sleep 0.1; echo bg > bg.out) & wait",
            "echo x > /dev/null && echo y >/dev/stderr && tty >/dev/null && stty size",
            "git init -q . && git -c user.name=t -c user.email=t@e add -A"
            " && git -c user.name=t -c user.email=t@e commit -qm init && git log --oneline | wc -l",
        ]
        for command in script:
            r = sh.run(command)
            assert r.exit_code == 0 and r.sandbox_denials == (), (command, r.output)
        assert (world.project / "py.out").read_text() == "ok"
        assert (world.project / "bg.out").read_text() == "bg\n"
        assert sh.run("exec bash").restarted
        assert sh.run("echo again > again.out && cat again.out").output == "again\n"
    finally:
        sh.close()


@needs_landlock
def test_home_inside_a_crowded_directory(world: World) -> None:
    """A home whose parent holds thousands of entries (a busy /tmp, /home on a shared
    server) is granted entry by entry: far more rules than fit on a command line."""
    crowd = world.root / "crowd"
    home = crowd / "home-of-the-user"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(SECRET + "\n")
    for i in range(4000):
        (crowd / f"neighbour-{i:05d}-with-a-rather-long-name").mkdir()
    world.home = home
    policy = sb.SandboxPolicy("workspace", project=world.project, tmpdir=world.root, home=home)
    assert len(policy.landlock_json()) > 256 * 1024  # over MAX_ARG_STRLEN (128 KiB)
    sh = make_shell(world, "workspace")
    try:
        assert sh.run("echo inside > in.txt && cat in.txt").output == "inside\n"
        r = sh.run(f"cat {home}/.ssh/id_rsa; ls {crowd} | wc -l; echo pwned > ~/marker")
        assert SECRET not in r.output and "4001" in r.output, r.output
        assert r.exit_code != 0 and not (home / "marker").exists()
    finally:
        sh.close()


@needs_landlock
def test_read_only_mode(world: World) -> None:
    sh = make_shell(world, "read-only")
    try:
        r = sh.run("echo x > inside")
        assert r.exit_code == 1 and not (world.project / "inside").exists()
        assert "read-only mode" in r.sandbox_denials[0]
        assert sh.run("echo t > $TMPDIR/t && cat $TMPDIR/t").output == "t\n"
        assert sh.run("ls ..").exit_code == 0
    finally:
        sh.close()


# -- network -------------------------------------------------------------------------
@pytest.fixture
def tcp_server() -> Iterator[tuple[int, list[bytes]]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    received.append(conn.recv(100))
                except OSError:
                    received.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(2)
    server.close()


CONNECT = {
    "bash_dev_tcp": "echo hello > /dev/tcp/127.0.0.1/{port}",
    "python": (
        f"{sys.executable} -c \"import socket; s = socket.create_connection(('127.0.0.1', {{port}}));"
        " s.sendall(b'hello')\""
    ),
}


@needs_landlock
@needs_net_rules
@pytest.mark.parametrize("how", sorted(CONNECT))
def test_tcp_connect_denied_without_network(world: World, tcp_server, how: str) -> None:
    port, received = tcp_server
    sh = make_shell(world, "workspace")
    try:
        r = sh.run(CONNECT[how].format(port=port))
        assert r.exit_code != 0
        assert any("network access denied" in note for note in r.sandbox_denials), r.output
        r = sh.run(f"{sys.executable} -c \"import socket; socket.socket().bind(('127.0.0.1', 0))\"")
        assert r.exit_code != 0  # listening is refused too
        assert sh.run("echo alive").output == "alive\n"
    finally:
        sh.close()
    assert received == []


@needs_landlock
@pytest.mark.parametrize("how", sorted(CONNECT))
def test_tcp_connect_allowed_with_network(world: World, tcp_server, how: str) -> None:
    port, received = tcp_server
    sh = make_shell(world, "workspace", allow_network=True)
    try:
        r = sh.run(CONNECT[how].format(port=port))
        assert r.exit_code == 0, r.output
    finally:
        sh.close()
    assert received and received[0].startswith(b"hello")


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A unix-socket server outside the project (what a tmux server or docker.sock is)."""
    path = str(tmp_path / "daemon.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                received.append(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, received
    stop.set()
    thread.join(2)
    server.close()


UNIX_CONNECT = (
    f'{sys.executable} -c "import socket, sys; s = socket.socket(socket.AF_UNIX);'
    " s.connect(sys.argv[1]); s.sendall(b'run-this-outside')\""
)


@needs_landlock
@pytest.mark.parametrize("network", [False, True])
def test_named_unix_socket_daemon(world: World, unix_server, network: bool) -> None:
    path, received = unix_server
    sh = make_shell(world, "workspace", allow_network=network)
    try:
        r = sh.run(f"{UNIX_CONNECT} {path}")
        assert (r.exit_code == 0) is network, r.output
        if not network:
            assert any("network access denied" in n for n in r.sandbox_denials), r.output
            for ok in ("python3 -c 'import socket; socket.socketpair()'", "id -un", "echo a | cat"):
                assert sh.run(ok).exit_code == 0, ok
    finally:
        sh.close()
    assert received == ([b"run-this-outside"] if network else [])


# -- the policy itself ------------------------------------------------------------------
def test_rules_leave_credentials_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".config" / "gh").mkdir(parents=True)
    (home / ".config" / "nvim").mkdir(parents=True)
    (home / "code").mkdir()
    policy = sb.SandboxPolicy("workspace", project=home / "code", tmpdir=tmp_path, home=home)
    rules = dict(policy.landlock_rules())
    real = os.path.realpath
    assert real(home / "code") in rules and real(home / ".config" / "nvim") in rules
    for secret in (home / ".ssh", home / ".config" / "gh", home, home / ".config"):
        assert real(secret) not in rules
    # the project is $HOME itself: granted entry by entry, credentials left out
    policy = sb.SandboxPolicy("workspace", project=home, tmpdir=tmp_path, home=home)
    writes = {path for path, rights in policy.landlock_rules() if rights == sb.ALL_FS}
    assert real(home / "code") in writes and real(home / ".ssh") not in writes
    assert real(home) not in writes


def test_off_policy_still_uses_the_launcher(tmp_path: Path) -> None:
    with sb.launch(None, ["bash", "-i"]) as launch:
        assert launch.argv[-3:] == ["--", "bash", "-i"] and "{}" in launch.argv
        assert launch.pass_fds == ()


@needs_landlock
def test_policy_descriptor_is_not_left_to_the_program(tmp_path: Path) -> None:
    """The policy's descriptor is read and closed by the launcher: the confined program
    never holds it, and the agent closes its copy once the program is started."""
    policy = sb.SandboxPolicy("workspace", project=tmp_path, tmpdir=tmp_path, home=tmp_path)
    probe = ["sh", "-c", "for f in /proc/$$/fd/*; do readlink $f; done; echo done"]
    with sb.launch(policy, probe) as launch:
        (fd,) = launch.pass_fds
        assert f"fd:{fd}" in launch.argv and len(" ".join(launch.argv)) < 4096
        r = subprocess.run(launch.argv, pass_fds=launch.pass_fds, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.endswith("done\n"), r.stderr
    assert "tmax-sandbox-policy" not in r.stdout
    with pytest.raises(OSError):
        os.fstat(fd)


def test_unavailable_sandbox_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sb, "detect", lambda: sb.SandboxSupport("none", detail="no Landlock"))
    with pytest.raises(sb.SandboxUnavailable, match=r"no Landlock.*--sandbox off"):
        PtyShell(tmp_path, sandbox_mode="workspace")


def test_launcher_refuses_to_run_unconfined(tmp_path: Path) -> None:
    """If the rules cannot be applied, the program must not run at all."""
    from tmax_local.shell import sandbox_exec

    if SUPPORT.mechanism == "landlock" and not SUPPORT.network:
        pytest.skip("needs a rule this kernel rejects (a TCP port rule, ABI 4)")
    marker = tmp_path / "ran"
    bad = '{"handled_fs": 1, "rules": [], "net": 3, "net_ports": [[70000, 2]]}'
    argv = [sys.executable, "-I", "-S", sandbox_exec.__file__, bad, "--", "touch", str(marker)]
    env = {"PATH": os.environ["PATH"]}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert proc.returncode == 126 and "could not confine" in proc.stderr
    assert not marker.exists()
    proc = subprocess.run([*argv[:4], "not json", "--", "true"], capture_output=True, env=env)
    assert proc.returncode == 126


# -- macOS: the generated Seatbelt profile (sandbox-exec cannot run here) ---------------
def _balanced(text: str) -> bool:
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not in_string


def test_seatbelt_profile_text(tmp_path: Path) -> None:
    home = tmp_path / 'we"ird home'
    project = home / "code"
    project.mkdir(parents=True)
    policy = sb.SandboxPolicy("workspace", project=project, tmpdir=tmp_path / "t", home=home)
    text = sb.seatbelt_profile(policy)
    lines = text.splitlines()
    assert lines[:2] == ["(version 1)", "(deny default)"]
    assert all(_balanced(line) for line in lines) and _balanced(text)
    quoted_project = '(subpath "' + str(project.resolve()).replace('"', '\\"') + '")'
    write_rule = next(line for line in lines if line.startswith("(allow file-write*"))
    read_rule = next(line for line in lines if line.startswith("(allow file-read*"))
    assert quoted_project in write_rule and '"/dev/null"' in write_rule
    assert '(require-not (subpath "/dev"))' in read_rule  # raw disks, other terminals
    for rule in (read_rule, write_rule):
        for cred in (".ssh", ".aws", ".config/gh", ".netrc"):
            target = str(home.resolve() / cred).replace('"', '\\"')
            assert f'(require-not (subpath "{target}"))' in rule
    assert not any("network" in line for line in lines)  # denied by (deny default)
    assert "(allow network*)" in sb.seatbelt_profile(
        sb.SandboxPolicy(
            "workspace", project=project, tmpdir=tmp_path, home=home, allow_network=True
        )
    )
    read_only = sb.seatbelt_profile(
        sb.SandboxPolicy("read-only", project=project, tmpdir=tmp_path / "t", home=home)
    )
    assert quoted_project not in read_only and str((tmp_path / "t").resolve()) in read_only


def test_launcher_argv_on_macos_uses_sandbox_exec(tmp_path: Path, monkeypatch) -> None:
    policy = sb.SandboxPolicy("workspace", project=tmp_path, tmpdir=tmp_path, home=tmp_path)
    monkeypatch.setattr(sb.sys, "platform", "darwin")
    with sb.launch(policy, ["bash", "-i"]) as launch:
        argv = launch.argv
    cut = argv.index("--")
    assert argv[cut - 1] == "{}"  # no Landlock; signals still reset by the launcher
    assert argv[cut + 1 : cut + 3] == ["/usr/bin/sandbox-exec", "-p"]
    assert argv[cut + 3] == sb.seatbelt_profile(policy) and argv[-2:] == ["bash", "-i"]


# -- "run unsandboxed": one approved command outside ------------------------------------
@needs_landlock
def test_run_unsandboxed_once_with_cwd_and_exports(world: World) -> None:
    from tmax_local.shell import CommandStarted, Output

    sh = make_shell(world, "workspace")
    events: list[object] = []
    sh.subscribe(events.append)
    try:
        sh.run("mkdir sub && cd sub && export FOO='a b' && BAR=unexported")
        assert sh.run("touch ../../marker").exit_code == 1
        r = sh.run_unsandboxed('echo "$FOO|$BAR|$PWD" && touch ../../marker && cd / && export X=1')
        assert r.exit_code == 0
        assert r.output.startswith(f"a b||{world.project / 'sub'}\n")
        assert "ran outside the sandbox" in r.output.splitlines()[-1]
        assert (world.root / "marker").exists()
        (world.root / "marker").unlink()
        assert any(isinstance(e, CommandStarted) and "touch" in e.command for e in events)
        assert any(isinstance(e, Output) and b"a b||" in e.data for e in events)
        # Only that command: the shell itself is still confined, state unchanged.
        assert sh.run('echo "$FOO|$X|$PWD"').output == f"a b||{world.project / 'sub'}\n"
        r = sh.run("touch ../../marker")
        assert r.exit_code == 1 and not (world.root / "marker").exists()
        assert not any(isinstance(e, CommandStarted) and "env -0" in e.command for e in events)
    finally:
        sh.close()


def test_choose_mode_defaults_and_refusals() -> None:
    yes = sb.SandboxSupport("landlock", abi=7, network=True)
    no = sb.SandboxSupport("none", detail="no Landlock in this kernel")
    assert sb.choose_mode(None, unattended=True, support=yes) is sb.SandboxMode.WORKSPACE
    assert sb.choose_mode(None, unattended=False, support=yes) is sb.SandboxMode.OFF
    assert sb.choose_mode("read-only", unattended=False, support=yes) is sb.SandboxMode.READ_ONLY
    assert sb.choose_mode("off", unattended=True, support=no) is sb.SandboxMode.OFF
    assert sb.choose_mode(None, unattended=False, support=no) is sb.SandboxMode.OFF
    with pytest.raises(sb.SandboxUnavailable, match=r"default is a sandbox.*--sandbox off"):
        sb.choose_mode(None, unattended=True, support=no)
    with pytest.raises(sb.SandboxUnavailable, match="no Landlock"):
        sb.choose_mode("workspace", unattended=False, support=no)
    with pytest.raises(sb.TmaxError, match="unknown sandbox mode"):
        sb.choose_mode("full", unattended=True, support=yes)


def test_health_for_doctor() -> None:
    report = sb.health()
    assert report["ok"] is SUPPORT.available
    if SUPPORT.mechanism == "landlock":
        assert f"Landlock ABI {SUPPORT.abi}" in str(report["detail"])


@needs_landlock
def test_set_sandbox_between_commands_keeps_cwd_and_exports(world: World, tcp_server) -> None:
    from tmax_local.shell import ShellRestarted

    port, received = tcp_server
    sh = make_shell(world, "off")
    restarts: list[str] = []
    sh.subscribe(lambda e: restarts.append(e.reason) if isinstance(e, ShellRestarted) else None)
    try:
        sh.run("mkdir sub && cd sub && export KEEP=yes")
        sh.set_sandbox("workspace")
        assert len(restarts) == 1 and "sandbox workspace" in restarts[0]
        assert sh.run('echo "$KEEP $PWD"').output == f"yes {world.project / 'sub'}\n"
        assert sh.run("touch ../../marker").exit_code == 1
        assert sh.run(CONNECT["python"].format(port=port)).exit_code != 0
        sh.set_sandbox("workspace", allow_network=True)  # the app's network toggle
        assert sh.run(CONNECT["python"].format(port=port)).exit_code == 0
        assert sh.run("touch ../../marker").exit_code == 1
        sh.set_sandbox("workspace", allow_network=True)  # no change: no restart
        assert len(restarts) == 2
        sh.set_sandbox("off")
        assert sh.run("touch ../../marker").exit_code == 0
    finally:
        sh.close()
    assert received and damage(world) == [str(world.root / "marker")]


def test_old_kernel_without_tcp_rules_is_said(tmp_path: Path, monkeypatch) -> None:
    policy = sb.SandboxPolicy("workspace", project=tmp_path, tmpdir=tmp_path, home=tmp_path)
    monkeypatch.setattr(sb, "detect", lambda: sb.SandboxSupport("landlock", abi=3))
    assert "TCP NOT blocked" in policy.describe()
    assert "no network filtering" in sb.SandboxSupport("landlock", abi=3).describe()
    monkeypatch.setattr(sb, "detect", lambda: sb.SandboxSupport("landlock", abi=7, network=True))
    assert policy.describe().endswith("no network")


_ENVIRON_PROBE = """
import os, subprocess, sys
launcher, policy = sys.argv[1], sys.argv[2]
if "SECRET_TOKEN" not in os.environ:  # re-exec: the secret must be in the initial environment
    env = dict(os.environ, SECRET_TOKEN="tmax-env-secret")
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
r = subprocess.run(
    [sys.executable, "-I", "-S", launcher, policy, "--", "sh", "-c", "cat /proc/$PPID/environ"],
    capture_output=True, text=True,
)
print("LEAKED" if "tmax-env-secret" in r.stdout else "SAFE")
"""


@needs_landlock
@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_agent_environ_unreadable_for_a_normal_user(tmp_path: Path) -> None:
    """Secrets withheld from the shell still sit in the agent's /proc/PID/environ.  For a
    normal user Landlock's ptrace rule keeps the sandbox out of it (root is not kept out:
    see the README)."""
    import tempfile

    from tmax_local.shell import sandbox_exec

    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no system python for the unprivileged user")
    folder = tempfile.mkdtemp()
    try:
        os.chmod(folder, 0o755)
        launcher = shutil.copy(sandbox_exec.__file__, folder)
        probe = Path(folder) / "probe.py"
        probe.write_text(_ENVIRON_PROBE)
        os.chmod(launcher, 0o644)
        os.chmod(probe, 0o644)
        policy = sb.SandboxPolicy("workspace", project=folder, tmpdir=folder, home="/nonexistent")
        results = {}
        for name, pol in (("off", "{}"), ("workspace", policy.landlock_json())):
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python]
            argv += [str(probe), launcher, pol]
            out = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=60)
            results[name] = out.stdout.strip() or out.stderr[-300:]
        assert results == {"off": "LEAKED", "workspace": "SAFE"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@needs_landlock
def test_interrupt_reaches_the_unsandboxed_command(world: World) -> None:
    from tmax_local.shell import CommandStarted

    sh = make_shell(world, "workspace")
    started = threading.Event()
    sh.subscribe(lambda e: started.set() if isinstance(e, CommandStarted) else None)
    box: list[object] = []
    try:
        worker = threading.Thread(target=lambda: box.append(sh.run_unsandboxed("sleep 30")))
        worker.start()
        assert started.wait(20)
        sh.interrupt()
        worker.join(30)
        assert not worker.is_alive()
        assert box[0].exit_code == 130 and box[0].duration_s < 25  # type: ignore[attr-defined]
        assert sh.run("echo back").output == "back\n"
    finally:
        sh.close()


@needs_landlock
def test_unsandboxed_run_keeps_program_changing_variables_at_their_start_values(
    world: World,
) -> None:
    """The exported variables are read through a file the sandbox can write; those that
    change what programs run (LD_PRELOAD, BASH_ENV, PYTHON*, GIT_*...) are not taken."""
    sh = make_shell(world, "workspace")
    try:
        sh.run("export LD_PRELOAD=/nonexistent/evil.so PYTHONSTARTUP=evil.py KEPT=yes")
        r = sh.run_unsandboxed('echo "${LD_PRELOAD-unset}|${PYTHONSTARTUP-unset}|$KEPT"')
        assert r.output.splitlines()[0] == "unset|unset|yes"
    finally:
        sh.close()
