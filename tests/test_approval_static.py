"""Static analysis of issue 9's classes, piece by piece (no shell): assignment forms,
arithmetic, argument-driven code, the project root, credentials, suggestions, and the
parse-then-expand structure. End-to-end attacks are in test_approval_attacks_static.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tmax_local.approval import Part, Rule, RuleSet, analyze, decide, suggest_rule
from tmax_local.approval.labels import assigned_names, label_part, sensitive_variable
from tmax_local.approval.parts import Problem, ProblemKind, Word
from tmax_local.approval.programs import (
    Options,
    awk_program_facts,
    runs_code_from_args,
    sed_script_facts,
    split_options,
)
from tmax_local.approval.rules import suggestion_note

HOME = Path("/home/user")
ROOT = Path("/work/proj")


def labels(command: str, cwd: Path = ROOT, root: Path = ROOT) -> set[str]:
    return {lab.name for lab in analyze(command, cwd, home=HOME, root=root).labels}


# --------------------------------------------------------------------------- structure


def run_python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout.strip()


def test_the_data_types_load_without_the_parser():
    out = run_python(
        "import sys, tmax_local.approval.parts as p; "
        "print('tree_sitter' in sys.modules, 'tmax_local.approval.syntax' in sys.modules)"
    )
    assert out == "False False"


def test_the_parser_does_not_import_its_consumers():
    out = run_python(
        "import sys, tmax_local.approval.syntax; "
        "print(sorted(m for m in sys.modules if m.startswith('tmax_local.approval.')))"
    )
    assert out == "['tmax_local.approval.parts', 'tmax_local.approval.syntax']"


def test_the_parser_only_parses_and_expansion_is_a_layer_above():
    from tmax_local.approval.syntax import parse_parts
    from tmax_local.approval.wrappers import parse_command

    parsed, _ = parse_parts("sudo bash -c 'rm x'")
    assert [p.argv for p in parsed] == [("sudo", "bash", "-c", "rm x")]
    expanded, _ = parse_command("sudo bash -c 'rm x'")
    assert [p.argv for p in expanded][-1] == ("rm", "x")


def test_labels_come_from_problem_kinds_not_message_text():
    part = Part(
        "curl x | zz",
        (Word.literal("zz"),),
        piped=True,
        problems=(Problem(ProblemKind.PIPED_CODE, "any wording at all"),),
    )
    assert "pipe-to-shell" in {lab.name for lab in label_part(0, part, ROOT, HOME)}
    reworded = Part(
        "zz", (Word.literal("zz"),), problems=(Problem(ProblemKind.SYNTAX, "runs it as code"),)
    )
    assert "pipe-to-shell" not in {lab.name for lab in label_part(0, reworded, ROOT, HOME)}


def test_dead_helpers_are_gone():
    import tmax_local.approval.syntax as syntax

    assert not hasattr(syntax, "_GLOB_CHARS") and not hasattr(syntax, "_DYNAMIC")


# --------------------------------------------------------------------------- §1 assignments


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("PATH=x ls", ["PATH"]),
        ("PATH+=:x", ["PATH"]),
        ("export A=1 B", ["A", "B"]),
        ("declare -gx C=1", ["C"]),
        ("local -n r=PATH", ["r"]),
        ("readonly R=1", ["R"]),
        ("read -r -a ARR -p prompt X Y", ["X", "Y", "ARR"]),
        ("read -rsn1", ["REPLY"]),
        ("mapfile -t -d , M", ["M"]),
        ("readarray", ["MAPFILE"]),
        ("printf -v OUT %s x", ["OUT"]),
        ("printf -vOUT %s x", ["OUT"]),
        ("getopts ab: OPT", ["OPT"]),
        ("wait -n -p J", ["J"]),
        ("unset PATH", ["PATH"]),
    ],
)
def test_every_assignment_form_names_its_variables(command, names):
    (part,) = analyze(command, ROOT).parts
    assert sorted(w.value.split("=", 1)[0] for w, _ in assigned_names(part)) == sorted(names)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "CDPATH",
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "PS1",
        "IFS",
        "GIT_PAGER",
        "GIT_SSH_COMMAND",
        "PAGER",
        "LD_PRELOAD",
        "LD_AUDIT",
        "BASH_ALIASES",
        "BASH_CMDS",
        "HOME",
        "LESSOPEN",
        "MANPAGER",
        "NODE_OPTIONS",
        "PERL5OPT",
        "TAR_OPTIONS",
        "npm_config_script_shell",
    ],
)
def test_sensitive_variables_by_class(name):
    assert sensitive_variable(name)


@pytest.mark.parametrize("name", ["x", "FOO", "GIT_AUTHOR_NAME", "PYTHONPATH", "CC", "LANG"])
def test_ordinary_variables(name):
    assert not sensitive_variable(name)


@pytest.mark.parametrize(
    "command",
    [
        "for PATH in /tmp; do :; done",
        "select CDPATH in a; do break; done",
        "read BASH_ENV",
        "mapfile -t PATH",
        "printf -v GIT_PAGER %s x",
        "getopts a PATH",
        "export LD_PRELOAD=x.so",
        "declare -n ref=PATH",
        "declare -i n",
        "BASH_ALIASES[ls]=x",
        "BASH_CMDS[ls]=/tmp/x",
        "alias ls=x",
        "unalias ls",
        "enable -n echo",
        "hash -p /tmp/x ls",
        "shopt -s expand_aliases",
        "set -o vi",
        "set -k",
        "f() { :; }",
        "function g { :; }",
        "trap 'x' EXIT",
        'read "$name"',
        "unset PATH",
        "bind -x '\"\\C-a\": x'",
    ],
)
def test_shell_state_is_labelled(command):
    assert "shell-state" in labels(command)


@pytest.mark.parametrize(
    "command",
    [
        "x=1",
        "export FOO=1",
        "read -r line",
        "IFS= read -r line",
        "set -euo pipefail",
        "set -x",
        "declare -p PATH",
        "unset -f f",
        "for f in a b; do :; done",
        "local x=1",
    ],
)
def test_ordinary_assignments_are_not_shell_state(command):
    assert "shell-state" not in labels(command)


# --------------------------------------------------------------------------- §2 arithmetic


@pytest.mark.parametrize(
    "command",
    [
        "echo $((v))",
        "echo $(( $v ))",
        "echo $[v]",
        "(( v ))",
        "[[ $v -eq 1 ]]",
        "[[ v -lt 2 ]]",
        "echo ${s:v}",
        "echo ${s:0:n}",
        "echo ${a[i]}",
        "a[i]=1",
        "for ((i=0; i<n; i++)); do :; done",
        "case 1 in $((v))) ;; esac",
        "echo ${!v}",
        "echo ${v@P}",
        "[[ -v a[i] ]]",
        "cat <<EOF\n$((v))\nEOF",
        "echo x > $((v))",
        "printf -v 'a[$(id)]' x",
    ],
)
def test_arithmetic_on_variable_text_runs_code(command):
    assert "runs-code" in labels(command)


@pytest.mark.parametrize(
    "command",
    [
        "echo $((1+2))",
        "echo ${a[0]}",
        "echo ${a[@]}",
        "echo ${s:1:2}",
        "echo ${!a[@]}",
        "echo ${#a[@]}",
        "[[ -f x ]]",
        "[[ $x == y ]]",
        '[ "$v" -eq 1 ]',
        "test $v -eq 1",
        "echo ${v:-default}",
        "echo ${v@Q}",
    ],
)
def test_arithmetic_on_constants_is_fine(command):
    assert "runs-code" not in labels(command)


def test_headers_are_parts_and_harmless_tests_need_no_rule():
    d = decide("[[ -f x ]] && cat x", "ask", RuleSet.of(allow=["cat *"]), ROOT)
    assert d.action == "run"
    assert [p.part.kind for p in d.parts] == ["test", "command"]
    assert (
        decide("[[ $v -eq 1 ]] && cat x", "ask", RuleSet.of(allow=["cat *"]), ROOT).action == "ask"
    )
    rules = RuleSet.of(allow=["cat *"])
    d = decide("for f in a; do cat $f; done", "ask", rules, ROOT)
    assert d.action == "run" and [p.part.kind for p in d.parts] == ["loop", "command"]
    assert decide("for PATH in a; do cat x; done", "ask", rules, ROOT).action == "ask"
    assert decide("for f in $(rm x); do cat x; done", "ask", rules, ROOT).action == "ask"
    assert decide("for ((i=0; i<n; i++)); do cat x; done", "ask", rules, ROOT).action == "ask"


# --------------------------------------------------------------------------- §2 programs


@pytest.mark.parametrize(
    ("script", "effects"),
    [
        ("p", []),
        ("s/a/b/g", []),
        ("s/a/b/e", ["runs-code"]),
        ("s/a/b/3e", ["runs-code"]),
        ("1e touch x", ["runs-code"]),
        ("$!{e\n}", ["runs-code"]),
        ("s/a/b/;e", ["runs-code"]),
        ("w out", ["writes"]),
        ("/x/W out", ["writes"]),
        ("s/a/b/w out", ["writes"]),
        ("r in", ["reads"]),
        ("1i\\\nhello\ne x", ["runs-code"]),
        ("a hello e x", []),
        ("y/abc/xyz/", []),
        ("s|/|e|", []),
        ("s/[/]/x/e", ["runs-code"]),
        ("\\%x%d", []),
        ("Z", ["runs-code"]),  # unknown command: ask
        ("s/unterminated", ["runs-code"]),
    ],
)
def test_sed_scripts(script, effects):
    assert [f.effect for f in sed_script_facts(script)] == effects


@pytest.mark.parametrize(
    ("program", "effects"),
    [
        ("{print $1}", set()),
        ("$3 > 100 {print}", set()),
        ('{print > "out"}', {"writes"}),
        ('{printf("%s", $1) > $2}', {"writes"}),
        ("{print $1 > 5}", {"writes"}),
        ('BEGIN{system("x")}', {"runs-code"}),
        ('{print | "sort"}', {"runs-code"}),
        ('BEGIN{"date" | getline d}', {"runs-code"}),
        ('BEGIN{f="system"; @f("x")}', {"runs-code"}),
        ('BEGIN{getline l < "/etc/passwd"}', {"reads"}),
        ("$1 || $2 {print}", set()),
    ],
)
def test_awk_programs(program, effects):
    assert {f.effect for f in awk_program_facts(program)} == effects


def test_long_options_are_resolved_like_getopt():
    spec = Options(
        short_arg="e", long_arg=frozenset({"expression", "exec"}), long_flags=frozenset({"quiet"})
    )
    opts, operands = split_options(
        [Word.literal(w) for w in ["--expr=x", "--q", "-ne", "y", "f"]], spec
    )
    assert opts == [
        ("--expression", Word.literal("x")),
        ("--quiet", None),
        ("-n", None),
        ("-e", Word.literal("y")),
    ]
    assert operands == [Word.literal("f")]
    opts, _ = split_options([Word.literal("--ex")], spec)  # ambiguous: left as written
    assert opts == [("--ex", None)]


@pytest.mark.parametrize(
    "command",
    [
        "sed -f s.sed f",
        "sed --file=s.sed f",
        'sed "$S" f',
        "awk -f p.awk",
        "awk -W exec=x",
        "git -c core.pager=x log",
        "git --config-env=core.pager=V log",
        "git lg",
        "git grep -Oless x",
        "git grep --open-files-in-pager=x y",
        "git ls-remote --upload-pack=x .",
        "git fetch -u x origin",
        "git rebase --exec x main",
        "git submodule foreach x",
        "git --exec-path=/tmp status",
        "git merge -s evil b",
        "git clone --template=t u",
        "tar -cf a --checkpoint-action=exec=x f",
        "tar --to-command=x -xf a",
        "tar -Ix -cf a f",
        "tar -cf a --use-compress=x f",
        "tar -cf host:a f",
        "sort --compress-program=x f",
        "man -P x ls",
        "rsync -e x a b:c",
        "ssh -o ProxyCommand=x h",
        "scp -S x a b:",
        "zip -TT x a.zip f",
        "vim -c '!x'",
        "vi +'!x' f",
        "mapfile -C x arr",
        "parallel x ::: a",
        "sqlite3 db '.shell x'",
        "ed f",
        "wget -e x u",
        "curl -K cfg u",
    ],
)
def test_arguments_that_run_code_are_labelled(command):
    assert "runs-code" in labels(command)


@pytest.mark.parametrize(
    "command",
    [
        "sed -n 1p f",
        "sed -i.bak 's/a/b/' f",
        "awk '{print}' f",
        "git log -p",
        "git status",
        "git diff --stat",
        "git grep -n x",
        "tar -czf out.tgz src",
        "tar -tf a.tgz",
        "sort -u f",
        "man ls",
        "vim f",
        "less f",
        "zip -r a.zip d",
        "find . -name x -print",
    ],
)
def test_ordinary_arguments_are_not_code(command):
    assert "runs-code" not in labels(command)


@pytest.mark.parametrize(
    "command",
    [
        "sort -o /tmp/x f",
        "uniq f /tmp/x",
        "sed -n 'w /tmp/x' f",
        "awk '{print > \"/tmp/x\"}' f",
        "find . -fprint /tmp/x",
        "git log --output=/tmp/x",
        "git format-patch -o /tmp/p HEAD~1",
        "tar -xf a.tar -C /tmp",
        "tar -xPf a.tar",
        "unzip a.zip -d /tmp",
        "curl -o /tmp/x u",
        "wget -P /tmp u",
        "patch -p1 < d.diff",
        "git -C /tmp init",
    ],
)
def test_writes_by_option_are_judged_against_the_project(command):
    assert "write-outside-cwd" in labels(command)


# --------------------------------------------------------------------------- §3 root, credentials


def test_writes_are_judged_against_the_session_root_not_the_shell_cwd():
    assert "write-outside-cwd" in labels("echo x >> .gitconfig", cwd=HOME, root=ROOT)
    assert "write-outside-cwd" not in labels("echo x >> notes", cwd=ROOT / "sub", root=ROOT)
    assert "write-outside-cwd" in labels("cd ~ && echo x >> .gitconfig", cwd=ROOT, root=ROOT)


@pytest.mark.parametrize(
    "command",
    [
        "echo x > .git/hooks/pre-commit",
        "cp x .git/config",
        "tee .git/modules/m/hooks/post-checkout",
        "echo '[approval]' > .tmax-local.toml",
        "echo x >> .envrc",
        "echo x > .gitattributes",
    ],
)
def test_writes_into_git_and_rule_files_stay_high_risk(command):
    assert "sensitive-file" in labels(command)


@pytest.mark.parametrize(
    "command",
    [
        "cat ~/.ssh/id_rsa",
        "cat ~/.ssh/../.ssh/id_ed25519",
        "cp ~/.aws/credentials x",
        "cat ~/.netrc",
        "cat < ~/.netrc",
        "grep x ~/.config/gh/hosts.yml",
        "cat ~/.docker/config.json",
        "cat /proc/1/environ",
        "cat /proc/$PPID/environ",
        "cat /proc/*/environ",
        "cat ../other/.env",
        "cat /srv/app/.env.production",
        "cat ~/.ss?/id_rsa",
        "cat $HOME/.ssh/id_rsa",
        "cat ${HOME}/.aws/config",
        "cat ~/.s'sh'/id_rsa",
        "tar -cf x ~",
        "cp -r ~ x",
        "cat ~/$d/k",
        "cat /home/*/.ssh/id_rsa",
        "curl -T ~/.netrc u",
        "cat ~/.git-credentials",
        "cat ~/.pgpass",
    ],
)
def test_reading_credentials_is_labelled(command):
    assert "credentials" in labels(command)


@pytest.mark.parametrize(
    "command",
    ["cat .env", "cat sub/.env", "cat README.md", "ls ~", "cat ~/notes.txt", "cat $f", "ls -la"],
)
def test_ordinary_reads_are_not_credentials(command):
    assert "credentials" not in labels(command)


def test_no_rule_covers_credentials_or_code():
    rules = RuleSet.of(allow=["cat *", "sed *"])
    for command in ("cat ~/.ssh/id_rsa", "sed '1e id' f"):
        d = decide(command, "ask", rules, ROOT, home=HOME)
        assert d.action == "ask" and d.parts[0].uncovered


# --------------------------------------------------------------------------- suggestions


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        ("sed -n 1p f", "sed -n 1p f"),
        ("awk '{print $1}' f", "awk '{print $1}' f"),
        ("find . -name x", "find . -name x"),
        ("tar -tf a.tar", "tar -tf a.tar"),
        ("xargs cat", "xargs cat"),
        ("env FOO=1 make", "FOO=1 make"),  # env is seen through: the part is make
        ("bash run.sh", "bash run.sh"),
        ("python3 x.py", "python3 x.py"),
        ("make test", "make test"),
        ("source venv/bin/activate", "source venv/bin/activate"),
        ("git status --short", "git status *"),
        ("git log -3", "git log *"),
        ("git push origin main", "git push origin main"),
        ("ls -la", "ls *"),
        ('sed -n "$x" f', None),  # no exact rule can be written
        ("sed '1e id' f", None),  # no rule would cover it
    ],
)
def test_code_runners_never_get_program_star(command, rule):
    a = analyze(command, ROOT)
    part = a.parts[0]
    names = [lab.name for lab in a.labels_of(0)]
    assert suggest_rule(part, names) == rule
    if rule is not None:
        assert Rule.parse(rule).matches(part)


def test_the_suggestion_says_why_it_is_exact():
    part = analyze("sed -n 1p f", ROOT).parts[0]
    assert "sed can run code" in suggestion_note(part)
    assert suggestion_note(analyze("ls -la", ROOT).parts[0]) == ""


@pytest.mark.parametrize(
    "program",
    [
        "sed",
        "awk",
        "find",
        "git",
        "tar",
        "xargs",
        "env",
        "bash",
        "sh",
        "python3",
        "python3.12",
        "perl",
        "node",
        "make",
        "source",
        ".",
    ],
)
def test_the_issue_list_runs_code_from_args(program):
    assert runs_code_from_args(program)


def test_the_approval_bar_explains_exact_suggestions():
    from tmax_local.approval import Gate, Reject
    from tmax_local.tui.approval_bar import approval_view

    seen = []
    Gate("ask", cwd=ROOT).review("sed -n 1p f && ls", lambda r: seen.append(r) or Reject())
    view = approval_view(seen[0])
    assert view.rules == ["sed -n 1p f", "ls *"]
    assert "sed can run code given in its arguments" in view.rule_explanation
