"""Commands that run other commands: see through them, or flag them as unanalysable.

``timeout 5 pytest`` is really ``pytest``; ``sudo rm -rf x`` runs ``rm -rf x`` as root;
``bash -c 'a; b'`` and ``trap 'a' EXIT`` carry code in a string; ``curl … | sh`` runs code
nobody can review. `expand_part` turns one parsed part into the parts that will actually
run, each marked with what runs it (``via``) and with any reason it cannot be analysed.
"""

from __future__ import annotations

import re
from dataclasses import replace

from tmax_local.approval.parts import MAX_NESTED_CODE, Part, Problem, ProblemKind, Word
from tmax_local.approval.syntax import parse_parts

__all__ = ["INTERPRETERS", "RUNS_COMMANDS", "SHELLS", "expand_part", "parse_command"]

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "ash"})
INTERPRETERS = frozenset(
    {"python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "Rscript"}
)

RUNS_COMMANDS = frozenset({"find", "fd", "fdfind", "parallel"})
"""Programs that take a command to run anywhere among their arguments: an unquoted expansion
could smuggle one in (``find . $X`` with ``X='-exec rm {} ;'``). Wrappers such as ``sudo``
or ``timeout`` need no such rule: an expansion before their command becomes the command
name, which is flagged anyway."""

# wrapper -> options that take a separate argument
_TRANSPARENT: dict[str, frozenset[str]] = {
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "nohup": frozenset(),
    "time": frozenset({"-f", "--format", "-o", "--output"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "--class", "-n", "--classdata"}),
    "stdbuf": frozenset({"-i", "--input", "-o", "--output", "-e", "--error"}),
    "setsid": frozenset(),
    "unbuffer": frozenset(),
    "builtin": frozenset(),
    "command": frozenset(),
    "env": frozenset({"-u", "--unset", "-C", "--chdir"}),
}
_SUDO_ARG_OPTS = frozenset(
    {
        "-C",
        "-D",
        "-g",
        "-h",
        "-p",
        "-R",
        "-r",
        "-t",
        "-T",
        "-U",
        "-u",
        "--user",
        "--group",
        "--prompt",
        "--chdir",
        "--close-from",
        "--role",
        "--type",
        "--other-user",
        "--host",
    }
)
_XARGS_ARG_OPTS = frozenset(
    {
        "-a",
        "--arg-file",
        "-d",
        "--delimiter",
        "-E",
        "-I",
        "-L",
        "--max-lines",
        "-n",
        "--max-args",
        "-P",
        "--max-procs",
        "-s",
        "--max-chars",
        "--process-slot-var",
    }
)
_SHELL_ARG_OPTS = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})


def parse_command(command: str, nested: int = 0) -> tuple[list[Part], list[Problem]]:
    """Every part that will run for ``command``: the parser's parts, each followed by what
    it runs in turn (``sudo X``, ``bash -c 'X'``, ``find -exec X``…)."""
    parts, problems = parse_parts(command)
    return [p for part in parts for p in expand_part(part, nested)], problems


