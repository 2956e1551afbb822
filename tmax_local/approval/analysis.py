"""`analyze`: a command line → its parts, where each runs, and the risks of each."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from tmax_local.approval.labels import Label, label_part, path_of
from tmax_local.approval.parts import Part, Problem
from tmax_local.approval.wrappers import parse_command


@dataclass(frozen=True)
class Analysis:
    """Everything we could tell about a command without running it."""

    command: str
    """The command exactly as given."""
    cwd: Path
    """The directory it starts in (relative paths resolve there)."""
    parts: tuple[Part, ...]
    """Every simple command it runs, in (roughly) execution order."""
    problems: tuple[Problem, ...]
    """Why the command as a whole cannot be trusted to be analysed (syntax errors, control
    characters…). Part-level problems are on each part."""
    labels: tuple[Label, ...]
    root: Path | None = None
    """The project root writes were judged against (``cwd`` when not given)."""

    @property
    def parsed(self) -> bool:
        """True when bash syntax parsed cleanly and every part could be analysed."""
        return not self.problems and not any(p.problems for p in self.parts)

    @property
    def all_problems(self) -> tuple[str, ...]:
        out = [str(p) for p in self.problems]
        for p in self.parts:
            out += [f"{p.display}: {why}" for why in p.problems]
        return tuple(dict.fromkeys(out))

    def labels_of(self, index: int) -> tuple[Label, ...]:
        return tuple(label for label in self.labels if label.part == index)

    @property
    def high_risk(self) -> tuple[Label, ...]:
        return tuple(label for label in self.labels if label.high_risk)


def analyze(
    command: str, cwd: Path | str, *, home: Path | None = None, root: Path | str | None = None
) -> Analysis:
    """Parse ``command`` (as bash would) and label each part.

    ``cwd`` is the directory the command will start in (pass the shell's current directory);
    relative paths resolve there. ``root`` is the project root, fixed when the session
    started: writes are "outside" when they leave it (defaults to ``cwd``). ``home``
    defaults to the user's home (for ``~``). Pure: reads nothing but symlinks under the
    paths involved; runs nothing.
    """
    start = Path(os.path.abspath(cwd))
    project = Path(os.path.abspath(root)) if root is not None else start
    home = home if home is not None else Path(os.path.expanduser("~"))
    raw_parts, problems = parse_command(command)
    parts: list[Part] = []
    base: Path | None = start
    for part in raw_parts:
        part = replace(part, cwd=None if _moves(part) else base)
        parts.append(part)
        base = _after(part, base, home)
    labels: list[Label] = []
    for i, part in enumerate(parts):
        labels += label_part(i, part, project, home)
    return Analysis(command, start, tuple(parts), tuple(problems), tuple(labels), project)


_CHDIR_VIA = re.compile(r"(^|\s)(env|sudo|doas)\b[^|]*\s(-C|--chdir|-D)(\s|=|$)")


def _moves(part: Part) -> bool:
    """True when what runs this part starts it in another directory (``env -C dir``,
    ``sudo -D dir``): its relative paths are then judged as unknown."""
    return bool(part.via) and _CHDIR_VIA.search(part.via) is not None


def _after(part: Part, base: Path | None, home: Path) -> Path | None:
    """The directory after ``part`` ran (following ``cd``/``pushd``; None when unknown)."""
    if part.kind != "command" or part.program not in ("cd", "pushd", "popd"):
        return base
    if part.program == "popd":
        return None
    operands = [w for w in part.words[1:] if not (w.value.startswith("-") and w.static)]
    if not operands:
        return home if part.program == "cd" else None
    target = operands[0]
    if target.value == "-" and target.static:
        return None
    return path_of(target, base, home)
