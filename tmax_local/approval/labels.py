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

from tmax_local.approval.parts import Part, ProblemKind, Word
from tmax_local.approval.programs import argument_facts, short_values

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
RUNS_CODE = "runs-code"
CREDENTIALS = "credentials"
BASH_NETWORK = "bash-network"

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
        RUNS_CODE,
        CREDENTIALS,
        BASH_NETWORK,
    }
)
"""Labels that stop `auto` mode (the command is asked instead)."""

NEVER_BY_RULE = frozenset(
    {
        WRITE_OUTSIDE,
        SHELL_CONFIG,
        SENSITIVE_FILE,
        SHELL_STATE,
        RUNS_CODE,
        CREDENTIALS,
        BASH_NETWORK,
    }
)
"""Labels an allow rule never covers: a rule approves a program and its arguments, not
writing outside the project or into files that change later behaviour, changing what later
commands mean (shell state), running code its arguments carry, reading credentials, or a
network connection bash opens itself for a redirection (``< /dev/tcp/host/port``)."""


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
        # where commands, directories and start-up code are found
        "PATH",
        "CDPATH",
        "BASH_ENV",
        "ENV",
        "HOME",
        "XDG_CONFIG_HOME",
        "SHELL",
        "EXECIGNORE",
        # what the interactive shell runs or how it splits and reads text
        "PROMPT_COMMAND",
        "PS0",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "IFS",
        "SHELLOPTS",
        "BASHOPTS",
        "POSIXLY_CORRECT",
        "GLOBIGNORE",
        "INPUTRC",
        "HISTFILE",
        "TMOUT",
        # programs other programs start
        "PAGER",
        "MANPAGER",
        "MANOPT",
        "SYSTEMD_PAGER",
        "EDITOR",
        "VISUAL",
        "BROWSER",
        "SUDO_ASKPASS",
        "SSH_ASKPASS",
        "TAR_OPTIONS",
        "RSYNC_RSH",
        "RSYNC_CONNECT_PROG",
        "CVS_RSH",
        "MAKEFLAGS",
        "MAKEFILES",
        "MFLAGS",
        "RUSTC_WRAPPER",
        "CLASSPATH",
        "GCONV_PATH",
        "OPENSSL_CONF",
        "GREP_OPTIONS",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONWARNINGS",
        "PYTHONBREAKPOINT",
        "PYTHONINSPECT",
        "NODE_OPTIONS",
        "PERL5OPT",
        "RUBYOPT",
    }
)
"""Variables that change which program a later command runs, or what code runs with it."""
SENSITIVE_PREFIXES = (
    "LD_",
    "DYLD_",
    "GIT_",
    "BASH_",
    "LESS",
    "PERL",
    "RUBY",
    "NODE_",
    "NPM_CONFIG_",
    "npm_config_",
    "JAVA_",
    "_JAVA_",
    "JDK_JAVA_",
    "PIP_",
    "UV_",
    "CARGO_",
    "DOCKER_",
)
_HARMLESS_GIT_VARIABLES = frozenset(
    {
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_COMMITTER_DATE",
        "GIT_TERMINAL_PROMPT",
    }
)


