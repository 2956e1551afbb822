"""Commands that run other commands: see through them, or flag them as unanalysable.

``timeout 5 pytest`` is really ``pytest``; ``sudo rm -rf x`` runs ``rm -rf x`` as root;
``bash -c 'a; b'`` and ``trap 'a' EXIT`` carry code in a string; ``curl … | sh`` runs code
nobody can review. `expand_part` turns one parsed part into the parts that will actually
run, each marked with what runs it (``via``) and with any reason it cannot be analysed.
"""

from __future__ import annotations

from dataclasses import replace

from tmax_local.approval.syntax import MAX_NESTED_CODE, Part, Word

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
                )
            ]

    if prog in _TRANSPARENT:
        inner = _strip_transparent(prog, args)
        if inner is not None:
            pre, assigns, rest, problem = inner
            if problem:
                return [replace(part, problems=part.problems + (problem,))]
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
            # xargs appends words read from stdin: an unknown tail
            out += _inner(part, rest + [Word("…", "", False)], "xargs", nested)
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
                out = [_problem(part, "watch runs a command built at run time")]
    elif prog == "trap" and args and not args[0].value.startswith("-"):
        if args[0].static:
            out += _code(part, args[0].value, "trap", nested)
        else:
            out = [_problem(part, "the trap action is only known when it runs")]
    elif prog in ("source", ".") and args:
        out = _source(part, args)
    elif prog in INTERPRETERS or _is_versioned_python(prog):
        out = _interpreter(part, args)
    return out


def _is_versioned_python(prog: str) -> bool:
    return prog.startswith("python") and prog[6:].replace(".", "").isdigit()


def _problem(part: Part, why: str) -> Part:
    return replace(part, problems=part.problems + (why,))


def _basic_problems(part: Part) -> Part:
    if part.kind == "command" and part.words:
        head = part.words[0]
        if not head.static:
            return _problem(part, f"the command name {head.text!r} is only known when it runs")
        if not head.value:
            return _problem(part, "the command name is empty")
        if not head.value.isascii():
            return _problem(part, f"the command name {head.value!r} is not plain ASCII")
        if part.program in ("eval", "let") and len(part.words) > 1:
            return _problem(part, f"{part.program} runs text as shell code")
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
        if prog == "env" and v.startswith(("-S", "--split-string")):
            return 0, [], [], "env -S splits a string into a command"
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
            out += _inner(part, args[i + 1 : j], f"{part.program} {values[i]}", nested)
            i = j
        i += 1
    return out


def _code(part: Part, code: str, via: str, nested: int) -> list[Part]:
    """The parts of shell code carried in a string (``bash -c``, ``trap``, ``watch``)."""
    from tmax_local.approval.syntax import parse_parts

    if nested >= MAX_NESTED_CODE:
        return [_problem(part, "code nested in strings too deeply")]
    parts, problems = parse_parts(code, _nested=nested + 1)
    label = f"{part.via} {via}".strip()
    out = [
        replace(p, via=f"{label} {p.via}".strip(), span=part.span, piped=p.piped or part.piped)
        for p in parts
    ]
    if problems:
        return [_problem(part, f"{via}: {problems[0]}")] + out
    return out


def _code_option(part: Part, args: list[Word], flag: str, via: str, nested: int) -> list[Part]:
    for i, w in enumerate(args):
        if w.value == flag or w.value == "--command":
            if i + 1 >= len(args):
                return [part]
            code = args[i + 1]
            if not code.static:
                return [_problem(part, f"{via} {flag} runs a string only known at run time")]
            return [part] + _code(part, code.value, f"{via} {flag}", nested)
    return [part]


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
            return [_problem(part, f"{part.program} -c runs a string only known at run time")]
        return [part] + _code(part, rest[0].value, f"{part.program} -c", nested)
    if rest and not reads_stdin_flag:
        script = rest[0]
        if not script.static and script.text.startswith(("<(", ">(")):
            return [_problem(part, "runs a script produced by another command")]
        return [part]
    return _stdin_code(part, nested)


def _stdin_code(part: Part, nested: int) -> list[Part]:
    """A shell that reads its program from stdin: a pipe, a here-document, or a file."""
    if part.piped:
        return [_problem(part, f"pipes text into {part.program}, which runs it as code")]
    out = [part]
    for red in part.redirects:
        if red.op == "<<<":
            if red.target is None or not red.target.static:
                return [_problem(part, f"{part.program} runs a here-string known only at run time")]
            out += _code(part, red.target.value, f"{part.program} <<<", nested)
        elif red.feeds_stdin:
            if not red.heredoc_static:
                return [_problem(part, f"{part.program} runs a here-document bash expands first")]
            body = red.heredoc or ""
            if red.op == "<<-":
                body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
            out += _code(part, body, f"{part.program} <<", nested)
    return out


def _source(part: Part, args: list[Word]) -> list[Part]:
    target = args[0]
    if target.text.startswith(("<(", ">(")):
        return [_problem(part, "sources a script produced by another command")]
    if target.value in ("/dev/stdin", "/proc/self/fd/0", "/dev/fd/0") and part.piped:
        return [_problem(part, "sources code piped in from another command")]
    return [part]


def _interpreter(part: Part, args: list[Word]) -> list[Part]:
    """``python``/``perl``/… reading a program from a pipe cannot be reviewed."""
    if not part.piped:
        return [part]
    for w in args:
        v = w.value
        if v == "-":
            break
        if not v.startswith("-"):
            return [part]  # a script file
        if not v.startswith("--") and any(c in v[1:] for c in "cemE"):
            return [part]  # code given on the command line (-c, -e, -m)
    return [_problem(part, f"pipes text into {part.program}, which runs it as code")]
