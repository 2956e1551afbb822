"""The data of a parsed command: words, redirections, parts, and why a part cannot be trusted.

These types are shared by the parser (`syntax`), the wrapper expansion (`wrappers`), the
labels and the rules. This module loads no parser, so code that only reads a `Part` (a UI,
a rule file check) does not pay for tree-sitter.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

MAX_COMMAND_CHARS = 100_000
"""Longer commands are not analysed (always asked)."""

MAX_DEPTH = 150
"""Deeper syntax trees are not analysed (always asked)."""

MAX_NESTED_CODE = 4
"""How many levels of code-in-a-string (``bash -c '…'``, ``trap '…'``) we follow."""


class ProblemKind(enum.Enum):
    """Why (part of) a command cannot be analysed. The policy asks for every kind; labels
    are chosen from the kind, never from the wording of the message."""

    SYNTAX = "syntax"
    """A syntax error, or a place where the parser and bash may disagree."""
    CHARACTERS = "characters"
    """Control, invisible or non-ASCII characters where they change meaning."""
    LIMIT = "limit"
    """Too long, too deep, or code nested in strings too deeply."""
    DYNAMIC_NAME = "dynamic-name"
    """The command name is only known when it runs."""
    EVAL = "eval"
    """Text run as shell code (``eval``, ``let``)."""
    DYNAMIC_CODE = "dynamic-code"
    """A code string (``bash -c "$X"``, a trap action) only known when it runs."""
    PIPED_CODE = "piped-code"
    """Another command's output is run as code (``curl … | sh``)."""
    GENERATED_CODE = "generated-code"
    """A script produced by another command (``bash <(curl …)``)."""
    LOOSE_WORDS = "loose-words"
    """An unquoted expansion may become options that run commands (``find . $X``)."""


@dataclass(frozen=True)
class Problem:
    """One reason a command or part cannot be analysed."""

    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return self.message

    def __contains__(self, text: str) -> bool:  # `"eval" in problem`, for readable tests
        return text in self.message


@dataclass(frozen=True)
class Word:
    """One shell word.

    ``text`` is the word as written; ``value`` is our best guess of what bash passes after
    quote removal; ``static`` is True only when ``value`` is certain (no expansion,
    substitution, globbing, brace or tilde expansion).
    """

    text: str
    value: str
    static: bool
    splits: bool = False
    """True when bash may turn it into several words (an unquoted ``$x``, ``$(…)`` or glob)."""

    @staticmethod
    def literal(value: str) -> Word:
        return Word(value, value, True)


_FD_DUP = re.compile(r"\d+|-|\d+-")


@dataclass(frozen=True)
class Redirect:
    """A redirection such as ``> out``, ``2>&1``, ``<<EOF`` or ``<<< text``."""

    op: str
    """The operator as written: ``>``, ``>>``, ``&>``, ``>&``, ``<``, ``<<``, ``<<-``, ``<<<``…"""
    target: Word | None
    """The file (or fd number, or here-string); None for here-documents."""
    fd: str = ""
    """An explicit file descriptor before the operator (``2`` in ``2>err``)."""
    heredoc: str | None = None
    """A here-document's body (as written)."""
    heredoc_static: bool = True
    """False when the here-document body is expanded by bash (unquoted delimiter + ``$``)."""

    @property
    def writes(self) -> bool:
        """True when this redirection opens ``target`` for writing."""
        if self.op in {">", ">>", "&>", "&>>", ">|", "<>"}:
            return True
        if self.op == ">&" and self.target is not None:
            return not _FD_DUP.fullmatch(self.target.value)
        return False

    @property
    def reads(self) -> bool:
        """True when this redirection opens ``target`` for reading."""
        if self.op in {"<", "<>"}:
            return True
        if self.op == "<&" and self.target is not None:
            return not _FD_DUP.fullmatch(self.target.value)
        return False

    @property
    def feeds_stdin(self) -> bool:
        """True for here-documents and here-strings (text handed to the command's stdin)."""
        return self.op in {"<<", "<<-", "<<<"}

    @property
    def stdin_fd(self) -> str:
        """The file descriptor it sets up (``0`` unless written otherwise)."""
        if self.fd:
            return self.fd
        return "0" if self.op.startswith("<") else "1"


PartKind = str
"""``command``, ``assignment`` (``X=1``), ``loop`` (a ``for``/``select`` header: its
variable is in ``assignments``), ``redirection`` (``> f``), ``function`` (a definition;
``words`` holds its name) or ``test`` (``[[ … ]]``, ``(( … ))``, ``case … in``: evaluated
by the shell itself)."""


@dataclass(frozen=True)
class Part:
    """One simple command of a (possibly compound) command line."""

    text: str
    """The source text of this part (for display)."""
    words: tuple[Word, ...]
    """argv: the command name then its arguments (empty for a bare assignment/redirection)."""
    assignments: tuple[Word, ...] = ()
    """``NAME=value`` words that prefix the command (or make up a bare assignment)."""
    redirects: tuple[Redirect, ...] = ()
    """Redirections that apply to this command, including those of enclosing blocks."""
    kind: PartKind = "command"
    """See `PartKind`."""
    via: str = ""
    """Empty when written directly; otherwise what runs it (``sudo``, ``bash -c``,
    ``find -exec``, ``timeout 5``, ``trap``…)."""
    piped: bool = False
    """True when its stdin is a pipe from another command."""
    problems: tuple[Problem, ...] = ()
    """Why this part cannot be analysed (it is then always asked)."""
    cwd: Path | None = None
    """The directory relative paths resolve in when it runs; None after a ``cd`` we could
    not follow. Filled in by `analyze`."""
    span: tuple[int, int] = (0, 0)
    """Character offsets of ``text`` in the top-level command (for highlighting)."""
    arithmetic: tuple[str, ...] = ()
    """Arithmetic text bash evaluates for this part (``$((…))``, ``(( … ))``, subscripts,
    ``[[ a -eq b ]]`` operands, substring offsets…), as written."""
    indirect: tuple[str, ...] = ()
    """Indirect expansions (``${!x}``) in this part, as written."""

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(w.value for w in self.words)

    @property
    def name(self) -> str:
        """The command name as bash would look it up ('' when there is none)."""
        return self.words[0].value if self.words else ""

    @property
    def program(self) -> str:
        """The basename of the command name (``/usr/bin/rm`` → ``rm``)."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def display(self) -> str:
        """The words of this part as written, joined by spaces."""
        words = [w.text for w in self.assignments + self.words]
        return " ".join(words) if words else self.text

    def has_problem(self, *kinds: ProblemKind) -> bool:
        return any(p.kind in kinds for p in self.problems)