def expand_part(part: Part, nested: int) -> list[Part]:
    """The parts that will run for ``part`` (itself first unless it is a transparent wrapper)."""
    part = _basic_problems(part)
    if part.kind != "command" or not part.words or part.problems:
        return [part]
    prog = part.program
    args = list(part.words[1:])
    if prog in RUNS_COMMANDS:
        loose = next((w for w in args if w.splits), None)
        if loose is not None:
            return [
                _problem(
                    part,
                    f"{prog} gets the unquoted {loose.text!r}, which may expand into words "
                    f"that make it run other commands",
                    ProblemKind.LOOSE_WORDS,
                )
            ]

    if prog in _TRANSPARENT:
        inner = _strip_transparent(prog, args)
        if inner is not None:
            pre, assigns, rest, problem = inner
            if problem:
                return [_problem(part, problem, ProblemKind.DYNAMIC_CODE)]
            if rest:
                via = " ".join(w.text for w in part.words[: 1 + pre])
                new = replace(
                    part,
                    words=tuple(rest),
                    assignments=part.assignments + tuple(assigns),
                    via=f"{part.via} {via}".strip(),
                )
                return expand_part(new, nested)
    out = [part]
    if prog in ("sudo", "doas", "run0", "pkexec"):
        out += _inner(part, _skip_options(args, _SUDO_ARG_OPTS), prog, nested)
    elif prog == "xargs":
        rest = _skip_options(args, _XARGS_ARG_OPTS)
        if rest:
            # xargs appends words read from stdin (an unknown tail), or puts them where
            # its replace-string is (-I STR, -i, --replace): those words are unknown too
            marks = _xargs_replace(args[: len(args) - len(rest)])
            filled = [_placeholder(w, marks) for w in rest]
            out += _inner(part, filled + [Word("…", "", False)], "xargs", nested)
    elif prog in ("find", "fd", "fdfind"):
        out += _find_exec(part, args, nested)
    elif prog == "coproc" and args:
        out += _inner(part, args, "coproc", nested)
    elif prog == "exec" and args:
        rest = _skip_options(args, frozenset({"-a"}))
        out += _inner(part, rest, "exec", nested)
    elif prog in ("chroot",) and len(args) > 1:
        rest = _skip_options(args, frozenset({"--userspec", "--groups"}))
        out += _inner(part, rest[1:], prog, nested)
    elif prog in SHELLS:
        out = _shell(part, args, nested)
    elif prog in ("su", "runuser"):
        out = _code_option(part, args, "-c", prog, nested)
    elif prog == "watch":
        rest = _skip_options(args, frozenset({"-n", "--interval", "-d", "-q"}))
        if rest:
            if all(w.static for w in rest):
                out += _code(part, " ".join(w.value for w in rest), "watch", nested)
            else:
                out = [
                    _problem(
                        part, "watch runs a command built at run time", ProblemKind.DYNAMIC_CODE
                    )
                ]
    elif prog == "trap" and args and not args[0].value.startswith("-"):
        if args[0].static:
            out += _code(part, args[0].value, "trap", nested)
        else:
            out = [
                _problem(
                    part, "the trap action is only known when it runs", ProblemKind.DYNAMIC_CODE
                )
            ]
    elif prog in ("source", ".") and args:
        out = _source(part, args, nested)
    elif prog in INTERPRETERS or _is_versioned_python(prog):
        out = _interpreter(part, args)
    return out


def _is_versioned_python(prog: str) -> bool:
    return prog.startswith("python") and prog[6:].replace(".", "").isdigit()


def _problem(part: Part, why: str, kind: ProblemKind) -> Part:
    return replace(part, problems=part.problems + (Problem(kind, why),))


def _basic_problems(part: Part) -> Part:
    if part.kind == "command" and part.words:
        head = part.words[0]
        if not head.static:
            return _problem(
                part,
                f"the command name {head.text!r} is only known when it runs",
                ProblemKind.DYNAMIC_NAME,
            )
        if not head.value:
            return _problem(part, "the command name is empty", ProblemKind.DYNAMIC_NAME)
        if not head.value.isascii():
            return _problem(
                part, f"the command name {head.value!r} is not plain ASCII", ProblemKind.CHARACTERS
            )
        if part.program in ("eval", "let") and len(part.words) > 1:
            return _problem(part, f"{part.program} runs text as shell code", ProblemKind.EVAL)
    return part


def _skip_options(args: list[Word], with_arg: frozenset[str]) -> list[Word]:
    """The words after a wrapper's own options (up to ``--`` or the first non-option)."""
    i = 0
    while i < len(args):
        v = args[i].value
        if v == "--":
            return args[i + 1 :]
        if not v.startswith("-") or v == "-":
            break
        if v in with_arg:
            i += 2
            continue
        i += 1
    return args[i:]


def _strip_transparent(
    prog: str, args: list[Word]
) -> tuple[int, list[Word], list[Word], str] | None:
    """(words consumed, env assignments, inner words, problem) — None when not a wrapper use."""
    opts = _TRANSPARENT[prog]
    assigns: list[Word] = []
    i = 0
    while i < len(args):
        w = args[i]
        v = w.value
        if v == "--":
            i += 1
            break
        if prog == "env" and "=" in v and not v.startswith("-"):
            assigns.append(w)
            i += 1
            continue
        if not v.startswith("-") or v == "-":
            break
        if prog == "command" and v in ("-v", "-V"):
            return None  # `command -v x` only looks x up
        if prog == "env" and (
            (not v.startswith("--") and "S" in v[1:])
            or (v.startswith("--s") and "--split-string".startswith(v.split("=", 1)[0]))
        ):
            return 0, [], [], "env -S splits a string into a command"
        if not w.static:
            return 0, [], [], f"{prog} gets an option known only at run time"
        if prog == "time" and v.split("=", 1)[0] in ("-o", "--output", "-a", "--append"):
            return 0, [], [], "time -o writes its report to a file"
        i += 2 if v in opts else 1
    if prog == "timeout" and i < len(args):
        i += 1  # the duration
    return i, assigns, args[i:], ""


