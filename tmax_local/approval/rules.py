"""Allow and deny rules: readable patterns matched against one simple command at a time.

A rule is a list of words, written like a command: ``git status``, ``pytest *``,
``PYTHONPATH=. pytest tests/*``. It is matched against the words of a single part
(its ``NAME=value`` prefixes, then argv) after quote removal:

- each rule word must match the part word at the same position; ``*`` inside a rule word
  matches any characters (``tests/*`` matches ``tests/a.py``); nothing else is special;
- the part must have exactly as many words as the rule, **unless the rule ends with a
  lone** ``*``, which matches any number (zero or more) of further words;
- a part word bash only knows at run time (``$x``, ``$(…)``, globs, ``~``) is matched only
  by that trailing ``*`` — never by a literal or a glob in the middle of a rule.

So ``ls`` allows only bare ``ls``; ``ls *`` allows ``ls`` with any arguments. Rules never
see across parts: ``ls; rm -rf /`` has two parts and ``ls *`` matches only the first.
Deny rules are matched more loosely (by the program's basename, with or without the
``NAME=value`` prefixes, dynamic words counting as matches) because for them a false
match only means "ask".
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from tmax_local.approval.labels import HIGH_RISK, NEVER_BY_RULE
from tmax_local.approval.parts import Part, Word
from tmax_local.approval.programs import runs_code_from_args
from tmax_local.errors import ConfigError

RuleKind = Literal["allow", "deny"]


@dataclass(frozen=True)
class Rule:
    """One pattern, where it came from, and its parsed words."""

    pattern: str
    words: tuple[str, ...]
    source: str = "session"
    """``session``, ``saved`` (the user's rules file) or ``project`` (``.tmax-local.toml``)."""

    @classmethod
    def parse(cls, pattern: str, source: str = "session") -> Rule:
        """Parse a pattern; raises `ConfigError` on an empty or malformed one."""
        if not isinstance(pattern, str):
            raise ConfigError(f"a rule must be a string, not {type(pattern).__name__}")
        if any(ord(c) < 32 or ord(c) == 127 for c in pattern):
            raise ConfigError(f"rule {pattern!r} contains control characters")
        try:
            words = tuple(shlex.split(pattern))
        except ValueError as exc:
            raise ConfigError(f"rule {pattern!r} cannot be read: {exc}") from None
        if not words:
            raise ConfigError("a rule cannot be empty")
        return cls(pattern.strip(), words, source)

    @property
    def open_ended(self) -> bool:
        """True when the rule ends with a lone ``*`` (any further words)."""
        return self.words[-1] == "*"

    def matches(self, part: Part) -> bool:
        """Allow-rule matching: strict (see the module docstring)."""
        if part.kind not in ("command", "assignment") or part.problems:
            return False
        return _match(self.words, part.assignments + part.words, loose=False)

    def matches_loosely(self, part: Part) -> bool:
        """Deny-rule matching: also by basename, without prefixes, dynamic words matching."""
        if part.kind == "function":
            return False
        words = list(part.words)
        candidates = [part.assignments + part.words, part.words]
        if words and "/" in words[0].value:
            base = words[0].value.rsplit("/", 1)[-1]
            candidates.append((Word(base, base, words[0].static), *words[1:]))
        return any(_match(self.words, tuple(c), loose=True) for c in candidates if c)


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(piece) for piece in pattern.split("*")), re.DOTALL)


def _word_matches(pattern: str, word: Word, loose: bool) -> bool:
    if not word.static:
        return loose
    if "*" not in pattern:
        return pattern == word.value
    return _glob(pattern).fullmatch(word.value) is not None


def _match(pattern: tuple[str, ...], words: tuple[Word, ...], loose: bool) -> bool:
    fixed = pattern[:-1] if pattern[-1] == "*" else pattern
    if pattern[-1] == "*":
        if len(words) < len(fixed):
            return False
    elif len(words) != len(fixed):
        return False
    return all(_word_matches(p, w, loose) for p, w in zip(fixed, words, strict=False))


@dataclass(frozen=True)
class RuleSet:
    """Allow and deny rules, in the order they were added."""

    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()

    @classmethod
    def of(
        cls, allow: Iterable[str] = (), deny: Iterable[str] = (), source: str = "session"
    ) -> RuleSet:
        """Build from pattern strings (raises `ConfigError` on a bad one)."""
        return cls(
            tuple(Rule.parse(p, source) for p in allow), tuple(Rule.parse(p, source) for p in deny)
        )

    def __add__(self, other: RuleSet) -> RuleSet:
        return RuleSet(self.allow + other.allow, self.deny + other.deny)

    def with_rule(self, rule: Rule, kind: RuleKind = "allow") -> RuleSet:
        if kind == "allow":
            if any(r.words == rule.words for r in self.allow):
                return self
            return RuleSet(self.allow + (rule,), self.deny)
        if any(r.words == rule.words for r in self.deny):
            return self
        return RuleSet(self.allow, self.deny + (rule,))

    def allowing(self, part: Part) -> Rule | None:
        """The first allow rule that matches ``part``."""
        return next((r for r in self.allow if r.matches(part)), None)

    def denying(self, part: Part) -> Rule | None:
        """The first deny rule that matches ``part``."""
        return next((r for r in self.deny if r.matches_loosely(part)), None)


