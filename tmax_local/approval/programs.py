"""Programs whose arguments make them run code or write files, as data.

A rule such as ``sed *`` approves a program, but ``sed 's/x/y/e'`` runs a shell command,
``sort -o ~/.bashrc`` writes a start-up file and ``git -c core.pager='sh -c …' log`` runs
whatever the pager says. `argument_facts` reads a part's arguments and returns what they
make the program do:

- ``runs-code``: the arguments run code we do not analyse (the label `labels.RUNS_CODE`,
  which no allow rule covers);
- ``writes``: a file it writes (judged like a redirection: outside the project, a start-up
  file, ``.git/``…);
- ``reads``: a file it reads (checked for credentials).

Each program has one small function in `CHECKS`; unknown long options that abbreviate a
risky one count as that option (GNU getopt accepts unambiguous prefixes). `CODE_FROM_ARGS`
lists the programs that can run code because of their arguments or the files they are
pointed at: "always allow" never suggests ``PROGRAM *`` for them, and a project's rules
cannot allow them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from tmax_local.approval.parts import Part, Word

__all__ = ["CHECKS", "CODE_FROM_ARGS", "Fact", "argument_facts", "runs_code_from_args"]

Effect = Literal["runs-code", "writes", "reads"]


@dataclass(frozen=True)
class Fact:
    """One thing a part's arguments make its program do."""

    effect: Effect
    reason: str
    target: Word | None = None
    """The file written or read (``writes``/``reads``)."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    """A program's option syntax: short letters and long names taking an argument, and
    the other long names (for resolving abbreviations)."""

    short_arg: str = ""
    long_arg: frozenset[str] = frozenset()
    long_flags: frozenset[str] = frozenset()
    first_operand_ends: bool = False
    """True when options stop at the first operand (POSIX style, e.g. ``awk``)."""

    def resolve(self, name: str) -> str:
        """The long option ``name`` (without ``--``) stands for, or ``name`` itself."""
        known = self.long_arg | self.long_flags
        if name in known:
            return name
        hits = sorted(k for k in known if k.startswith(name))
        return hits[0] if len(hits) == 1 else name


def split_options(
    args: Iterable[Word], spec: Options
) -> tuple[list[tuple[str, Word | None]], list[Word]]:
    """([(option, its argument or None)], operands). Short options are ``-x``; long ones
    ``--name`` (resolved abbreviations). A non-static word that could be an option is
    reported as the option ``?``."""
    opts: list[tuple[str, Word | None]] = []
    operands: list[Word] = []
    items = list(args)
    i = 0
    only = False
    while i < len(items):
        w = items[i]
        v = w.value
        if only or v == "-" or not v.startswith("-"):
            if not w.static and w.text.startswith(("$", '"$', "`", '"`')) and not only:
                opts.append(("?", w))
            operands.append(w)
            if spec.first_operand_ends and not only:
                only = True
            i += 1
            continue
        if v == "--":
            only = True
            i += 1
            continue
        if v.startswith("--"):
            name, eq, val = v[2:].partition("=")
            name = spec.resolve(name)
            if eq:
                opts.append((f"--{name}", Word(val, val, w.static)))
            elif name in spec.long_arg and i + 1 < len(items):
                opts.append((f"--{name}", items[i + 1]))
                i += 1
            else:
                opts.append((f"--{name}", None))
            i += 1
            continue
        j = 1
        while j < len(v):
            letter = v[j]
            if letter in spec.short_arg:
                rest = v[j + 1 :]
                if rest:
                    opts.append((f"-{letter}", Word(rest, rest, w.static)))
                elif i + 1 < len(items):
                    opts.append((f"-{letter}", items[i + 1]))
                    i += 1
                else:
                    opts.append((f"-{letter}", None))
                break
            opts.append((f"-{letter}", None))
            j += 1
        i += 1
    return opts, operands


# --------------------------------------------------------------------------- sed

_SED = Options(
    short_arg="efl",
    long_arg=frozenset({"expression", "file", "line-length", "in-place"}),
    long_flags=frozenset(
        {
            "quiet",
            "silent",
            "debug",
            "follow-symlinks",
            "posix",
            "regexp-extended",
            "separate",
            "sandbox",
            "unbuffered",
            "null-data",
            "zero-terminated",
            "help",
            "version",
            "binary",
        }
    ),
)


def _sed(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    opts, operands = split_options(args, _SED)
    scripts = [w for o, w in opts if o in ("-e", "--expression") and w is not None]
    files = [w for o, w in opts if o in ("-f", "--file") and w is not None]
    out: list[Fact] = []
    if any(o == "?" for o, _ in opts):
        out.append(Fact("runs-code", "sed gets an option known only at run time"))
    for f in files:
        out.append(
            Fact("runs-code", f"sed reads its script from {f.text!r}, which is not reviewed")
        )
    if not scripts and not files and operands:
        scripts = [operands[0]]
    for s in scripts:
        if not s.static:
            out.append(Fact("runs-code", f"the sed script {s.text!r} is only known when it runs"))
            continue
        out += sed_script_facts(s.value)
    return out


def sed_script_facts(script: str) -> list[Fact]:
    """What a sed script does besides editing the stream: ``e`` and ``s///e`` run
    commands, ``w``/``W``/``s///w`` write files, ``r``/``R`` read files."""
    out: list[Fact] = []
    i = 0
    n = len(script)

    def rest_of_line(k: int) -> tuple[str, int]:
        end = script.find("\n", k)
        end = n if end < 0 else end
        return script[k:end], end

    def delimited(k: int, delim: str, regex: bool = False) -> int:
        """Index just after the next unescaped ``delim`` from ``k`` (or -1). In a regular
        expression a bracket expression (``[/]``) does not end it."""
        while k < n:
            c = script[k]
            if c == "\\":
                k += 2
                continue
            if c == "\n" and delim != "\n":
                return -1
            if regex and c == "[":
                j = k + 1
                if j < n and script[j] == "^":
                    j += 1
                if j < n and script[j] == "]":
                    j += 1
                while j < n and script[j] != "]":
                    if script[j] == "[" and j + 1 < n and script[j + 1] in ":.=":
                        close = script.find(script[j + 1] + "]", j + 2)
                        j = close + 2 if close >= 0 else n
                        continue
                    j += 1
                if j >= n:
                    return -1
                k = j + 1
                continue
            if c == delim:
                return k + 1
            k += 1
        return -1

    while i < n:
        c = script[i]
        if c in " \t\n;}{!":
            i += 1
            continue
        # addresses
        if c.isdigit() or c in "$,+~":
            i += 1
            continue
        if c == "/" or c == "\\":
            delim = "/" if c == "/" else (script[i + 1] if i + 1 < n else "")
            j = delimited(i + (1 if c == "/" else 2), delim, regex=True)
            if j < 0:
                return [Fact("runs-code", "the sed script could not be read")]
            i = j
            while i < n and script[i] in "IM":
                i += 1
            continue
        if c == "#":
            _, i = rest_of_line(i)
            continue
        if c in ":btT":
            while i < n and script[i] not in ";\n":
                i += 1
            continue
        if c in "aic":
            _, i = rest_of_line(i)
            while i > 0 and script[i - 1] == "\\" and i < n:
                _, i = rest_of_line(i + 1)
            continue
        if c in "rRwW":
            name, i = rest_of_line(i + 1)
            target = Word.literal(name.strip())
            if c in "wW":
                out.append(Fact("writes", f"sed '{c}' writes to", target))
            else:
                out.append(Fact("reads", f"sed '{c}' reads", target))
            continue
        if c == "e":
            code, i = rest_of_line(i + 1)
            out.append(
                Fact(
                    "runs-code",
                    f"sed 'e' runs a shell command{': ' + code.strip() if code.strip() else ''}",
                )
            )
            continue
        if c in "sy":
            if i + 1 >= n:
                return [Fact("runs-code", "the sed script could not be read")]
            delim = script[i + 1]
            if delim in "\n\\":
                return [Fact("runs-code", "the sed script could not be read")]
            j = delimited(i + 2, delim, regex=c == "s")
            k = delimited(j, delim) if j >= 0 else -1
            if k < 0:
                return [Fact("runs-code", "the sed script could not be read")]
            i = k
            if c == "y":
                continue
            while i < n and script[i] not in ";\n}":
                flag = script[i]
                if flag == "e":
                    out.append(Fact("runs-code", "sed s///e runs the pattern space as a command"))
                elif flag == "w":
                    name, i = rest_of_line(i + 1)
                    out.append(Fact("writes", "sed s///w writes to", Word.literal(name.strip())))
                    break
                elif flag in "rR":  # not a flag: be safe
                    return [Fact("runs-code", "the sed script could not be read")]
                i += 1
            continue
        if c in "=dDgGhHlnNpPxzFqQLv":
            i += 1
            while i < n and (script[i].isdigit() or script[i] in " \t"):
                i += 1
            continue
        return [Fact("runs-code", f"the sed script has a command we do not know ({c!r})")]
    return out