def _inner(part: Part, words: list[Word], via: str, nested: int) -> list[Part]:
    if not words:
        return []
    new = replace(part, words=tuple(words), assignments=(), via=f"{part.via} {via}".strip())
    return expand_part(new, nested)


def _find_exec(part: Part, args: list[Word], nested: int) -> list[Part]:
    out: list[Part] = []
    i = 0
    values = [w.value for w in args]
    while i < len(args):
        if values[i] in (
            "-exec",
            "-execdir",
            "-ok",
            "-okdir",
            "-x",
            "--exec",
            "-X",
            "--exec-batch",
        ):
            j = i + 1
            while j < len(args) and values[j] not in (";", "+"):
                j += 1
            inner = [_placeholder(w, ("{}",)) for w in args[i + 1 : j]]
            out += _inner(part, inner, f"{part.program} {values[i]}", nested)
            i = j
        i += 1
    return out


def _placeholder(word: Word, marks: tuple[str, ...]) -> Word:
    """``word`` as the wrapper passes it: unknown when a placeholder (``{}``) in it is
    replaced by a file name or an input line at run time. An empty mark means the
    placeholder itself is unknown, so every word is."""
    if any(m == "" or m in word.value for m in marks):
        return Word(word.text, word.value, False, word.splits)
    return word


def _xargs_replace(opts: list[Word]) -> tuple[str, ...]:
    """xargs' replace-strings (``-I STR``, ``-i[STR]``, ``--replace[=STR]``)."""
    if any(not w.static for w in opts):
        return ("",)
    marks: list[str] = []
    for i, w in enumerate(opts):
        v = w.value
        if v == "-I":
            marks.append(opts[i + 1].value if i + 1 < len(opts) else "")
        elif v.startswith("-I"):
            marks.append(v[2:])
        elif v in ("-i", "--replace"):
            marks.append("{}")
        elif v.startswith("--replace="):
            marks.append(v.split("=", 1)[1])
        elif v.startswith("-i") and not v.startswith("--"):
            marks.append(v[2:])
    return tuple(marks)


def _code(part: Part, code: str, via: str, nested: int) -> list[Part]:
    """The parts of shell code carried in a string (``bash -c``, ``trap``, ``watch``)."""
    if nested >= MAX_NESTED_CODE:
        return [_problem(part, "code nested in strings too deeply", ProblemKind.LIMIT)]
    parts, problems = parse_command(code, nested + 1)
    label = f"{part.via} {via}".strip()
    out = [
        replace(p, via=f"{label} {p.via}".strip(), span=part.span, piped=p.piped or part.piped)
        for p in parts
    ]
    if problems:
        first = problems[0]
        return [_problem(part, f"{via}: {first}", first.kind)] + out
    return out


def _code_option(part: Part, args: list[Word], flag: str, via: str, nested: int) -> list[Part]:
    for i, w in enumerate(args):
        if w.value == flag or w.value == "--command":
            if i + 1 >= len(args):
                return [part]
            code = args[i + 1]
            if not code.static:
                return [
                    _problem(
                        part,
                        f"{via} {flag} runs a string only known at run time",
                        ProblemKind.DYNAMIC_CODE,
                    )
                ]
            return [part] + _code(part, code.value, f"{via} {flag}", nested)
    return [part]


_FD_PATH = re.compile(r"/dev/(stdin|fd/(\d+))|/proc/(self|thread-self|\$\$|\d+)/fd/(\d+)")


def _fd_of(script: Word) -> str | None:
    """The file descriptor a script path reads (``/dev/stdin`` → ``0``), None for a file."""
    m = _FD_PATH.fullmatch(script.value)
    if m is None:
        return None
    if m.group(1) == "stdin":
        return "0"
    return m.group(2) or m.group(4)


