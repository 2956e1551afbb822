"""Deterministic risk labels: what a simple command may do, each with a reason.

Labels never decide on their own; the policy (`policy.decide`) reads them. A label names
the part it applies to, so a UI can point at ``rm -rf build`` inside a long ``&&`` chain.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tmax_local.approval.syntax import Part, Word

# label names
DELETE = "delete"
PRIVILEGE = "privilege"
WRITE_OUTSIDE = "write-outside-cwd"
NETWORK = "network"
PIPE_TO_SHELL = "pipe-to-shell"
DISK = "disk"
PERMISSIONS = "permissions"
HISTORY = "history-rewrite"
KILL = "process-kill"
SHELL_CONFIG = "shell-config"
SHELL_STATE = "shell-state"
SENSITIVE_FILE = "sensitive-file"
SYSTEM = "system"

HIGH_RISK = frozenset(
    {
        DELETE,
        PRIVILEGE,
        WRITE_OUTSIDE,
        PIPE_TO_SHELL,
        DISK,
        HISTORY,
        KILL,
        SHELL_CONFIG,
        SHELL_STATE,
        SENSITIVE_FILE,
        SYSTEM,
    }
)
"""Labels that stop `auto` mode (the command is asked instead)."""

NEVER_BY_RULE = frozenset({WRITE_OUTSIDE, SHELL_CONFIG, SENSITIVE_FILE})
"""Labels an allow rule never covers: a rule approves a program and its arguments, not
writing outside the working directory or into files that change later behaviour."""


@dataclass(frozen=True)
class Label:
    """One risk of one part: ``name`` (e.g. ``delete``), a human ``reason``, and the part."""

    name: str
    reason: str
    part: int
    """Index into `Analysis.parts`."""
    text: str
    """The part's words as written (what the label applies to)."""

    @property
    def high_risk(self) -> bool:
        return self.name in HIGH_RISK


# --------------------------------------------------------------------------- tables