# --------------------------------------------------------------------------- awk

_AWK = Options(
    short_arg="FvfEeilW",
    long_arg=frozenset(
        {
            "field-separator",
            "assign",
            "file",
            "exec",
            "source",
            "include",
            "load",
            "dump-variables",
            "profile",
            "pretty-print",
            "debug",
        }
    ),
    long_flags=frozenset({"sandbox", "posix", "traditional", "lint", "version", "help"}),
    first_operand_ends=True,
)
_AWK_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_AWK_PRINT = re.compile(r"\b(print|printf)\b")


def _awk(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    opts, operands = split_options(args, _AWK)
    out: list[Fact] = []
    programs: list[Word] = []
    for o, w in opts:
        if o == "?":
            out.append(Fact("runs-code", "awk gets an option known only at run time"))
        elif o in ("-f", "--file", "-E", "--exec", "-i", "--include"):
            name = w.text if w is not None else ""
            out.append(
                Fact("runs-code", f"awk runs the program in {name!r}, which is not reviewed")
            )
        elif o in ("-l", "--load"):
            out.append(Fact("runs-code", "awk loads a compiled extension"))
        elif o in ("-e", "--source") and w is not None:
            programs.append(w)
        elif o in ("--dump-variables", "--profile", "--pretty-print", "--debug") and w is not None:
            out.append(Fact("writes", f"awk {o} writes to", w))
        elif o.startswith("-W"):
            out.append(Fact("runs-code", "awk -W sets implementation options"))
    if not programs and not any(o in ("-f", "--file", "-E", "--exec") for o, _ in opts):
        programs = operands[:1]
    for prog in programs:
        if not prog.static:
            out.append(
                Fact("runs-code", f"the awk program {prog.text!r} is only known when it runs")
            )
        else:
            out += awk_program_facts(prog.value)
    return out


def awk_program_facts(program: str) -> list[Fact]:
    """``system()``, pipes to and from commands, ``print > file`` and ``getline < file``."""
    out: list[Fact] = []
    # Checked on the raw text: telling strings from regular expressions (`/"/`) needs a
    # real awk parser, and a string that only looks like code merely means "ask".
    bare = program
    if re.search(r"\bsystem\s*\(", bare):
        out.append(Fact("runs-code", "awk system() runs shell commands"))
    if re.search(r"\|(?!\|)", bare.replace("||", "")):
        out.append(Fact("runs-code", "awk pipes to or from a shell command (| or |&)"))
    if re.search(r"@\s*[A-Za-z_]", bare) or "/inet" in program:
        out.append(Fact("runs-code", "awk loads code, calls a function by name or opens a socket"))
    for m in _AWK_PRINT.finditer(bare):
        depth = 0
        k = m.end()
        while k < len(bare) and bare[k] not in ";\n}":
            ch = bare[k]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == ">" and depth <= 0:
                target = _awk_target(program, bare, k)
                out.append(Fact("writes", f"awk {m.group(1)} > writes to", target))
                break
            k += 1
    for m in re.finditer(r"\bgetline\b[^;\n}<]*<", bare):
        out.append(Fact("reads", "awk getline reads", _awk_target(program, bare, m.end() - 1)))
    return out


def _awk_target(program: str, bare: str, at: int) -> Word:
    """The file after ``>``/``>>``/``<`` at ``at``: a literal string, or unknown."""
    k = at + 1
    if k < len(bare) and bare[k] == ">":
        k += 1
    while k < len(bare) and bare[k] in " \t":
        k += 1
    m = _AWK_STRING.match(program, k)
    if m is not None:
        after = program[m.end() :].lstrip(" \t")
        if not after or after[0] in ";\n})":
            value = m.group(0)[1:-1]
            return Word.literal(value) if "\\" not in value else Word(value, value, False)
    return Word(program[k : k + 20], "", False)


# --------------------------------------------------------------------------- find

_FIND_WRITES = {"-fprint", "-fprint0", "-fprintf", "-fls"}


def _find(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    for i, w in enumerate(args):
        if w.value in _FIND_WRITES and i + 1 < len(args):
            out.append(Fact("writes", f"find {w.value} writes to", args[i + 1]))
    return out


# --------------------------------------------------------------------------- git

GIT_COMMANDS = frozenset(
    [
        "add",
        "am",
        "annotate",
        "apply",
        "archive",
        "bisect",
        "blame",
        "branch",
        "bundle",
        "cat-file",
        "check-attr",
        "check-ignore",
        "check-mailmap",
        "checkout",
        "checkout-index",
        "cherry",
        "cherry-pick",
        "citool",
        "clean",
        "clone",
        "commit",
        "commit-graph",
        "commit-tree",
        "config",
        "count-objects",
        "describe",
        "diff",
        "diff-files",
        "diff-index",
        "diff-tree",
        "difftool",
        "fetch",
        "for-each-ref",
        "format-patch",
        "fsck",
        "gc",
        "grep",
        "hash-object",
        "help",
        "init",
        "log",
        "ls-files",
        "ls-remote",
        "ls-tree",
        "merge",
        "merge-base",
        "merge-file",
        "mergetool",
        "mv",
        "name-rev",
        "notes",
        "pull",
        "push",
        "range-diff",
        "read-tree",
        "rebase",
        "reflog",
        "remote",
        "repack",
        "replace",
        "restore",
        "rev-list",
        "rev-parse",
        "revert",
        "rm",
        "shortlog",
        "show",
        "show-branch",
        "show-ref",
        "sparse-checkout",
        "stash",
        "status",
        "submodule",
        "switch",
        "symbolic-ref",
        "tag",
        "update-index",
        "update-ref",
        "var",
        "verify-commit",
        "verify-tag",
        "version",
        "whatchanged",
        "worktree",
        "write-tree",
        "maintenance",
    ]
)
"""git's own commands; any other name may be an alias, and an alias can run a shell."""
_GIT_GLOBAL_ARG = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env"}
)
_GIT_CODE_OPTIONS = {
    "--upload-pack": "git --upload-pack runs a program",
    "--receive-pack": "git --receive-pack runs a program",
    "--exec": "git --exec runs a program",
    "--open-files-in-pager": "git grep -O opens a pager program",
    "--ext-diff": "git --ext-diff runs an external diff program",
    "--extcmd": "git difftool --extcmd runs a program",
    "--tool": "git difftool/mergetool runs a tool program",
    "--sequence-editor": "runs an editor program",
    "--run": "runs a program",
    "--template": "copies hooks from a template directory",
    "--sendmail-cmd": "git send-email runs a program",
    "--smtp-server": "git send-email may run a program",
    "--to-cmd": "git send-email runs a program",
    "--cc-cmd": "git send-email runs a program",
    "--header-cmd": "git send-email runs a program",
    "--config": "sets configuration, which can name programs",
}
_GIT_READ_ONLY = frozenset(
    [
        "status",
        "log",
        "diff",
        "show",
        "blame",
        "grep",
        "shortlog",
        "rev-parse",
        "rev-list",
        "ls-files",
        "ls-tree",
        "ls-remote",
        "cat-file",
        "describe",
        "show-ref",
        "show-branch",
        "for-each-ref",
        "name-rev",
        "cherry",
        "whatchanged",
        "annotate",
        "count-objects",
        "check-ignore",
        "check-attr",
        "diff-tree",
        "diff-index",
        "diff-files",
        "range-diff",
        "version",
        "help",
        "var",
        "verify-commit",
        "verify-tag",
        "merge-base",
        "fsck",
    ]
)
"""git commands that only read; the others may write in (or around) the current directory."""
_GIT_STRATEGIES = frozenset({"ort", "recursive", "resolve", "octopus", "ours", "subtree"})
_GIT_SUBCOMMAND_CODE = {
    ("rebase", "-x"): "git rebase -x runs a shell command after each commit",
    ("rebase", "--exec"): "git rebase --exec runs a shell command after each commit",
    ("grep", "-O"): "git grep -O opens the matches in a pager program",
    ("clone", "-u"): "git clone -u runs a program as upload-pack",
    ("difftool", "-x"): "git difftool -x runs a program",
    ("difftool", "-t"): "git difftool -t runs a tool",
    ("mergetool", "-t"): "git mergetool -t runs a tool",
}


def _git(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    values = [w.value for w in args]
    i = 0
    while i < len(args) and values[i].startswith("-"):
        v = values[i]
        key = v.split("=", 1)[0]
        if key in ("-c", "--config-env") or v.startswith("-c"):
            out.append(
                Fact("runs-code", f"git {key} sets configuration, which can name programs to run")
            )
        elif key == "--exec-path" and "=" in v:
            out.append(
                Fact("runs-code", "git --exec-path runs git commands from another directory")
            )
        elif key in ("-C", "--git-dir", "--work-tree") and i + 1 < len(args) and "=" not in v:
            out.append(Fact("writes", f"git {key} works in", args[i + 1]))
        elif key in ("--git-dir", "--work-tree") and "=" in v:
            val = v.split("=", 1)[1]
            out.append(Fact("writes", f"git {key} works in", Word(val, val, args[i].static)))
        if not args[i].static:
            out.append(Fact("runs-code", "git gets an option known only at run time"))
        i += (
            2
            if (key in _GIT_GLOBAL_ARG and "=" not in v and not v.startswith("-c")) or v == "-c"
            else 1
        )
    rest = args[i:]
    if not rest:
        return out
    if any(w.value.startswith(("ext::", "fd::")) for w in args):
        out.append(Fact("runs-code", "git's ext:: and fd:: transports run commands"))
    sub = rest[0]
    if not sub.static:
        return out + [Fact("runs-code", "the git command is only known when it runs")]
    name = sub.value
    if name not in _GIT_READ_ONLY and not any(
        w.value.startswith(("-C", "--git-dir", "--work-tree")) for w in args[:i]
    ):
        # it changes the repository (or files) around the directory it runs in
        out.append(Fact("writes", f"git {name} changes the repository in", Word.literal(".")))
    if name not in GIT_COMMANDS:
        out.append(
            Fact(
                "runs-code",
                f"git {name!r} is not a git command: it may be an alias, which can run a shell",
            )
        )
        return out
    sub_args = rest[1:]
    for j, w in enumerate(sub_args):
        v = w.value
        if not w.static and w.text.startswith(("$", '"$')):
            out.append(Fact("runs-code", "git gets an option known only at run time"))
        key = v.split("=", 1)[0]
        long = next(
            (
                k
                for k in _GIT_CODE_OPTIONS
                if key.startswith("--") and len(key) > 4 and k.startswith(key)
            ),
            None,
        )
        if long is not None:
            out.append(Fact("runs-code", _GIT_CODE_OPTIONS[long]))
        if (
            key.startswith("--output")
            or key == "--output-directory"
            or (name in ("format-patch", "archive") and key == "-o")
        ):
            target = (
                Word(v.split("=", 1)[1], v.split("=", 1)[1], w.static)
                if "=" in v
                else (sub_args[j + 1] if j + 1 < len(sub_args) else None)
            )
            if target is not None:
                out.append(Fact("writes", f"git {name} {key} writes to", target))
        if key.startswith("-") and not key.startswith("--") and len(key) > 1:
            for letter in key[1:]:
                reason = _GIT_SUBCOMMAND_CODE.get((name, f"-{letter}"))
                if (
                    reason is None
                    and name in ("fetch", "clone", "ls-remote", "pull")
                    and letter == "u"
                ):
                    reason = f"git {name} -u runs a program as upload-pack"
                if reason:
                    out.append(Fact("runs-code", reason))
                    break
                if name == "grep" and letter.isalpha() is False:
                    break
    for j, w in enumerate(sub_args):
        v = w.value
        if name in ("merge", "pull", "rebase", "cherry-pick", "revert") and (
            v in ("-s", "--strategy") or v.startswith(("-s", "--strategy="))
        ):
            strategy = v.split("=", 1)[1] if "=" in v else v[2:] if v.startswith("-s") else ""
            if not strategy and j + 1 < len(sub_args):
                strategy = sub_args[j + 1].value
            if strategy not in _GIT_STRATEGIES:
                out.append(
                    Fact("runs-code", f"git {name} -s {strategy!r} runs git-merge-{strategy}")
                )
        if name in ("clone", "init", "submodule") and v == "-c":
            out.append(
                Fact("runs-code", f"git {name} -c sets configuration, which can name programs")
            )
    if name == "submodule" and "foreach" in [w.value for w in sub_args]:
        out.append(
            Fact("runs-code", "git submodule foreach runs a shell command in each submodule")
        )
    if name == "bisect" and sub_args[:1] and sub_args[0].value == "run":
        out.append(Fact("runs-code", "git bisect run runs a command"))
    if name == "filter-branch":
        out.append(Fact("runs-code", "git filter-branch runs shell filters"))
    if (
        name == "config"
        and not any(
            w.value in ("-l", "--list", "--get", "--get-all", "--get-regexp", "get", "list", "-e")
            or w.value.startswith("--get")
            for w in sub_args
        )
        and len([w for w in sub_args if not w.value.startswith("-")]) >= 2
    ):
        out.append(Fact("runs-code", "git config changes settings, which can name programs to run"))
    if name == "config" and any(w.value in ("-e", "--edit") for w in sub_args):
        out.append(Fact("runs-code", "git config --edit runs an editor"))
    if name in ("worktree",) and sub_args[:1] and sub_args[0].value == "add" and len(sub_args) > 1:
        operands = [w for w in sub_args[1:] if not w.value.startswith("-")]
        if operands:
            out.append(Fact("writes", "git worktree add writes into", operands[0]))
    if name in ("clone", "init") and sub_args:
        operands = [w for w in sub_args if not w.value.startswith("-")]
        if name == "clone" and len(operands) >= 2:
            out.append(Fact("writes", "git clone writes into", operands[1]))
        if name == "init" and operands:
            out.append(Fact("writes", "git init writes into", operands[0]))
    return out


# --------------------------------------------------------------------------- tar

_TAR = Options(
    short_arg="bCfFgHIKLMNTVX",
    long_arg=frozenset(
        {
            "checkpoint-action",
            "to-command",
            "use-compress-program",
            "rsh-command",
            "info-script",
            "new-volume-script",
            "directory",
            "file",
            "files-from",
            "exclude-from",
            "index-file",
            "listed-incremental",
            "transform",
            "xform",
            "owner",
            "group",
            "mode",
            "format",
            "label",
            "exclude",
            "newer",
            "after-date",
            "blocking-factor",
            "record-size",
            "tape-length",
            "volno-file",
            "checkpoint",
            "quoting-style",
        }
    ),
    long_flags=frozenset(
        {
            "extract",
            "get",
            "create",
            "append",
            "update",
            "list",
            "diff",
            "compare",
            "delete",
            "concatenate",
            "catenate",
            "absolute-names",
            "overwrite",
            "unlink-first",
            "recursive-unlink",
            "force-local",
            "gzip",
            "bzip2",
            "xz",
            "zstd",
            "verbose",
            "to-stdout",
            "keep-old-files",
            "skip-old-files",
            "same-permissions",
            "preserve-permissions",
            "no-same-owner",
        }
    ),
)
_TAR_CODE = {
    "--checkpoint-action": "tar --checkpoint-action can run a command",
    "--to-command": "tar --to-command runs a command for each file",
    "--use-compress-program": "tar -I/--use-compress-program runs a program",
    "-I": "tar -I/--use-compress-program runs a program",
    "--rsh-command": "tar --rsh-command runs a program",
    "--info-script": "tar --info-script runs a script",
    "--new-volume-script": "tar --new-volume-script runs a script",
    "-F": "tar -F runs a script at the end of each volume",
}


def _tar(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    items = list(args)
    # old style: `tar xzf a.tgz` (the first word is a cluster of letters without a dash)
    if items and items[0].static and items[0].value and not items[0].value.startswith("-"):
        first = items[0].value
        takes = [c for c in first if c in _TAR.short_arg]
        rebuilt = [Word.literal(f"-{c}") for c in first]
        tail = items[1:]
        args_for = tail[: len(takes)]
        merged: list[Word] = []
        k = 0
        for flag in rebuilt:
            merged.append(flag)
            if flag.value[1] in _TAR.short_arg and k < len(args_for):
                merged.append(args_for[k])
                k += 1
        items = merged + tail[len(takes) :]
    opts, _ = split_options(items, _TAR)
    out: list[Fact] = []
    names = {o for o, _ in opts}
    for o, w in opts:
        if o == "?":
            out.append(Fact("runs-code", "tar gets an option known only at run time"))
        elif o in _TAR_CODE:
            out.append(Fact("runs-code", _TAR_CODE[o]))
        elif o in ("-f", "--file") and w is not None and re.match(r"[^/]*:", w.value):
            out.append(Fact("runs-code", "tar -f HOST:FILE runs a remote shell"))
    extracting = names & {"-x", "--extract", "--get"}
    creating = names & {"-c", "--create", "-r", "--append", "-u", "--update"}
    if extracting:
        dest = next((w for o, w in opts if o in ("-C", "--directory") and w is not None), None)
        out.append(
            Fact(
                "writes",
                "tar -x extracts files into",
                dest if dest is not None else Word.literal("."),
            )
        )
        if names & {"-P", "--absolute-names"}:
            out.append(
                Fact(
                    "writes",
                    "tar -P extracts files to the absolute paths in the archive",
                    Word("-P", "", False),
                )
            )
    if creating or extracting:
        pass
    if creating:
        archive = next((w for o, w in opts if o in ("-f", "--file") and w is not None), None)
        if archive is not None and archive.value != "-":
            out.append(Fact("writes", "tar writes the archive", archive))
    for o, w in opts:
        if o in ("--index-file", "--listed-incremental", "-g", "--volno-file") and w is not None:
            out.append(Fact("writes", f"tar {o} writes to", w))
    return out


# --------------------------------------------------------------------------- others


def _sort(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    spec = Options(
        short_arg="kotST",
        long_arg=frozenset(
            {
                "output",
                "compress-program",
                "key",
                "field-separator",
                "buffer-size",
                "temporary-directory",
                "files0-from",
                "parallel",
                "sort",
                "random-source",
                "batch-size",
            }
        ),
        long_flags=frozenset({"reverse", "unique", "numeric-sort", "check", "merge", "stable"}),
    )
    opts, _ = split_options(args, spec)
    out: list[Fact] = []
    for o, w in opts:
        if o in ("-o", "--output") and w is not None:
            out.append(Fact("writes", "sort -o writes to", w))
        elif o == "--compress-program":
            out.append(Fact("runs-code", "sort --compress-program runs a program"))
        elif o == "?":
            out.append(Fact("runs-code", "sort gets an option known only at run time"))
    return out


def _uniq(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    spec = Options(
        short_arg="fsw",
        long_arg=frozenset({"skip-fields", "skip-chars", "check-chars", "group", "all-repeated"}),
    )
    _, operands = split_options(args, spec)
    if len(operands) >= 2:
        return [Fact("writes", "uniq writes its output to", operands[1])]
    return []


def _pager(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    for i, w in enumerate(args):
        v = w.value
        if v.startswith("+") and ("!" in v or "|" in v or not w.static):
            out.append(Fact("runs-code", f"{part.program} {v[:20]!r} runs a command at start"))
        elif v in ("-o", "-O", "--log-file", "--LOG-FILE") and i + 1 < len(args):
            out.append(Fact("writes", f"{part.program} {v} writes to", args[i + 1]))
        elif v.startswith(("--log-file=", "--LOG-FILE=")):
            val = v.split("=", 1)[1]
            out.append(Fact("writes", f"{part.program} writes to", Word(val, val, w.static)))
    return out


def _editor(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    for w in args:
        v = w.value
        if (
            v
            in (
                "-c",
                "--cmd",
                "-S",
                "-s",
                "-u",
                "-U",
                "-x",
                "--eval",
                "-l",
                "--load",
                "-f",
                "--funcall",
                "--batch",
                "-e",
                "-E",
                "-es",
                "-Es",
            )
            or (v.startswith("+") and len(v) > 1 and not v[1:].isdigit())
            or v.startswith(("--eval=", "--load=", "--funcall="))
        ):
            return [Fact("runs-code", f"{part.program} {v[:20]} runs editor commands or scripts")]
    return []


def _option_runs(options: dict[str, str]) -> Callable[[Part, tuple[Word, ...]], list[Fact]]:
    """A check for programs where given options (and their ``=`` forms and unambiguous
    long abbreviations) run a program."""

    def check(part: Part, args: tuple[Word, ...]) -> list[Fact]:
        out: list[Fact] = []
        for w in args:
            v = w.value
            if v == "--":
                break
            key = v.split("=", 1)[0]
            for opt, why in options.items():
                hit = (
                    key == opt
                    or (
                        opt.startswith("--")
                        and key.startswith("--")
                        and len(key) > 3
                        and opt.startswith(key)
                    )
                    or (
                        not opt.startswith("--")
                        and len(opt) == 2
                        and key.startswith(opt)
                        and not key.startswith("--")
                    )
                )
                if hit:
                    out.append(Fact("runs-code", f"{part.program} {opt}: {why}"))
                    break
        return out

    return check


SQLITE_RISKY = r"^\s*\.(shell|system|load|once|output|import|read)"
PSQL_RISKY = r"\\(!|o|copy|i|ir|w|g)"
MYSQL_RISKY = r"(?i)^\s*(system|\\!|source|tee|\\\.)"


def _script_tool(part: Part, args: tuple[Word, ...], risky: str) -> list[Fact]:
    """Programs that run commands of their own language from arguments or stdin, where
    some commands run a shell or write files (``sqlite3 db '.shell x'``, ``ed <<< '!x'``)."""
    if part.piped or any(r.feeds_stdin or r.reads for r in part.redirects):
        return [
            Fact(
                "runs-code", f"{part.program} reads commands from its input, which can run a shell"
            )
        ]
    out: list[Fact] = []
    for w in args:
        if not w.static:
            out.append(Fact("runs-code", f"{part.program} gets a command known only at run time"))
        elif risky and re.search(risky, w.value, re.MULTILINE):
            out.append(
                Fact("runs-code", f"{part.program} {w.value[:30]!r} can run a shell or write files")
            )
        elif w.value in (
            "-cmd",
            "-init",
            "-f",
            "--file",
            "-b",
            "--batch",
            "-s",
        ) or w.value.startswith("--file="):
            out.append(Fact("runs-code", f"{part.program} {w.value} runs commands from a file"))
    if part.program in ("ed", "red", "ftp") and not out:
        out.append(
            Fact(
                "runs-code",
                f"{part.program} reads commands from the terminal, which can run a shell",
            )
        )
    return out


def _ssh_like(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    risky = (
        "proxycommand",
        "localcommand",
        "permitlocalcommand",
        "knownhostscommand",
        "match",
        "proxyjump",
        "remotecommand",
        "include",
        "sshcommand",
        "pkcs11provider",
        "securitykeyprovider",
    )
    for i, w in enumerate(args):
        v = w.value
        if v.startswith("-o"):
            opt = v[2:] if len(v) > 2 else (args[i + 1].value if i + 1 < len(args) else "")
            if not (
                args[i + 1].static if len(v) == 2 and i + 1 < len(args) else w.static
            ) or opt.lower().replace(" ", "").startswith(risky):
                out.append(
                    Fact("runs-code", f"{part.program} -o {opt[:30]!r} can run a local command")
                )
        elif v.startswith("-F"):
            out.append(Fact("runs-code", f"{part.program} -F reads a config that can run commands"))
        elif v.startswith("-S") and part.program in ("scp", "sftp"):
            out.append(Fact("runs-code", f"{part.program} -S runs a program instead of ssh"))
        elif v.startswith("-b") and part.program == "sftp":
            out.append(
                Fact("runs-code", "sftp -b runs batch commands, which can run a local shell")
            )
    return out


def _dd(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    return []


def _patch(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    if any(w.value in ("-o", "--output") or w.value.startswith("--output=") for w in args):
        return []
    return [
        Fact(
            "writes",
            "patch writes the files named in the patch",
            Word("(files in the patch)", "", False),
        )
    ]


def _unzip(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    if any(w.value.startswith("-") and any(c in w.value[1:] for c in "lptvZ") for w in args):
        return []  # lists or tests, or writes to stdout
    for i, w in enumerate(args):
        if w.value == "-d" and i + 1 < len(args):
            return [Fact("writes", "unzip extracts files into", args[i + 1])]
    return [Fact("writes", "unzip extracts files into", Word.literal("."))]


def _zip(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    for w in args:
        if w.value in ("-TT", "--unzip-command") or w.value.startswith(("-TT", "--unzip-command=")):
            out.append(Fact("runs-code", "zip -TT/--unzip-command runs a program"))
    return out


def short_values(args: tuple[Word, ...], takes: str, wanted: str) -> list[tuple[str, Word]]:
    """The arguments of the short options in ``wanted`` however they are written: ``-o F``,
    ``-oF``, or at the end of a cluster (``-sSLo F``). ``takes`` lists every letter that
    takes an argument (so a cluster stops there)."""
    out: list[tuple[str, Word]] = []
    i = 0
    while i < len(args):
        v = args[i].value
        if v == "--":
            break
        if v.startswith("-") and not v.startswith("--") and len(v) > 1:
            for j, letter in enumerate(v[1:], start=1):
                if letter in takes:
                    rest = v[j + 1 :]
                    if rest:
                        value: Word | None = Word(rest, rest, args[i].static)
                    else:
                        value = args[i + 1] if i + 1 < len(args) else None
                        i += 1
                    if letter in wanted and value is not None:
                        out.append((letter, value))
                    break
        i += 1
    return out


_CURL_TAKES = "bcdDeEFHKmoQrTuUwxXyYzA"
_WGET_TAKES = "aBeiOoPtTTUlQwYD"


def _curl(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    for letter, value in short_values(args, _CURL_TAKES, "oDcK"):
        if letter == "K":
            out.append(
                Fact("runs-code", "curl -K reads options (including files to write) from a file")
            )
        else:
            out.append(Fact("writes", f"curl -{letter} writes to", value))
    writes = {
        "--output-dir",
        "-D",
        "--dump-header",
        "-c",
        "--cookie-jar",
        "--trace",
        "--trace-ascii",
        "--stderr",
        "--libcurl",
        "--etag-save",
        "--hsts",
        "--alt-svc",
    }
    for i, w in enumerate(args):
        v = w.value
        key = v.split("=", 1)[0]
        if key in writes:
            target = (
                Word(v.split("=", 1)[1], v.split("=", 1)[1], w.static)
                if "=" in v
                else (args[i + 1] if i + 1 < len(args) else None)
            )
            if target is not None:
                out.append(Fact("writes", f"curl {key} writes to", target))
        elif key in ("-O", "--remote-name", "--remote-name-all", "-J", "--remote-header-name"):
            out.append(Fact("writes", f"curl {key} saves the download in", Word.literal(".")))
        elif key in ("-K", "--config"):
            out.append(
                Fact("runs-code", "curl -K reads options (including files to write) from a file")
            )
    return out


def _wget(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    for letter, value in short_values(args, _WGET_TAKES, "oaPOe"):
        if letter == "e":
            out.append(Fact("runs-code", "wget -e runs wgetrc commands"))
        elif not (letter == "O" and value.value == "-"):
            out.append(Fact("writes", f"wget -{letter} writes to", value))
    for i, w in enumerate(args):
        v = w.value
        key = v.split("=", 1)[0]
        val = (
            Word(v.split("=", 1)[1], v.split("=", 1)[1], w.static)
            if "=" in v
            else (args[i + 1] if i + 1 < len(args) else None)
        )
        if (
            key in ("-o", "--output-file", "-a", "--append-output", "-P", "--directory-prefix")
            and val is not None
        ):
            out.append(Fact("writes", f"wget {key} writes to", val))
        elif key in ("-e", "--execute", "--config", "--use-askpass") or key.startswith("-e"):
            out.append(Fact("runs-code", f"wget {key} runs wgetrc commands or a program"))
    named = {w.value.split("=", 1)[0] for w in args}
    if not named & {"-O", "--output-document", "-P", "--directory-prefix", "--spider"}:
        out.append(Fact("writes", "wget saves the download in", Word.literal(".")))
    return out


CHECKS: dict[str, Callable[[Part, tuple[Word, ...]], list[Fact]]] = {
    "sed": _sed,
    "gsed": _sed,
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "nawk": _awk,
    "busybox-awk": _awk,
    "find": _find,
    "git": _git,
    "tar": _tar,
    "gtar": _tar,
    "bsdtar": _tar,
    "sort": _sort,
    "uniq": _uniq,
    "less": _pager,
    "more": _pager,
    "most": _pager,
    "vi": _editor,
    "vim": _editor,
    "nvim": _editor,
    "view": _editor,
    "ex": _editor,
    "gvim": _editor,
    "vimdiff": _editor,
    "emacs": _editor,
    "man": _option_runs(
        {
            "-P": "runs a pager program",
            "--pager": "runs a pager program",
            "-H": "runs a browser",
            "--html": "runs a browser",
        }
    ),
    "rsync": _option_runs(
        {
            "-e": "runs a remote shell program",
            "--rsh": "runs a remote shell program",
            "--rsync-path": "runs a program on the other side",
        }
    ),
    "ssh": _ssh_like,
    "scp": _ssh_like,
    "sftp": _ssh_like,
    "zip": _zip,
    "unzip": _unzip,
    "patch": _patch,
    "curl": _curl,
    "wget": _wget,
    "fc": lambda part, args: [Fact("runs-code", "fc runs commands again from the history")],
    "split": _option_runs({"--filter": "runs a shell command for each piece"}),
    "mapfile": _option_runs({"-C": "runs a callback command"}),
    "readarray": _option_runs({"-C": "runs a callback command"}),
    "parallel": lambda part, args: [
        Fact("runs-code", "parallel runs its arguments through a shell")
    ],
    "sqlite3": lambda part, args: _script_tool(part, args, SQLITE_RISKY),
    "psql": lambda part, args: _script_tool(part, args, PSQL_RISKY),
    "mysql": lambda part, args: _script_tool(part, args, MYSQL_RISKY),
    "ed": lambda part, args: _script_tool(part, args, ""),
    "red": lambda part, args: _script_tool(part, args, ""),
    "ftp": lambda part, args: _script_tool(part, args, ""),
    "script": _option_runs({"-c": "runs a command", "--command": "runs a command"}),
    "flock": _option_runs({"-c": "runs a command", "--command": "runs a command"}),
    "sg": _option_runs({"-c": "runs a command"}),
    "gdb": _option_runs(
        {
            "-ex": "runs debugger commands",
            "-x": "runs a command file",
            "--batch": "runs commands",
            "-batch": "runs commands",
        }
    ),
}

SHELL_NAMES = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "ash", "busybox"}
)
INTERPRETER_NAMES = frozenset(
    {
        "python",
        "python2",
        "python3",
        "perl",
        "ruby",
        "node",
        "nodejs",
        "php",
        "lua",
        "Rscript",
        "deno",
        "bun",
        "tclsh",
        "wish",
        "julia",
        "java",
        "jshell",
        "osascript",
        "pwsh",
        "expect",
        "irb",
    }
)
CODE_FROM_ARGS = (
    SHELL_NAMES
    | INTERPRETER_NAMES
    | frozenset(CHECKS)
    | frozenset(
        [
            "source",
            ".",
            "eval",
            "exec",
            "xargs",
            "env",
            "sudo",
            "doas",
            "su",
            "runuser",
            "pkexec",
            "command",
            "builtin",
            "nohup",
            "timeout",
            "time",
            "nice",
            "ionice",
            "stdbuf",
            "setsid",
            "unbuffer",
            "chroot",
            "watch",
            "trap",
            "make",
            "gmake",
            "strace",
            "ltrace",
            "valgrind",
            "unshare",
            "nsenter",
            "chrt",
            "taskset",
            "prlimit",
            "systemd-run",
            "firejail",
            "bwrap",
            "proot",
            "torsocks",
            "proxychains",
            "faketime",
            "dbus-launch",
            "xvfb-run",
            "coproc",
        ]
    )
)
"""Programs that can run code because of their arguments or of files they read."""


PROJECT_CODE = frozenset(
    [
        "cmake",
        "ninja",
        "meson",
        "just",
        "task",
        "rake",
        "gradle",
        "gradlew",
        "mvn",
        "ant",
        "npm",
        "npx",
        "pnpm",
        "yarn",
        "bun",
        "cargo",
        "go",
        "pip",
        "pip3",
        "uv",
        "uvx",
        "poetry",
        "pipx",
        "pytest",
        "tox",
        "nox",
        "coverage",
        "pre-commit",
        "docker",
        "podman",
        "kubectl",
        "gh",
    ]
)
"""Programs that run code the repository provides (build files, scripts, tests, hooks).
A project's own rules may not allow them either (see `store`)."""


def runs_code_from_args(program: str) -> bool:
    """True for `CODE_FROM_ARGS` (including ``python3.12``-style names)."""
    return program in CODE_FROM_ARGS or bool(
        re.fullmatch(r"(python|pip|ruby|perl|php|node)[0-9.]*", program)
    )


_OUTPUT_OPTIONS = frozenset(
    {"--output", "--output-file", "--outfile", "--out", "-out", "--log-file", "--logfile"}
)
"""Long options that name an output file for most programs (judged for every program)."""


def _output_options(part: Part, args: tuple[Word, ...]) -> list[Fact]:
    out: list[Fact] = []
    for i, w in enumerate(args):
        key, eq, val = w.value.partition("=")
        if key in _OUTPUT_OPTIONS:
            target = (
                Word(val, val, w.static) if eq else (args[i + 1] if i + 1 < len(args) else None)
            )
            if target is not None:
                out.append(Fact("writes", f"{part.program} {key} writes to", target))
    return out


def argument_facts(part: Part) -> list[Fact]:
    """What ``part``'s arguments make its program do (see the module docstring)."""
    if part.kind != "command" or not part.words:
        return []
    args = part.words[1:]
    check = CHECKS.get(part.program)
    if check is None:
        return _output_options(part, args)
    return check(part, args)