def _shell(part: Part, args: list[Word], nested: int) -> list[Part]:
    """``bash -c CODE``, ``bash script``, or a shell reading code from stdin."""
    i = 0
    has_c = False
    reads_stdin_flag = False
    while i < len(args):
        v = args[i].value
        if v == "--" or v == "-":
            reads_stdin_flag = v == "-"
            i += 1
            break
        if not v.startswith(("-", "+")) or len(v) < 2:
            break
        if v in _SHELL_ARG_OPTS:
            i += 2
            continue
        if not v.startswith("--"):
            has_c = has_c or "c" in v[1:]
            reads_stdin_flag = reads_stdin_flag or "s" in v[1:]
        i += 1
    rest = args[i:]
    if has_c:
        if not rest:
            return [part]
        if not rest[0].static:
            return [
                _problem(
                    part,
                    f"{part.program} -c runs a string only known at run time",
                    ProblemKind.DYNAMIC_CODE,
                )
            ]
        return [part] + _code(part, rest[0].value, f"{part.program} -c", nested)
    if rest and not reads_stdin_flag:
        return _script_file(part, rest[0], nested, shell=True)
    return _fd_code(part, "0", nested, shell=True)


def _script_file(part: Part, script: Word, nested: int, *, shell: bool) -> list[Part]:
    """A program (shell, interpreter, ``source``) told to run the script ``script``."""
    if script.text.startswith(("<(", ">(")):
        return [
            _problem(part, "runs a script produced by another command", ProblemKind.GENERATED_CODE)
        ]
    if not script.static:
        if "/dev/" in script.text or "/proc/" in script.text:
            return [
                _problem(
                    part,
                    "runs a script from a descriptor chosen at run time",
                    ProblemKind.DYNAMIC_CODE,
                )
            ]
        return [part]
    fd = _fd_of(script)
    if fd is None:
        return [part]  # a script file
    return _fd_code(part, fd, nested, shell=shell)


def _fd_code(part: Part, fd: str, nested: int, *, shell: bool) -> list[Part]:
    """Code read from file descriptor ``fd``: a pipe (fd 0), a here-string or here-document
    (analysed as code when a shell reads it), or a file opened on it."""
    feeding = [r for r in part.redirects if r.stdin_fd == fd and (r.feeds_stdin or r.reads)]
    if not feeding:
        if fd == "0" and part.piped:
            return [
                _problem(
                    part,
                    f"pipes text into {part.program}, which runs it as code",
                    ProblemKind.PIPED_CODE,
                )
            ]
        if fd == "0":
            return [part]  # the terminal
        return [
            _problem(
                part,
                f"{part.program} runs code from file descriptor {fd}, set up elsewhere",
                ProblemKind.DYNAMIC_CODE,
            )
        ]
    red = feeding[-1]  # bash applies redirections in order: the last one on ``fd`` wins
    if red.reads:
        target = red.target
        if target is not None and target.text.startswith(("<(", ">(")):
            return [
                _problem(
                    part, "runs a script produced by another command", ProblemKind.GENERATED_CODE
                )
            ]
        return [part]  # code from a file, like `bash script`
    if not shell:
        return [part]  # the code is written out in the command itself
    if red.op == "<<<":
        if red.target is None or not red.target.static:
            return [
                _problem(
                    part,
                    f"{part.program} runs a here-string known only at run time",
                    ProblemKind.DYNAMIC_CODE,
                )
            ]
        return [part] + _code(part, red.target.value, f"{part.program} <<<", nested)
    if not red.heredoc_static:
        return [
            _problem(
                part,
                f"{part.program} runs a here-document bash expands first",
                ProblemKind.DYNAMIC_CODE,
            )
        ]
    body = red.heredoc or ""
    if red.op == "<<-":
        body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
    return [part] + _code(part, body, f"{part.program} <<", nested)


def _source(part: Part, args: list[Word], nested: int) -> list[Part]:
    return _script_file(part, args[0], nested, shell=True)


def _interpreter(part: Part, args: list[Word]) -> list[Part]:
    """``python``/``perl``/… reading a program from a pipe or a generated file cannot be
    reviewed."""
    for w in args:
        v = w.value
        if v == "-":
            break
        if not v.startswith("-"):
            return _script_file(part, w, 0, shell=False)  # a script file
        if not v.startswith("--") and any(c in v[1:] for c in "cemE"):
            return [part]  # code given on the command line (-c, -e, -m)
    return _fd_code(part, "0", 0, shell=False)