# --------------------------------------------------------------------------- suggestions

SUBCOMMAND_TOOLS = frozenset(
    {
        "git",
        "npm",
        "pnpm",
        "yarn",
        "pip",
        "pip3",
        "uv",
        "cargo",
        "go",
        "docker",
        "kubectl",
        "apt",
        "apt-get",
        "conda",
        "poetry",
        "make",
        "systemctl",
        "brew",
        "gh",
        "dotnet",
        "mvn",
        "gradle",
        "bundle",
        "rustup",
        "helm",
        "terraform",
        "hf",
        "huggingface-cli",
    }
)


def _quote(word: str) -> str:
    return word if re.fullmatch(r"[A-Za-z0-9_@%+=:,./*-]+", word) else shlex.quote(word)


_NARROW_SUBCOMMANDS = {
    "git": frozenset(
        {"status", "log", "diff", "show", "blame", "branch", "rev-parse", "ls-files", "shortlog"}
    ),
}
"""Code-running programs for which ``PROGRAM SUBCOMMAND *`` is narrow enough to suggest:
their risky options are labelled (``runs-code``, writes) and no rule covers those."""


def suggest_rule(part: Part, labels: Iterable[str] = ()) -> str | None:
    """A readable allow rule for one part, or None when no rule could allow it.

    Risky parts (a high-risk label) and programs that run code from their arguments
    (`programs.CODE_FROM_ARGS`: sed, awk, find, tar, xargs, env, shells, interpreters,
    make…) get an exact rule — ``rm -rf build``, not ``rm *`` — others the program (and
    subcommand) followed by ``*``. `suggestion_note` says why a rule is exact.
    """
    if part.kind not in ("command", "assignment") or part.problems:
        return None
    names = set(labels)
    if names & NEVER_BY_RULE:
        return None  # no rule would cover it
    words = list(part.assignments) + list(part.words)
    if not words:
        return None
    lead = len(part.assignments)
    code = bool(part.words) and runs_code_from_args(part.program)
    narrow = _NARROW_SUBCOMMANDS.get(part.program, frozenset()) if code else frozenset()
    exact = bool(names & HIGH_RISK) or code
    if code and len(part.words) > 1 and part.words[1].value in narrow and part.words[1].static:
        exact = False
    out: list[str] = []
    for i, w in enumerate(words):
        if i < lead:
            name = w.value.split("=", 1)[0]
            out.append(_quote(w.value) if w.static else f"{_quote(name)}=*")
            continue
        if not w.static or "*" in w.value:
            if code and exact:
                return None  # an exact rule cannot be written for a word known at run time
            out.append("*")
            return " ".join(out)
        if not exact:
            is_sub = (
                i == lead + 1
                and part.words[0].value in SUBCOMMAND_TOOLS
                and not w.value.startswith("-")
            )
            if i > lead and not is_sub:
                out.append("*")
                return " ".join(out)
        out.append(_quote(w.value))
    if not exact:
        out.append("*")
    return " ".join(out)


def suggestion_note(part: Part, labels: Iterable[str] = ()) -> str:
    """Why `suggest_rule` proposes only an exact rule (or none) for ``part`` ('' if it
    does not)."""
    names = set(labels)
    if names & NEVER_BY_RULE:
        return "no rule is suggested: no allow rule covers " + ", ".join(
            sorted(names & NEVER_BY_RULE)
        )
    if part.words and runs_code_from_args(part.program):
        narrow = _NARROW_SUBCOMMANDS.get(part.program, frozenset())
        if len(part.words) > 1 and part.words[1].value in narrow:
            return ""
        return (
            f"{part.program} can run code given in its arguments, so only this exact "
            f"command is suggested (not '{part.program} *')"
        )
    if names & HIGH_RISK:
        return "a risky command: only this exact command is suggested"
    return ""


def suggestion_notes(parts: Iterable[tuple[Part, Iterable[str]]]) -> tuple[str, ...]:
    """`suggestion_note` for each (part, its label names) that has one, without repeats:
    what a UI shows next to "always allow"."""
    notes = (suggestion_note(part, labels) for part, labels in parts)
    return tuple(dict.fromkeys(n for n in notes if n))


@dataclass(frozen=True)
class RuleMatch:
    """How a rule would match one part (for a UI's preview)."""

    part: Part
    matches: bool


def explain(rule: Rule | str, parts: Iterable[Part]) -> tuple[RuleMatch, ...]:
    """Which of ``parts`` ``rule`` would allow."""
    r = Rule.parse(rule) if isinstance(rule, str) else rule
    return tuple(RuleMatch(p, r.matches(p)) for p in parts)