def sensitive_variable(name: str) -> bool:
    """True when setting ``name`` can change what a later command runs."""
    if name in SENSITIVE_VARIABLES:
        return True
    return name.startswith(SENSITIVE_PREFIXES) and name not in _HARMLESS_GIT_VARIABLES


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
        clustered = short_values(args, "tSmogeT", "t")  # `-vt DIR`, `-tDIR`
        if target is None and clustered:
            target = clustered[0][1]
            operands = [w for w in operands if w is not target]
        if target is not None:
            out.append((target, f"{prog} writes into"))
        elif len(operands) >= 2 or (prog in ("ln", "install") and operands):
            dest = operands[-1]
            if not (prog in ("rsync", "scp") and ":" in dest.value):
                out.append((dest, f"{prog} writes to"))
        sources = operands[:-1] if target is None else operands
        if prog == "mv":  # the sources disappear from where they were
            out += [(w, "mv removes") for w in sources]
        elif prog == "ln" and not _flags(args) & {"-s", "--symbolic"}:
            # a hard link: writing it later changes the original
            out += [(w, "ln hard-links (later writes change)") for w in sources]
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
    out += [(f.target, f.reason) for f in argument_facts(part) if f.effect == "writes" and f.target]
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
    _assignment_labels(part, add)
    _code_in_text(part, add)
    _credential_reads(part, root, home, add)
    _bash_network(part, add)

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
        # interpreters fed by a pipe or by another command (see wrappers)
        if part.piped and part.has_problem(ProblemKind.PIPED_CODE):
            add((PIPE_TO_SHELL, f"pipes another command's output into {prog}, which runs it"))
        if part.has_problem(ProblemKind.GENERATED_CODE):
            add((PIPE_TO_SHELL, f"{prog} runs code produced by another command"))
        # shell state
        _shell_state(part, add)
        # arguments that run code
        for fact in argument_facts(part):
            if fact.effect == "runs-code":
                add((RUNS_CODE, fact.reason))

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
            add((WRITE_OUTSIDE, f"{how} {spot}, outside the project ({root})"))
        if (
            where.name in SHELL_RC_NAMES
            or spot.startswith(SHELL_RC_SYSTEM)
            or ("/.config/fish/" in spot)
        ):
            add((SHELL_CONFIG, f"{how} {spot}, a shell start-up file"))
        if _sensitive(where):
            add((SENSITIVE_FILE, f"{how} {spot}, which changes what later commands do"))
        elif how in _TREE_WRITES and (where / ".git").exists():
            add(
                (
                    SENSITIVE_FILE,
                    f"{how} {spot}: files named by the archive may land in .git/ (hooks, config)",
                )
            )

    seen: set[tuple[str, str]] = set()
    labels = []
    for name, reason in found:
        if (name, reason) not in seen:
            seen.add((name, reason))
            labels.append(Label(name, reason, index, text))
    return labels