PRIVILEGE_COMMANDS = frozenset({"sudo", "su", "doas", "pkexec", "run0", "runuser", "sudoedit"})
DISK_COMMANDS = frozenset(
    {
        "dd",
        "mkfs",
        "mke2fs",
        "mkswap",
        "swapon",
        "swapoff",
        "mount",
        "umount",
        "fdisk",
        "sfdisk",
        "cfdisk",
        "gdisk",
        "sgdisk",
        "parted",
        "partprobe",
        "losetup",
        "wipefs",
        "blkdiscard",
        "cryptsetup",
        "hdparm",
        "e2fsck",
        "fsck",
        "tune2fs",
        "resize2fs",
        "zpool",
        "pvcreate",
        "vgcreate",
        "lvcreate",
        "lvremove",
        "vgremove",
        "pvremove",
        "mdadm",
    }
)
PERMISSION_COMMANDS = frozenset({"chmod", "chown", "chgrp", "setfacl", "chattr", "chcon"})
KILL_COMMANDS = frozenset({"kill", "pkill", "killall", "xkill", "skill", "killall5"})
SYSTEM_COMMANDS = frozenset({"shutdown", "reboot", "halt", "poweroff", "init", "telinit"})
DELETE_COMMANDS = frozenset({"rm", "rmdir", "unlink", "shred", "srm", "wipe"})
NETWORK_COMMANDS = frozenset(
    {
        "curl",
        "wget",
        "ssh",
        "scp",
        "sftp",
        "nc",
        "ncat",
        "netcat",
        "socat",
        "telnet",
        "ftp",
        "aria2c",
        "npx",
        "pipx",
        "rclone",
        "lftp",
        "mosh",
    }
)
# program -> subcommands that reach the network
NETWORK_SUBCOMMANDS: dict[str, frozenset[str]] = {
    "git": frozenset({"push", "pull", "fetch", "clone", "ls-remote", "submodule", "remote"}),
    "pip": frozenset({"install", "download", "wheel"}),
    "pip3": frozenset({"install", "download", "wheel"}),
    "uv": frozenset({"pip", "add", "sync", "tool", "lock", "venv", "python"}),
    "poetry": frozenset({"add", "install", "update", "lock"}),
    "apt": frozenset(
        {
            "install",
            "update",
            "upgrade",
            "dist-upgrade",
            "full-upgrade",
            "source",
            "download",
            "build-dep",
        }
    ),
    "apt-get": frozenset(
        {"install", "update", "upgrade", "dist-upgrade", "source", "download", "build-dep"}
    ),
    "dnf": frozenset({"install", "update", "upgrade"}),
    "yum": frozenset({"install", "update", "upgrade"}),
    "apk": frozenset({"add", "update", "upgrade"}),
    "pacman": frozenset({"-S", "-Sy", "-Syu", "-Syy"}),
    "brew": frozenset({"install", "update", "upgrade", "tap"}),
    "conda": frozenset({"install", "create", "update"}),
    "mamba": frozenset({"install", "create", "update"}),
    "npm": frozenset({"install", "i", "ci", "add", "update", "publish", "exec"}),
    "pnpm": frozenset({"install", "i", "add", "update", "dlx"}),
    "yarn": frozenset({"install", "add", "upgrade", "dlx", "global"}),
    "cargo": frozenset({"install", "add", "fetch", "update", "publish"}),
    "gem": frozenset({"install", "update", "fetch"}),
    "go": frozenset({"get", "install"}),
    "docker": frozenset({"pull", "push", "login"}),
    "huggingface-cli": frozenset({"download", "upload", "login"}),
    "hf": frozenset({"download", "upload", "auth"}),
}
SHELL_RC_NAMES = frozenset(
    {
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".profile",
        ".zshrc",
        ".zprofile",
        ".zshenv",
        ".zlogin",
        ".zlogout",
        ".kshrc",
        ".cshrc",
        ".tcshrc",
        ".inputrc",
        ".bash_aliases",
        "config.fish",
    }
)
SHELL_RC_SYSTEM = (
    "/etc/profile",
    "/etc/bash.bashrc",
    "/etc/bashrc",
    "/etc/zsh",
    "/etc/environment",
)
SENSITIVE_VARIABLES = frozenset(
    {
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "IFS",
        "PS4",
        "SHELLOPTS",
        "BASHOPTS",
        "GLOBIGNORE",
        "CDPATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_PROXY_COMMAND",
        "GIT_EXTERNAL_DIFF",
        "GIT_EDITOR",
        "GIT_PAGER",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "NODE_OPTIONS",
        "HISTFILE",
    }
)
_HARMLESS_DEVICES = re.compile(
    r"/dev/(null|zero|stdout|stderr|stdin|tty|fd/\d+|full)|/proc/self/fd/\d+"
)
_BLOCK_DEVICES = re.compile(r"/dev/(sd|hd|vd|xvd|nvme|mmcblk|loop|md|dm-|disk/|mapper/)")


# --------------------------------------------------------------------------- paths


def path_of(word: Word, base: Path | None, home: Path) -> Path | None:
    """Where a word points if we can tell (absolute, normalised); None otherwise."""
    text = word.text
    if word.static:
        value = word.value
    elif re.fullmatch(r"~(/[A-Za-z0-9._+@%,:/=-]*)?", text):
        value = str(home) + text[1:]
    else:
        return None
    if not value or "\x00" in value:
        return None
    if value.startswith("/"):
        return Path(os.path.normpath(value))
    if base is None:
        return None
    return Path(os.path.normpath(os.path.join(base, value)))


def _inside(path: Path, root: Path) -> bool:
    try:
        real = Path(os.path.realpath(path))
        real_root = Path(os.path.realpath(root))
    except (OSError, ValueError):
        return False
    return real == real_root or real_root in real.parents


def _options_split(
    args: tuple[Word, ...], with_arg: frozenset[str] = frozenset()
) -> tuple[list[Word], dict[str, Word]]:
    """(operands, {option: its argument}) — a best-effort GNU-style split."""
    operands: list[Word] = []
    opts: dict[str, Word] = {}
    i = 0
    only_operands = False
    while i < len(args):
        w = args[i]
        v = w.value
        if only_operands or not v.startswith("-") or v == "-":
            operands.append(w)
        elif v == "--":
            only_operands = True
        elif "=" in v and v.startswith("--"):
            key, _, val = v.partition("=")
            opts[key] = Word(val, val, w.static)
        elif v in with_arg and i + 1 < len(args):
            opts[v] = args[i + 1]
            i += 1
        else:
            opts[v] = w
        i += 1
    return operands, opts


