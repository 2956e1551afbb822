"""Hostile and random commands against the approval policy (hypothesis).

The central property is checked against real bash: whenever the policy would run a
command without asking (``ask`` mode, allow rules for a few harmless programs), we run
it in a sandboxed bash where every builtin is disabled, ``PATH`` holds only logging
stubs and every other command name is logged by ``command_not_found_handle``. Every
command bash then actually executes must be one of the parts we analysed, with the same
argv. A parser disagreement that hides a command (a heredoc that ends elsewhere, a word
split differently, a backquote re-read…) would show up as an unexplained execution.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tmax_local.approval import Approve, Edit, Gate, RuleSet, analyze, decide
from tmax_local.approval.wrappers import _TRANSPARENT

ALLOWED = ("ls", "cat", "grep", "echo", "true")
RULES = RuleSet.of(allow=[f"{name} *" for name in ALLOWED])
EXAMPLES = int(os.environ.get("TMAX_FUZZ_EXAMPLES", "300"))  # raise it for a long campaign
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CWD = Path("/nonexistent-work")

# --------------------------------------------------------------------------- strategies

NAMES = [
    "ls",
    "cat",
    "echo",
    "grep",
    "true",
    "zap",
    "rm",
    "l\\s",
    "'ls'",
    '"ls"',
    "\\ls",
    "l''s",
    "$'ls'",
    'l""s',
    "ls\\ ",
    "'l'\"s\"",
    "\u217cs",
    "\uff4c\uff53",
    "l\u0455",
    "ls\u00a0",
    "l\u200bs",
    "\u0441at",
    "ech\u043e",
    "$x",
    "${x:-zap}",
    "$(echo zap)",
    "`zap`",
    "coproc zap",
    "time ls",
    "eval zap",
    "exec zap",
    "command zap",
    "! ls",
    "zap=1 ls",
    "X=$(zap) ls",
    "{ zap; }",
    "(zap)",
]
ARGS = [
    "-la",
    "x",
    "'a b'",
    '"a b"',
    '"$(zap)"',
    "'$(zap)'",
    "\\$(zap)",
    "$((1+2))",
    "*",
    "a#b",
    "#c",
    "\\;",
    "';'",
    '";"',
    "{a,b}",
    "$'\\n'",
    "<(zap)",
    "'",
    '"',
    "`",
    "\\",
    "$(ls)",
    "$(cat <<EOF\nzap\nEOF\n)",
    "\\\n",
    "a\\\nb",
    "'x\ny'",
    '"x\ny"',
    "$'a\\'b'",
    '"`zap`"',
    "'`zap`'",
    "\\`zap\\`",
    "$(ls `zap`)",
    "${x[$(zap)]}",
    "\\\\",
    "--",
    "-",
    "$HOME",
    "~",
    "&",
    ";",
    "|",
    "||",
    "&&",
    "(",
    ")",
    "{",
    "}",
    ">f",
    "2>&1",
    "<in",
    "#x\nzap",
    "\\\nzap",
    "'\n'zap",
    "$(\nzap\n)",
    "<<<$(zap)",
    '"$(ls)"',
    "$(ls; zap)",
    "#\\\nzap",
    "a#\nzap",
    "$(ls #)\nzap)",
    "$(case x in x) zap;; esac)",
    "$((0))zap",
    "`ls`zap",
    "\\#\nzap",
    "${x#\nzap}",
    "$'\n'zap",
    "\r\nzap",
    "\\\r\nzap",
]
SEPARATORS = ["; ", " && ", " || ", " | ", "\n", " & ", "\r\n", "\n\n", ";;", " |& ", " # ", ";"]
REDIRECTS = [
    " > out",
    " 2>&1",
    " < in",
    " <<EOF\nzap\nEOF\n",
    " <<'EOF'\nzap\nEOF\n",
    " <<-EOF\n\tzap\n\tEOF\n",
    " <<< zap",
    " >/dev/null",
    " <<EOF\nEOF\nzap\nEOF\n",
    " <<EOF\n$(zap)\nEOF\n",
    " <<\\EOF\n$(zap)\nEOF\n",
    ' <<E"O"F\nzap\nEOF\nzap\n',
    " <<EOF; zap\nx\nEOF\n",
    " <<EOF | zap\nx\nEOF\n",
]
NOISE = st.text(
    alphabet=st.sampled_from(
        list("\x00\x01\x07\x08\t\n\r\x1b\x7f;&|()<>$`'\"\\#{}*?! =-")
        + ["\u00a0", "\u2028", "\u200b", "\u202e", "\ufeff", "\u3000"]
    ),
    max_size=3,
)


ALLOWED_SPELLINGS = [
    "ls",
    "cat",
    "echo",
    "grep",
    "true",
    "l\\s",
    "'ls'",
    '"cat"',
    "\\echo",
    "gr''ep",
    "$'ls'",
    "'l's",
    "tru\\e",
    "time ls",
    "nohup cat",
    "timeout 5 echo",
    "! true",
    "{ ls; }",
    "(cat)",
]


@st.composite
def simple_command(draw, names: list[str] = NAMES) -> str:
    words = [draw(st.sampled_from(names))]
    words += draw(st.lists(st.sampled_from(ARGS), max_size=4))
    text = " ".join(words)
    if draw(st.booleans()):
        text += draw(st.sampled_from(REDIRECTS))
    return text


@st.composite
def hostile_command(draw, names: list[str] = NAMES, noise: int = 2) -> str:
    parts = [draw(simple_command(names))]
    for _ in range(draw(st.integers(0, 3))):
        parts.append(draw(st.sampled_from(SEPARATORS)))
        parts.append(draw(simple_command(names)))
    text = "".join(parts)
    for _ in range(draw(st.integers(0, noise))):  # sprinkle noise anywhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(NOISE) + text[at:]
    return text


def safe_command(draw_text: str) -> bool:
    """Commands the bash oracle may run: no absolute or home paths (we may be root)."""
    return "/" not in draw_text.replace("/dev/null", "") and "~" not in draw_text


ANY_TEXT = st.text(max_size=200)
COMMANDS = st.one_of(hostile_command(), ANY_TEXT)


# --------------------------------------------------------------------------- the oracle

STUB = """#!/bin/sh
f=$({mktemp} "$TMAX_FUZZ_LOG/XXXXXXXX")
printf '%s\\0' "${{0##*/}}" "$@" > "$f"
"""


# wrappers we see through: their stubs log, then run what they wrap
WRAPPERS = {"nohup": 'exec "$@"\n', "time": 'exec "$@"\n', "timeout": 'shift; exec "$@"\n'}


class BashOracle:
    """Runs a command in bash with stubs and no builtins; returns the argvs it executed."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        mktemp = shutil.which("mktemp")
        assert mktemp, "mktemp is needed by the oracle"
        for name in (*ALLOWED, *WRAPPERS, "__log"):
            stub = self.bin / name
            stub.write_text(STUB.format(mktemp=mktemp) + WRAPPERS.get(name, ""))
            stub.chmod(0o755)
        builtins = subprocess.run(
            ["bash", "-c", "compgen -b"], capture_output=True, text=True, check=True
        ).stdout.split()
        # `wait` stays (harmless): the EXIT trap waits for background jobs to finish logging
        disabled = [b for b in builtins if b not in ("enable", "wait")] + ["enable"]
        self.env_file = root / "env.sh"
        self.env_file.write_text(
            f'command_not_found_handle() {{ {self.bin}/__log NOTFOUND "$@"; }}\n'
            "trap wait EXIT\n"
            f"enable -n {' '.join(disabled)}\n"
        )

    def run(self, command: str) -> list[tuple[str, ...]]:
        work = Path(tempfile.mkdtemp(dir=self.root))
        log = work / ".log"
        log.mkdir()
        script = work / ".cmd.sh"
        script.write_bytes(command.encode("utf-8", "surrogatepass"))
        env = {
            "PATH": str(self.bin),
            "HOME": str(work),
            "TMAX_FUZZ_LOG": str(log),
            "BASH_ENV": str(self.env_file),
        }
        proc = subprocess.Popen(
            ["/bin/bash", str(script)],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        runs = []
        for entry in sorted(log.iterdir()):
            fields = entry.read_bytes().split(b"\0")[:-1]
            argv = tuple(f.decode("utf-8", "surrogateescape") for f in fields)
            runs.append(argv[2:] if argv[:2] == ("__log", "NOTFOUND") else argv)
        shutil.rmtree(work, ignore_errors=True)
        return runs


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> BashOracle:
    return BashOracle(tmp_path_factory.mktemp("bash-oracle"))


def test_the_oracle_sees_what_bash_runs(oracle: BashOracle):
    """The oracle itself works: stubs, disabled builtins and unknown names are all logged."""
    runs = oracle.run('ls -l "a b"; echo hi; zap $(cat) | grep x\ncat <<EOF\nzap\nEOF\n')
    assert sorted(runs) == sorted(
        [("ls", "-l", "a b"), ("echo", "hi"), ("cat",), ("zap",), ("grep", "x"), ("cat",)]
    )


def explained(run: tuple[str, ...], command: str) -> bool:
    """Is this execution one of the parts we analysed (same argv where we know it)?"""
    if not run:
        return True
    for part in analyze(command, CWD).parts:
        if not part.words:
            continue
        if part.words[0].value != run[0]:
            continue
        if all(w.static for w in part.words):
            if part.argv == run:
                return True
        else:
            return True
    # a transparent wrapper (timeout, nohup…) is folded into the part it runs
    return run[0] in _TRANSPARENT and any(
        p.via.split()[:1] == [run[0]] for p in analyze(command, CWD).parts
    )


# --------------------------------------------------------------------------- properties


@FUZZ
@given(COMMANDS)
def test_nothing_runs_unasked_in_ask_mode_without_rules(command):
    assert decide(command, "ask", RuleSet(), CWD).action == "ask"


@FUZZ
@given(COMMANDS)
def test_never_run_mode_never_runs(command):
    assert decide(command, "never-run", RuleSet.of(allow=["*"]), CWD).action == "skip"


@FUZZ
@given(COMMANDS)
def test_run_by_rule_means_every_reparsed_part_matches_an_allow_rule(command):
    d = decide(command, "ask", RULES, CWD)
    if d.action != "run":
        return
    again = analyze(command, CWD)
    assert again.parsed and again.parts
    assert [p.argv for p in again.parts] == [pd.part.argv for pd in d.parts]
    for part in again.parts:
        assert RULES.allowing(part) is not None, part
        assert RULES.denying(part) is None
    assert not any(c in command for c in "\r\x00\x1b\u00a0\u200b\u202e\ufeff")


@settings(FUZZ, max_examples=2 * EXAMPLES)
@given(
    st.one_of(hostile_command(), hostile_command(ALLOWED_SPELLINGS, noise=1)).filter(safe_command)
)
def test_what_bash_executes_is_exactly_what_was_approved_by_rule(oracle, command):
    action = decide(command, "ask", RULES, CWD).action
    event(f"policy: {action}")
    if action != "run":
        return
    runs = oracle.run(command)
    for run in runs:
        # nothing outside the rules ever ran
        assert run[0] in ALLOWED or run[0] in WRAPPERS, (command, runs)
        assert explained(run, command), (command, run)


@FUZZ
@given(st.sampled_from(["ls", "ls -la", "cat f", "echo hi"]), COMMANDS)
def test_a_rule_never_matches_across_a_newline(first, rest):
    """``first\\nrest`` runs by rule only if its parts are ``first``'s then ``rest``'s, each
    allowed on its own: nothing after the newline rides on the rule that matched ``first``."""
    assume(rest.strip())
    d = decide(f"{first}\n{rest}", "ask", RULES, CWD)
    if d.action == "run":
        alone = analyze(rest, CWD)
        assert alone.parsed
        expected = [p.argv for p in analyze(first, CWD).parts] + [p.argv for p in alone.parts]
        assert [pd.part.argv for pd in d.parts] == expected
        assert all(RULES.allowing(p) is not None for p in alone.parts)


LOOKALIKES = {
    "l": ["\u217c", "\u0406", "\u04cf", "\uff4c", "1", "I"],
    "s": ["\u0455", "\uff53", "\u01bd"],
    "c": ["\u0441", "\u03f2", "\uff43"],
    "a": ["\u0430", "\u0251", "\uff41"],
    "e": ["\u0435", "\u0117", "\uff45"],
    "o": ["\u043e", "\u03bf", "\u0d20"],
    "t": ["\u0442", "\uff54"],
}


@FUZZ
@given(st.sampled_from(["ls", "cat", "echo", "true", "grep"]), st.data())
def test_unicode_lookalikes_of_allowed_names_are_never_allowed(name, data):
    spots = [i for i, ch in enumerate(name) if ch in LOOKALIKES]
    i = data.draw(st.sampled_from(spots))
    fake = name[:i] + data.draw(st.sampled_from(LOOKALIKES[name[i]])) + name[i + 1 :]
    space = data.draw(st.sampled_from([" ", "\u00a0", "\u2009", "\u3000", "\t"]))
    command = fake + space + data.draw(st.sampled_from(["", "-la", "x"]))
    assert decide(command, "ask", RULES, CWD).action == "ask", command
    assert decide(command, "auto", RuleSet(), CWD).action in ("ask", "run")


@FUZZ
@given(COMMANDS)
def test_auto_mode_never_runs_what_it_cannot_analyse(command):
    d = decide(command, "auto", RuleSet(), CWD)
    if d.action == "run":
        assert d.analysis.parsed and d.analysis.parts
        assert not d.analysis.high_risk


@FUZZ
@given(COMMANDS, st.text(min_size=1, max_size=200).filter(str.strip))
def test_the_bytes_approved_are_the_bytes_executed(command, edited):
    gate = Gate("ask", cwd=CWD)
    approved = gate.review(command, lambda request: Approve())
    assert approved.run and approved.command is command
    as_edited = gate.review(command, lambda request: Edit(edited))
    assert as_edited.run and as_edited.command == edited
    by_rule = Gate("ask", RULES, cwd=CWD).review(command, lambda request: Approve())
    assert by_rule.command is command


@settings(max_examples=30, deadline=None, database=None)
@given(st.integers(5_000, 120_000), st.sampled_from(["ls ", "echo 'a", "$(", "x;"]))
def test_very_long_commands_are_handled(n, chunk):
    command = (chunk * (n // len(chunk) + 1))[:n]
    d = decide(command, "ask", RULES, CWD)
    assert d.action in ("run", "ask")
    if len(command) > 100_000:
        assert d.action == "ask"


# --------------------------------------------------------------------------- issue 9 classes
#
# Three more oracles run the real thing (bash builtins, sed, awk) in a throw-away directory,
# only for commands the policy would run without asking, and look at what they did.

SENSITIVE = [
    "PATH",
    "CDPATH",
    "BASH_ENV",
    "IFS",
    "GIT_PAGER",
    "LD_PRELOAD",
    "PS4",
    "HOME",
    "PROMPT_COMMAND",
    "BASH_ALIASES[ls]",
    "BASH_CMDS[ls]",
    "PAGER",
    "ENV",
]
HARMLESS = ["x", "name", "FOO", "arr[1]"]
ASSIGNMENT_FORMS = [
    "{v}=/nonexistent",
    "{v}+=:/nonexistent",
    "export {v}=/nonexistent",
    "declare {v}=/nonexistent",
    "declare -x {v}=/nonexistent",
    "typeset {v}=/nonexistent",
    "readonly {v}=/nonexistent",
    "for {v} in /nonexistent; do :; done",
    "select {v} in /nonexistent; do break; done <<< 1",
    "read {v} <<< /nonexistent",
    "read -r {v} <<< /nonexistent",
    "read -a {v} <<< /nonexistent",
    "IFS= read -r {v} <<< /nonexistent",
    "mapfile -t {v} <<< /nonexistent",
    "readarray {v} <<< /nonexistent",
    "printf -v {v} %s /nonexistent",
    "printf -v{v} %s /nonexistent",
    "getopts a {v} -a",
    "declare -n r={v}; r=/nonexistent",
    "unset {v}",
    "f() {{ local {v}=1; }}; {v}=/nonexistent",
]
ASSIGNMENT_RULES = RuleSet.of(
    allow=[
        "export *",
        "declare *",
        "typeset *",
        "readonly *",
        "read *",
        "mapfile *",
        "readarray *",
        "printf *",
        "getopts *",
        "unset *",
        "true *",
        "x=*",
        "name=*",
        "FOO=*",
        "r=*",
        "IFS=*",
    ]
)


def _snapshot(command: str, names: list[str], work: Path) -> str:
    """``declare -p`` of ``names`` after ``command`` ran in a fresh bash."""
    bases = sorted({n.split("[", 1)[0] for n in names})
    script = f"{command}\n" + "".join(
        f"declare -p {b} 2>/dev/null || echo unset {b}\n" for b in bases
    )
    proc = subprocess.run(
        ["/bin/bash", "--norc", "--noprofile", "-c", script],
        cwd=work,
        env={"PATH": "/usr/bin:/bin", "HOME": str(work)},
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout


@settings(FUZZ, max_examples=max(50, EXAMPLES // 3))
@given(
    st.lists(
        st.tuples(st.sampled_from(ASSIGNMENT_FORMS), st.sampled_from(SENSITIVE + HARMLESS)),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["ask", "auto"]),
)
def test_no_sensitive_variable_changes_without_asking(tmp_path_factory, forms, mode):
    """Every way bash has to set a variable: if the policy runs it unasked, real bash must
    leave every sensitive variable as it was."""
    command = "; ".join(form.format(v=var) for form, var in forms)
    if decide(command, mode, ASSIGNMENT_RULES, CWD).action != "run":
        event("asked")
        return
    event("ran")
    work = tmp_path_factory.mktemp("assign")
    assert _snapshot(command, SENSITIVE, work) == _snapshot(":", SENSITIVE, work), command


ARITH_CONTEXTS = [
    "echo $(({e}))",
    "echo $(( {e} + 1 ))",
    "echo $[{e}]",
    "(( {e} ))",
    "[[ {e} -eq 1 ]]",
    "[[ 1 -lt {e} ]]",
    "echo ${{s:{e}}}",
    "echo ${{s:0:{e}}}",
    "echo ${{arr[{e}]}}",
    "arr[{e}]=1",
    "x=$(({e}))",
    "for ((i={e}; i<1; i++)); do :; done",
    "case 1 in $(({e}))) ;; esac",
    "echo ${{!{e}}}",
    "[[ -v arr[{e}] ]]",
    "let {e}",
    "declare -i n; n={e}",
    "echo ${{{e}@P}}",
    "test {e} -eq 1",
    "[ {e} -gt 0 ]",
    "printf '%d' {e}",
    "cat <<X\n$(({e}))\nX",
]
ARITH_EXPRESSIONS = ["v", "$v", "${v}", "v+1", "1", "2*3", "0x10", "w", "u", '"$v"']
ARITH_RULES = RuleSet.of(
    allow=[
        "echo *",
        "true *",
        "test *",
        "[ *",
        "printf *",
        "cat *",
        "x=*",
        "n=*",
        "arr*",
        "s=*",
        "declare *",
    ]
)


@settings(FUZZ, max_examples=max(50, EXAMPLES // 3))
@given(
    st.sampled_from(ARITH_CONTEXTS),
    st.sampled_from(ARITH_EXPRESSIONS),
    st.sampled_from(["ask", "auto"]),
)
def test_arithmetic_never_runs_variable_text_unasked(tmp_path_factory, context, expr, mode):
    """``v``/``w``/``u`` hold ``a[$(touch MARK)]`` (or name such a variable): a command
    that evaluates them as arithmetic or expands them indirectly runs the substitution."""
    command = context.format(e=expr)
    if decide(command, mode, ARITH_RULES, CWD).action != "run":
        event("asked")
        return
    event("ran")
    work = tmp_path_factory.mktemp("arith")
    prelude = "v='a[$(touch MARK)]'; w=v; u='$(touch MARK)'; s=abc\n"
    subprocess.run(
        ["/bin/bash", "--norc", "--noprofile", "-c", prelude + command],
        cwd=work,
        env={"PATH": "/usr/bin:/bin", "HOME": str(work)},
        capture_output=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert not (work / "MARK").exists(), command


SED_PIECES = [
    "p",
    "d",
    "s/a/b/",
    "s/a/b/g",
    "s/^/x/e",
    "1e touch MARK",
    "e",
    "w ../OUT",
    "s/a/b/w ../OUT",
    "1!G;h;$!d",
    "y/ab/ba/",
    "$!N",
    "2q",
    "/a/{p}",
    "=",
    "s|a|b|",
    "s/\\//x/",
    "1{e touch MARK\n}",
    "r f",
    "W ../OUT",
    "l",
    "F",
]
AWK_PROGRAMS = [
    "{print}",
    "{print $1}",
    "BEGIN{print 1}",
    '$1 > "a" {print}',
    '{print > "../OUT"}',
    'BEGIN{system("touch MARK")}',
    '{print | "cat"}',
    'BEGIN{"touch MARK" | getline}',
    '{printf "%s" , $1 > "../OUT"}',
    "{x = ($1 > 2); print x}",
    'BEGIN{print "touch MARK" | "sh"}',
    "{ if (NF > 1) print }",
    'BEGIN { getline l < "f"; print l }',
    'BEGIN { s = "touch MARK"; system(s) }',
    '{print $0 >> "../OUT"}',
]
OPTION_RULES = RuleSet.of(allow=["sed *", "awk *"])


@settings(FUZZ, max_examples=max(50, EXAMPLES // 3))
@given(
    st.one_of(
        st.tuples(
            st.just("sed"),
            st.lists(st.sampled_from(SED_PIECES), min_size=1, max_size=3),
            st.sampled_from(["", "-n ", "-E ", "-e ", "--expression=", "-s "]),
            st.sampled_from([";", "\n"]),
        ),
        st.tuples(
            st.just("awk"),
            st.lists(st.sampled_from(AWK_PROGRAMS), min_size=1, max_size=2),
            st.sampled_from(["", "-F: ", "-v x=1 "]),
            st.just(" "),
        ),
    )
)
def test_option_driven_code_never_runs_or_writes_outside_unasked(tmp_path_factory, case):
    """Real sed and awk run the scripts the policy lets through: nothing runs (no MARK)
    and nothing is written outside the project (no ../OUT)."""
    prog, pieces, opts, sep = case
    script = sep.join(pieces)
    quoted = "'" + script.replace("'", "'\\''") + "'"
    command = f"{prog} {opts}{quoted} f"
    root = tmp_path_factory.mktemp("opt")
    work = root / "proj"
    work.mkdir()
    if decide(command, "ask", OPTION_RULES, work).action != "run":
        event("asked")
        return
    event("ran")
    (work / "f").write_text("touch MARK\na b\n")
    subprocess.run(
        ["/bin/bash", "--norc", "--noprofile", "-c", command],
        cwd=work,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root)},
        capture_output=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert not (work / "MARK").exists(), command
    assert not (root / "OUT").exists(), command