_DECLARE = ("export", "declare", "typeset", "readonly", "local")
_TREE_WRITES = frozenset({"tar -x extracts files into", "unzip extracts files into"})
_SAFE_SET = frozenset(
    {"-e", "+e", "-u", "+u", "-x", "+x", "-v", "+v", "-eu", "-ex", "-eux", "-euo"}
)
_SAFE_SET_O = frozenset({"pipefail", "errexit", "nounset", "xtrace", "verbose"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def assigned_names(part: Part) -> list[tuple[Word, str]]:
    """Every variable ``part`` sets, with how: ``NAME=value`` prefixes and bare assignments,
    ``for NAME in``, ``export/declare/typeset/local/readonly NAME[=value]``, ``read``,
    ``mapfile``/``readarray``, ``printf -v``, ``getopts`` and ``wait -p`` targets. Each
    word's value is the name (with any ``[subscript]``), or unknown."""
    out: list[tuple[Word, str]] = []
    for a in part.assignments:
        name = a.value.split("=", 1)[0].split("+", 1)[0] if a.static else a.text.split("=", 1)[0]
        out.append(
            (Word(name, name, a.static or bool(_NAME.fullmatch(name.split("[", 1)[0]))), "sets")
        )
    if part.kind != "command" or not part.words:
        return out
    prog = part.program
    args = list(part.words[1:])

    def name_word(w: Word) -> Word:
        head = w.value.split("=", 1)[0]
        if head.endswith("+"):
            head = head[:-1]
        return Word(head, head, w.static)

    if prog in _DECLARE:
        if any(w.static and w.value.startswith("-") and "p" in w.value[1:] for w in args):
            return out  # -p prints
        for w in args:
            if w.static and w.value.startswith(("-", "+")):
                continue
            out.append((name_word(w), f"{prog} sets"))
    elif prog == "unset":
        if any(w.static and w.value.startswith("-") and "f" in w.value[1:] for w in args):
            return out  # functions
        for w in args:
            if not (w.static and w.value.startswith("-")):
                out.append((w, "unsets"))  # an unset PATH makes bash search the current directory
    elif prog == "read":
        operands = _operands(args, "dinNptu", "a")
        out += [(w, "read sets") for w in operands[0]] + [(w, "read -a sets") for w in operands[1]]
        if not operands[0] and not operands[1]:
            out.append((Word.literal("REPLY"), "read sets"))
    elif prog in ("mapfile", "readarray"):
        names, _ = _operands(args, "dnOsuCc", "")
        out += [(w, f"{prog} sets") for w in names] or [(Word.literal("MAPFILE"), f"{prog} sets")]
    elif prog == "printf":
        for i, w in enumerate(args):
            if w.value == "-v" and i + 1 < len(args):
                out.append((args[i + 1], "printf -v sets"))
                break
            if w.value.startswith("-v") and len(w.value) > 2:
                out.append((Word(w.text[2:], w.value[2:], w.static), "printf -v sets"))
                break
            if w.value == "--" or not w.value.startswith("-"):
                break
    elif prog == "getopts" and len(args) >= 2:
        out.append((args[1], "getopts sets"))
    elif prog == "wait":
        for i, w in enumerate(args):
            if w.value == "-p" and i + 1 < len(args):
                out.append((args[i + 1], "wait -p sets"))
    return out


def _operands(args: list[Word], with_arg: str, array: str) -> tuple[list[Word], list[Word]]:
    """(operands, arrays) of a builtin with short options (``read -a ARR -p PROMPT NAME``)."""
    names: list[Word] = []
    arrays: list[Word] = []
    i = 0
    while i < len(args):
        w = args[i]
        v = w.value
        if v == "--":
            names += args[i + 1 :]
            break
        if w.static and v.startswith("-") and len(v) > 1:
            for k, letter in enumerate(v[1:]):
                if letter in with_arg or letter in array:
                    rest = v[k + 2 :]
                    target = (
                        Word(rest, rest, w.static)
                        if rest
                        else (args[i + 1] if i + 1 < len(args) else None)
                    )
                    if not rest:
                        i += 1
                    if letter in array and target is not None:
                        arrays.append(target)
                    break
            i += 1
            continue
        names.append(w)
        i += 1
    return names, arrays


def _assignment_labels(part: Part, add: _Add) -> None:
    for word, how in assigned_names(part):
        if not word.static:
            add((SHELL_STATE, f"{how} a variable whose name is only known when it runs"))
            continue
        name = word.value.split("[", 1)[0]
        if name == "IFS" and how == "sets" and part.kind == "command" and part.words:
            continue  # `IFS= read -r line`: only that command's word splitting
        if sensitive_variable(name):
            add((SHELL_STATE, f"{how} {name}, which changes what later commands run"))
        if "[" in word.value and re.search(r"[$`]", word.value.split("[", 1)[1]):
            add((RUNS_CODE, f"{how} {word.value!r}: bash runs the code in its subscript"))
    if part.kind == "command" and part.program in _DECLARE:
        flags = _flags(part.words[1:])
        if "-n" in flags:
            add((SHELL_STATE, f"{part.program} -n makes a name refer to another variable"))
        if "-i" in flags:
            add(
                (
                    SHELL_STATE,
                    f"{part.program} -i makes later assignments arithmetic (which can run code)",
                )
            )
        if "-f" in flags:
            add((SHELL_STATE, f"{part.program} -f exports shell functions"))


_SUBSTITUTION = re.compile(r"[$`]")


def _code_in_text(part: Part, add: _Add) -> None:
    """Arithmetic and indirect expansions evaluate a variable's text; bash runs any
    ``$(…)`` it finds there (``v='a[$(cmd)]'; echo $((v))``)."""
    for text in part.arithmetic:
        if re.search(r"[A-Za-z_$`]", text.removeprefix("$((").removeprefix("$[")):
            add(
                (
                    RUNS_CODE,
                    f"evaluates {text[:40]!r} as arithmetic: bash runs any $(…) in a "
                    "variable's value",
                )
            )
            break
    if part.indirect:
        add(
            (
                RUNS_CODE,
                f"{part.indirect[0][:40]} evaluates the text of a variable (bash runs $(…) in it)",
            )
        )


_BASH_SOCKETS = ("/dev/tcp/", "/dev/udp/")
_NOT_LITERAL = re.compile(r"[$`\\*?[{~]")


def _bash_network(part: Part, add: _Add) -> None:
    """A redirection from or to ``/dev/tcp/HOST/PORT`` (or ``/dev/udp/…``) is no file: bash
    itself connects, whatever program the rule allowed, and the host name alone can carry
    data out (a DNS look-up).  bash matches the name as written, so a target whose literal
    start could still become one of these (``< "$t"``, ``< /dev/tcp/$h/80``) counts too."""
    for red in part.redirects:
        if red.target is None or not (red.reads or red.writes):
            continue
        word = red.target
        if word.static:
            if word.value.startswith(_BASH_SOCKETS):
                add((BASH_NETWORK, f"bash connects to {word.value[5:]} for the redirection"))
            continue
        start = _NOT_LITERAL.split(word.text, 1)[0].replace('"', "").replace("'", "")
        if any(s.startswith(start) or start.startswith(s) for s in _BASH_SOCKETS):
            add(
                (
                    BASH_NETWORK,
                    f"redirects from or to {word.text!r}, named only at run time: bash "
                    "connects to the network itself for a name under /dev/tcp/ or /dev/udp/",
                )
            )


def _shell_state(part: Part, add: _Add) -> None:
    prog = part.program
    args = part.words[1:]
    values = [w.value for w in args]
    if prog == "alias" and (any("=" in v for v in values) or any(not w.static for w in args)):
        add((SHELL_STATE, "defines an alias that changes what a later command runs"))
    elif prog == "unalias":
        add((SHELL_STATE, "unalias changes what a later command runs"))
    elif prog == "trap" and values and not values[0].startswith("-"):
        add((SHELL_STATE, "trap installs code that runs later, on a signal or exit"))
    elif prog == "exec" and not args:
        add((SHELL_STATE, "exec with only redirections rewires the shell's own input/output"))
    elif prog in ("enable", "shopt", "bind", "complete", "compopt"):
        if not (
            prog == "shopt"
            and values
            and all(v in ("-p", "-q") or not v.startswith("-") for v in values)
            and "-s" not in values
            and "-u" not in values
            and len(values) <= 1
        ):
            add((SHELL_STATE, f"{prog} changes how the shell behaves"))
    elif prog == "set":
        i = 0
        while i < len(values):
            v = values[i]
            if v == "--" or not v.startswith(("-", "+")) or v in ("-", "+"):
                break
            if v in ("-o", "+o"):
                if i + 1 < len(values) and values[i + 1] not in _SAFE_SET_O:
                    add((SHELL_STATE, f"set {v} {values[i + 1]} changes how the shell behaves"))
                i += 2
                continue
            if v not in _SAFE_SET:
                add((SHELL_STATE, f"set {v} changes how the shell behaves"))
            i += 1
        if any(not w.static for w in args):
            add((SHELL_STATE, "set gets options known only at run time"))
    elif prog == "hash" and any(v.startswith("-") and "p" in v for v in values):
        add((SHELL_STATE, "hash -p makes a command name run another file"))
    elif prog in ("source", ".") and values:
        pass


_CREDENTIAL_DIRS = (".ssh", ".aws", ".gnupg", ".kube", ".docker", ".azure", ".password-store")
_CREDENTIAL_CONFIG = ("gh", "gcloud", "hub", "git/credentials", "rclone", "op", "doctl")
_CREDENTIAL_FILES = (
    ".netrc",
    ".git-credentials",
    ".pgpass",
    ".my.cnf",
    ".npmrc",
    ".pypirc",
    "_netrc",
)
_CREDENTIAL_TEXT = re.compile(
    r"(^|/)(\.ssh|\.aws|\.gnupg|\.kube|\.docker|\.netrc|_netrc|\.git-credentials|\.pgpass|\.pypirc"
    r"|\.npmrc|\.password-store|\.config/(gh|gcloud|hub|rclone|op)|\.azure)(/|$|[*?\[{])"
    r"|/proc/[^/]*/(environ|mem|maps)|(^|/)\.env(\.[A-Za-z0-9_.-]*)?$"
)


def _credential_reads(part: Part, root: Path, home: Path, add: _Add) -> None:
    """A word or redirection naming a credential store (``~/.ssh``, ``~/.aws``,
    ``~/.netrc``, ``~/.config/gh``, ``/proc/*/environ``, ``.env`` files outside the project…)."""
    words = list(part.words[1:]) + list(part.assignments)
    words += [r.target for r in part.redirects if r.target is not None]  # here-strings too
    words += [f.target for f in argument_facts(part) if f.target is not None]
    recursive = _reads_recursively(part)
    stores = [f"{home}/{d}" for d in (*_CREDENTIAL_DIRS, *_CREDENTIAL_FILES, ".config")]

    def holds_a_store(path: Path) -> bool:  # the path is a store or a directory above one
        spot = str(path).rstrip("/") + "/"
        return any((s + "/").startswith(spot) for s in stores)

    in_home = part.cwd is not None and holds_a_store(part.cwd)
    for w in words:
        if w.static and w.value.startswith("-") and "=" not in w.value and "/" not in w.value:
            continue  # an option, not a path
        why = _credential(w, part.cwd, root, home)
        if not why and not w.static:
            rest = _HOME_PREFIX.sub(str(home), w.value)
            if rest.startswith((str(home) + "/$", str(home) + "/`")) or (
                in_home and w.value.startswith(("$", "`"))
            ):
                why = "may name a credential store (a path under your home chosen at run time)"
        if not why and recursive:
            where = path_of(Word.literal(_HOME_PREFIX.sub(str(home), w.value)), part.cwd, home)
            if where is not None and holds_a_store(where):
                why = f"is read recursively by {part.program}, including credential stores"
        if why:
            add((CREDENTIALS, f"{w.text[:60]!r} {why}"))
            return


_ALWAYS_RECURSIVE = frozenset({"tar", "zip", "7z", "rsync", "rg", "ag", "rclone", "du"})


def _reads_recursively(part: Part) -> bool:
    """True when ``part`` reads whole directory trees (``tar``, ``cp -r``, ``grep -r``…)."""
    prog = part.program
    if part.kind != "command" or not prog:
        return False
    if prog in _ALWAYS_RECURSIVE - {"du"}:
        return True
    flags = _flags(part.words[1:])
    if prog in ("cp", "scp", "grep", "egrep", "fgrep", "chmod", "ls"):
        return bool(flags & {"-r", "-R", "-a", "--recursive", "--archive"}) and prog != "chmod"
    if prog == "find":
        return any(w.value.startswith(("-exec", "-ok", "-fprint", "-fls")) for w in part.words)
    return False


_HOME_PREFIX = re.compile(r"^(~|\$HOME|\$\{HOME\})(?=/|$)")
_DYNAMIC_CHARS = re.compile(r"[*?\[{$`]")


def _credential(word: Word, base: Path | None, root: Path, home: Path) -> str:
    value = word.value if word.value else word.text
    if "=" in value and not value.startswith(("/", "~", ".", "$")):
        value = value.split("=", 1)[1]  # --file=~/.netrc, of=…, NAME=path
    value = _HOME_PREFIX.sub(str(home), value)
    if not value:
        return ""
    dynamic = not word.static and _DYNAMIC_CHARS.search(value) is not None
    if not dynamic:
        where = path_of(Word.literal(value), base, home)
        if where is not None:
            for spot in dict.fromkeys((str(where), os.path.realpath(where))):
                why = _credential_path(Path(spot), root, home)
                if why:
                    return why
            return ""
    if _CREDENTIAL_TEXT.search(value):
        return "may name a credential store"
    # a glob or expansion whose fixed start leads towards a credential store
    fixed = _DYNAMIC_CHARS.split(value, maxsplit=1)[0]
    if fixed.startswith(str(home) + "/."):
        rest = fixed[len(str(home)) + 1 :]
        stores = [*_CREDENTIAL_DIRS, *_CREDENTIAL_FILES, ".config/"]
        if any(st.startswith(rest) or rest.startswith(st) for st in stores):
            return "may name a credential store"
    if fixed.startswith("/proc/") and ("environ" in value or fixed.count("/") <= 2):
        return "may name another process's environment"
    return ""


def _credential_path(where: Path, root: Path, home: Path) -> str:
    spot = str(where)
    rel = spot[len(str(home)) + 1 :] if spot.startswith(str(home) + "/") else ""
    if rel and (
        rel.split("/", 1)[0] in _CREDENTIAL_DIRS + _CREDENTIAL_FILES
        or any(rel == f".config/{c}" or rel.startswith(f".config/{c}/") for c in _CREDENTIAL_CONFIG)
    ):
        return "is a credential store"
    if re.fullmatch(r"/proc/[^/]+/(task/[^/]+/)?(environ|mem|maps)", spot):
        return "holds another process's environment (secrets)"
    if re.fullmatch(r"\.env(\.[A-Za-z0-9_.-]*)?", where.name) and not _inside(where, root):
        return "is an environment file outside the project"
    return ""


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
    if ".git" in parts or path.name in (".envrc", ".gitmodules", ".gitattributes"):
        return True  # hooks, config, a `gitdir:` file, direnv, filters and submodule URLs
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