def _flags(args: tuple[Word, ...]) -> set[str]:
    """Single-letter flags (``-rf`` → r, f) and long options (``--force``)."""
    out: set[str] = set()
    for w in args:
        v = w.value
        if v == "--":
            break
        if v.startswith("--"):
            out.add(v.split("=", 1)[0])
        elif v.startswith("-") and len(v) > 1:
            out.update(f"-{c}" for c in v[1:])
    return out


def written_paths(part: Part) -> list[tuple[Word, str]]:
    """Files this part opens for writing (or deletes/changes), with how."""
    out: list[tuple[Word, str]] = []
    for red in part.redirects:
        if red.writes and red.target is not None:
            out.append((red.target, f"redirects output ({red.op}) to"))
    if part.kind != "command" or not part.words:
        return out
    prog = part.program
    args = part.words[1:]
    if prog in ("cp", "mv", "install", "ln", "rsync", "scp"):
        operands, opts = _options_split(
            args,
            frozenset(
                {"-t", "--target-directory", "-S", "--suffix", "-m", "--mode", "-o", "-g", "-e"}
            ),
        )
        target = opts.get("-t") or opts.get("--target-directory")
        if target is not None:
            out.append((target, f"{prog} writes into"))
        elif len(operands) >= 2 or (prog in ("ln", "install") and operands):
            dest = operands[-1]
            if not (prog in ("rsync", "scp") and ":" in dest.value):
                out.append((dest, f"{prog} writes to"))
    elif prog == "tee":
        operands, _ = _options_split(args)
        out += [(w, "tee writes to") for w in operands]
    elif prog in ("sed", "perl") and any(f in _flags(args) for f in ("-i", "--in-place")) | any(
        w.value.startswith("-i") for w in args
    ):
        operands, opts = _options_split(args, frozenset({"-e", "-f", "--expression", "--file"}))
        has_script = any(k in opts for k in ("-e", "-f", "--expression", "--file")) or any(
            w.value.startswith("-") and "e" in w.value[1:] for w in args if prog == "perl"
        )
        files = operands if has_script else operands[1:]
        out += [(w, f"{prog} -i edits") for w in files]
    elif prog in ("touch", "mkdir", "truncate", "shred", "rm", "rmdir", "unlink"):
        operands, _ = _options_split(
            args,
            frozenset(
                {"-s", "--size", "-m", "--mode", "-r", "--reference", "-d", "--date", "-t", "-n"}
            ),
        )
        verb = {"rm": "deletes", "rmdir": "deletes", "unlink": "deletes", "shred": "destroys"}
        out += [(w, f"{prog} {verb.get(prog, 'writes')}") for w in operands]
    elif prog in ("chmod", "chown", "chgrp", "setfacl", "chattr"):
        operands, _ = _options_split(args, frozenset({"--reference", "-m", "-x", "-M", "-X"}))
        skip = 0 if prog == "setfacl" else 1
        out += [(w, f"{prog} changes") for w in operands[skip:]]
    elif prog == "dd":
        out += [
            (Word(w.text[3:], w.value[3:], w.static), "dd writes to")
            for w in args
            if w.value.startswith("of=")
        ]
    elif prog in ("curl", "wget"):
        _, opts = _options_split(
            args,
            frozenset(
                {
                    "-o",
                    "--output",
                    "-O",
                    "--output-document",
                    "-d",
                    "--data",
                    "-H",
                    "--header",
                    "-X",
                    "-u",
                    "-A",
                    "-e",
                    "-T",
                    "-F",
                    "--url",
                }
            ),
        )
        for key in ("-o", "--output") if prog == "curl" else ("-O", "--output-document"):
            if key in opts:
                out.append((opts[key], f"{prog} saves to"))
    elif prog in ("sudoedit",) or (prog == "sudo" and "-e" in _flags(args)):
        operands, _ = _options_split(args)
        out += [(w, "edits") for w in operands]
    return out


# --------------------------------------------------------------------------- labelling

_Add = Callable[[tuple[str, str]], None]


def label_part(index: int, part: Part, root: Path, home: Path) -> list[Label]:
    """All labels of one part. ``root`` is the working directory writes are judged against."""
    found: list[tuple[str, str]] = []
    add = found.append
    text = part.display
    prog = part.program
    args = part.words[1:]
    flags = _flags(args)
    values = [w.value for w in args]
    if prog == "git":
        values = _git_args(values)

    if part.kind == "function":
        add((SHELL_STATE, f"defines a shell function {part.name!r} that later commands may call"))
    for a in part.assignments:
        var = a.value.split("=", 1)[0].split("[", 1)[0]
        if var in SENSITIVE_VARIABLES:
            add((SHELL_STATE, f"sets {var}, which changes what later commands run"))

    if part.kind == "command" and part.words:
        # privilege
        if prog in PRIVILEGE_COMMANDS:
            add((PRIVILEGE, f"{prog} runs commands as another user (usually root)"))
        # deletes
        if prog == "rm":
            why = (
                "rm -r deletes directories recursively"
                if flags & {"-r", "-R", "--recursive"}
                else "rm deletes files"
            )
            add((DELETE, why + (" without asking (-f)" if flags & {"-f", "--force"} else "")))
        elif prog in DELETE_COMMANDS:
            add((DELETE, f"{prog} deletes files or directories"))
        elif prog in ("find", "fd", "fdfind") and "-delete" in values:
            add((DELETE, "find -delete deletes every match"))
        elif prog == "rsync" and any(v.startswith("--delete") for v in values):
            add((DELETE, "rsync --delete removes files missing from the source"))
        elif prog == "git" and values[:1] == ["clean"]:
            add((DELETE, "git clean deletes untracked files"))
        elif prog == "git" and values[:1] == ["rm"]:
            add((DELETE, "git rm deletes tracked files"))
        # disk / filesystem
        if prog in DISK_COMMANDS or prog.startswith(("mkfs.", "fsck.", "mkfs")):
            add((DISK, f"{prog} works on disks, partitions or filesystems"))
        # permissions
        if prog in PERMISSION_COMMANDS:
            recursive = " recursively" if flags & {"-R", "--recursive"} else ""
            add((PERMISSIONS, f"{prog} changes file ownership or permissions{recursive}"))
        # processes / system
        if prog in KILL_COMMANDS:
            add((KILL, f"{prog} sends signals to (kills) processes"))
        elif prog == "fuser" and "-k" in flags:
            add((KILL, "fuser -k kills the processes using a file"))
        if prog in SYSTEM_COMMANDS:
            add((SYSTEM, f"{prog} stops or restarts the machine"))
        elif prog in ("systemctl", "service") and any(
            v in ("stop", "kill", "restart", "disable", "mask", "poweroff", "reboot", "halt")
            for v in values
        ):
            add((SYSTEM, f"{prog} stops or changes system services"))
        # network
        _network(prog, values, flags, add)
        # history rewrites
        if prog == "git":
            _git_history(values, flags, add)
        # interpreters fed by a pipe (see wrappers._stdin_code / _interpreter)
        if part.piped and any("runs it as code" in p for p in part.problems):
            add((PIPE_TO_SHELL, f"pipes another command's output into {prog}, which runs it"))
        if any("produced by another command" in p for p in part.problems):
            add((PIPE_TO_SHELL, f"{prog} runs code produced by another command"))
        # shell state
        if prog == "alias" and any("=" in v for v in values):
            add((SHELL_STATE, "defines an alias that changes what a later command runs"))
        elif prog in ("export", "declare", "typeset", "readonly", "local"):
            for v in values:
                var = v.split("=", 1)[0]
                if var in SENSITIVE_VARIABLES and "=" in v:
                    add((SHELL_STATE, f"sets {var}, which changes what later commands run"))
            if "-f" in flags:
                add((SHELL_STATE, f"{prog} -f exports shell functions"))
        elif prog == "trap" and values and not values[0].startswith("-"):
            add((SHELL_STATE, "trap installs code that runs later, on a signal or exit"))
        elif prog == "exec" and not args:
            add((SHELL_STATE, "exec with only redirections rewires the shell's own input/output"))
        elif prog in ("enable", "shopt") or (prog == "set" and "-o" in values):
            add((SHELL_STATE, f"{prog} changes how the shell behaves"))

    # files written
    for word, how in written_paths(part):
        where = path_of(word, part.cwd, home)
        if where is None:
            add((WRITE_OUTSIDE, f"{how} {word.text!r}, a location known only at run time"))
            continue
        spot = str(where)
        if _HARMLESS_DEVICES.fullmatch(spot):
            continue
        if _BLOCK_DEVICES.match(spot):
            add((DISK, f"{how} the block device {spot}"))
            continue
        if not _inside(where, root):
            add((WRITE_OUTSIDE, f"{how} {spot}, outside the working directory"))
        if (
            where.name in SHELL_RC_NAMES
            or spot.startswith(SHELL_RC_SYSTEM)
            or ("/.config/fish/" in spot)
        ):
            add((SHELL_CONFIG, f"{how} {spot}, a shell start-up file"))
        if _sensitive(where):
            add((SENSITIVE_FILE, f"{how} {spot}, which changes what later commands do"))

    seen: set[tuple[str, str]] = set()
    labels = []
    for name, reason in found:
        if (name, reason) not in seen:
            seen.add((name, reason))
            labels.append(Label(name, reason, index, text))
    return labels


def _git_args(values: list[str]) -> list[str]:
    """git's arguments after its global options (``git -C dir -c k=v push`` → ``push``)."""
    i = 0
    while i < len(values) and values[i].startswith("-"):
        i += 2 if values[i] in ("-C", "-c", "--git-dir", "--work-tree", "--namespace") else 1
    return values[i:]


def _sensitive(path: Path) -> bool:
    parts = path.parts
    if path.name in (".tmax-local.toml", "rules.toml") and (
        path.name == ".tmax-local.toml" or "tmax-local" in parts
    ):
        return True
    if ".git" in parts:
        i = parts.index(".git")
        rest = parts[i + 1 :]
        return bool(rest) and rest[0] in ("hooks", "config", "info")
    return ".ssh" in parts or str(path).startswith(("/etc/sudoers", "/etc/cron", "/var/spool/cron"))


def _network(prog: str, values: list[str], flags: set[str], add: _Add) -> None:
    if prog in NETWORK_COMMANDS:
        add((NETWORK, f"{prog} connects to other machines"))
        return
    if prog == "rsync" and any(":" in v and not v.startswith("-") for v in values):
        add((NETWORK, "rsync copies to or from another machine"))
        return
    subs = NETWORK_SUBCOMMANDS.get(prog)
    if prog.startswith("python") and values[:2] == ["-m", "pip"]:
        subs, values, prog = NETWORK_SUBCOMMANDS["pip"], values[2:], "pip"
    elif prog.startswith("pip") and prog[3:].replace(".", "").isdigit():
        subs = NETWORK_SUBCOMMANDS["pip"]
    if subs is None:
        return
    first = next((v for v in values if not v.startswith("-") or prog == "pacman"), "")
    if prog == "yarn" and not values:
        first = "install"
    if first in subs:
        add((NETWORK, f"{prog} {first} downloads or uploads over the network"))


def _git_history(values: list[str], flags: set[str], add: _Add) -> None:
    sub = next((v for v in values if not v.startswith("-")), "")
    rest = values[values.index(sub) + 1 :] if sub else []
    if sub == "push":
        if flags & {
            "-f",
            "--force",
            "--force-with-lease",
            "--force-if-includes",
            "--mirror",
            "--delete",
            "-d",
            "--prune",
        } or any(v.startswith(("+", ":")) for v in rest):
            add((HISTORY, "git push --force/--delete rewrites or removes remote history"))
    elif sub == "reset" and "--hard" in rest:
        add((HISTORY, "git reset --hard discards commits and uncommitted changes"))
    elif sub == "rebase":
        add((HISTORY, "git rebase rewrites commit history"))
    elif sub in ("filter-branch", "filter-repo"):
        add((HISTORY, f"git {sub} rewrites the whole history"))
    elif sub == "commit" and "--amend" in rest:
        add((HISTORY, "git commit --amend rewrites the last commit"))
    elif sub == "branch" and ("-D" in rest or ("-d" in rest and "--force" in rest)):
        add((HISTORY, "git branch -D deletes a branch even if unmerged"))
    elif sub in ("checkout", "restore") and ("." in rest or "--" in rest or "-f" in rest):
        add((HISTORY, f"git {sub} discards uncommitted changes"))
    elif sub == "stash" and rest[:1] in (["drop"], ["clear"]):
        add((HISTORY, "git stash drop/clear discards stashed work"))
    elif sub == "reflog" and rest[:1] == ["expire"]:
        add((HISTORY, "git reflog expire drops recovery points"))
