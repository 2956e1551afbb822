"""Before git runs unasked: does the repository's own config name programs to run?

The shell's environment overrides the settings that can be overridden
(`tmax_local.shell.env.GIT_SAFE_CONFIG`: fsmonitor, pager, hooks, editors…). What cannot be
switched off from outside are *drivers* the repository's config defines and its
``.gitattributes`` selects (``diff.<x>.textconv``, ``diff.<x>.command``, ``filter.<x>.*``,
``merge.<x>.driver``), ``diff.external``, and ``include`` directives that pull in other
files. So when a git part would run without asking, the repository-level config files
(``config``, ``config.worktree``, and those of its submodules) are read, and any key not on
a short list of inert settings makes the gate ask.

Reading is done here with a small parser for git's config syntax (sections, subsections,
``key = value``); a file it cannot read with confidence is itself a reason to ask.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tmax_local.approval.syntax import Part
from tmax_local.shell.env import GIT_SAFE_CONFIG

# Keys the shell's environment overrides (GIT_CONFIG_COUNT…; GIT_PAGER beats pager.<cmd>).
# When someone changes those variables the gate asks anyway (the shell changed).
_OVERRIDDEN = frozenset(key.lower() for key, _ in GIT_SAFE_CONFIG)
_PAGER_KEY = re.compile(r"^pager\.[a-z0-9-]+$")

# Keys (lower-case, "section.key" or "section.*.key") that never run or name a program.
_INERT = re.compile(
    r"^(?:core\.(?:repositoryformatversion|filemode|bare|logallrefupdates|ignorecase"
    r"|precomposeunicode|symlinks|autocrlf|eol|safecrlf|quotepath|sparsecheckout"
    r"|sparsecheckoutcone|untrackedcache|splitindex|compression|bigfilethreshold|checkstat"
    r"|trustctime|abbrev|commentchar|whitespace|fileMode|preloadindex|fscache|longpaths)"
    r"|remote\.[^.]+\.(?:url|pushurl|fetch|push|tagopt|prune|mirror|promisor"
    r"|partialclonefilter|skipdefaultupdate)"
    r"|branch\.[^.]+\.(?:remote|merge|rebase|pushremote|description)"
    r"|(?:user|author|committer)\.(?:name|email)"
    r"|init\.defaultbranch|pull\.(?:rebase|ff)|push\.(?:default|autosetupremote)"
    r"|fetch\.(?:prune|prunetags|recursesubmodules)|gc\.auto|maintenance\.[a-z.]+"
    r"|extensions\.(?:objectformat|worktreeconfig|preciousobjects|partialclone|refstorage)"
    r"|submodule\.[^.]+\.(?:url|active|branch|path)"
    r"|lfs\.repositoryformatversion|index\.(?:version|threads|sparse)|feature\.[a-z]+"
    r"|advice\.[a-z]+|color\.[a-z.]+|merge\.(?:ff|conflictstyle)|rerere\.enabled"
    r"|status\.(?:showuntrackedfiles|short|branch)|commit\.(?:verbose)|log\.date"
    r"|diff\.(?:renames|algorithm|mnemonicprefix|noprefix|colormoved))$"
)

_SECTION = re.compile(r'^\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]\s*(.*)$')
_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*(?:=|$)")


def git_reasons(part: Part, cwd: str) -> list[str]:
    """Why ``part`` (a git command) should not run unasked in ``cwd``; empty when fine."""
    args = [w.value for w in part.words[1:]]
    start = Path(part.cwd) if part.cwd is not None else Path(cwd)
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-C" and i + 1 < len(args):
            start = start / args[i + 1]
            i += 2
            continue
        if a.startswith(("--git-dir", "--work-tree", "--exec-path", "--namespace")):
            return [f"`git {a.split('=')[0]}` points git at a repository chosen by the command"]
        if not a.startswith("-"):
            break
        i += 1
    out: list[str] = []
    gitdirs = _find_gitdirs(start)
    for top, gitdir in list(gitdirs):
        gitdirs += _gitlink_gitdirs(top, gitdir, out)
    for _, gitdir in gitdirs:
        for cfg in _config_files(gitdir):
            for key in _keys(cfg, out):
                if not (_INERT.match(key) or key in _OVERRIDDEN or _PAGER_KEY.match(key)):
                    out.append(f"the repository's config ({cfg}) sets {key}, which git may run")
    return list(dict.fromkeys(out))


def _find_gitdirs(start: Path) -> list[tuple[Path, Path]]:
    """The repository directories git may use from ``start``: the first ``.git`` found
    upwards, and, while what was found does not look like a repository (git passes over
    such a ``.git`` and goes on upwards), the ones above it too. Each comes with its
    working tree's top directory."""
    d = Path(os.path.abspath(start))
    found: list[tuple[Path, Path]] = []
    for here in (d, *d.parents):
        dotgit = here / ".git"
        if dotgit.is_dir():
            gitdir = dotgit
        elif dotgit.is_file():
            try:
                text = dotgit.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            m = re.match(r"gitdir:\s*(.+)", text)
            if m is None:
                continue
            gitdir = here / m.group(1).strip()
        else:
            continue
        found.append((here, gitdir))
        if _looks_like_repository(gitdir):
            break
    return found


def _gitlink_gitdirs(top: Path, gitdir: Path, problems: list[str]) -> list[tuple[Path, Path]]:
    """The repositories embedded in ``top`` as submodules (gitlinks in the index): git
    runs inside them (``git diff --submodule=diff``, ``git status``) with their own config."""
    out: list[tuple[Path, Path]] = []
    for path in _index_gitlinks(gitdir / "index", problems):
        for _, inner in _find_gitdirs(top / path)[:1]:
            if inner != gitdir:
                out.append((top / path, inner))
    return out


def _index_gitlinks(index: Path, problems: list[str]) -> list[str]:
    """Paths of the gitlink entries (mode 160000) in a git index file (versions 2–4)."""
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        problems.append(f"cannot read the repository's index {index}: {err}")
        return []
    if len(data) < 12 or data[:4] != b"DIRC":
        problems.append(f"cannot read the repository's index {index}")
        return []
    version, count = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
    if version not in (2, 3, 4):
        problems.append(f"cannot read the repository's index {index} (version {version})")
        return []
    pos, prev, links = 12, b"", []
    try:
        for _ in range(count):
            start = pos
            mode = int.from_bytes(data[pos + 24 : pos + 28], "big")
            flags = int.from_bytes(data[pos + 60 : pos + 62], "big")
            pos += 62 + (2 if version >= 3 and flags & 0x4000 else 0)
            if version == 4:  # the path: drop N bytes of the previous one, add a suffix
                drop = 0
                byte = data[pos]
                drop = byte & 0x7F
                while byte & 0x80:
                    pos += 1
                    byte = data[pos]
                    drop = ((drop + 1) << 7) | (byte & 0x7F)
                pos += 1
                end = data.index(b"\0", pos)
                path = prev[: len(prev) - drop] + data[pos:end]
                pos = end + 1
            else:
                end = data.index(b"\0", pos)
                path = data[pos:end]
                pos = start + ((end - start) // 8 + 1) * 8
            prev = path
            if mode >> 12 == 0o16:  # 0160000: a gitlink
                links.append(os.fsdecode(path))
    except (IndexError, ValueError):
        problems.append(f"cannot read the repository's index {index}")
    return links


def _looks_like_repository(gitdir: Path) -> bool:
    """git's own test, roughly: a HEAD file and ``objects``/``refs`` (here or in the
    common directory of a linked worktree)."""
    if not (gitdir / "HEAD").is_file():
        return False
    common = gitdir
    try:
        common = gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        pass
    return (common / "objects").is_dir() and (common / "refs").is_dir()


def _config_files(gitdir: Path) -> list[Path]:
    out = [gitdir / "config", gitdir / "config.worktree"]
    try:
        common = (gitdir / "commondir").read_text(encoding="utf-8").strip()
        out.append(gitdir / common / "config")
    except OSError:
        pass
    modules = gitdir / "modules"
    if modules.is_dir():
        out += sorted(modules.rglob("config"))
    return [p for p in out if p.is_file()]


def _keys(cfg: Path, problems: list[str]) -> list[str]:
    """Every ``section[.subsection].key`` set in ``cfg``, lower-cased, subsection as ``*``.

    Lines are split as git splits them: only ``\\n`` ends a line (``\\r\\n`` counts as one),
    and a value continues on the next line only when it ends in a backslash that is not
    itself escaped or inside a ``#``/``;`` comment (quotes do not stop a continuation).
    """
    try:
        text = cfg.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        problems.append(f"cannot read the repository's config {cfg}: {err}")
        return []
    keys: list[str] = []
    section: str | None = None
    continued = False
    quoted = False
    for raw in text.split("\n"):
        raw = raw.removesuffix("\r")
        if continued:
            continued, quoted = _value_continues(raw, quoted)
            continue
        line = raw.strip(" \t")
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            m = _SECTION.match(line)
            if m is None:
                problems.append(f"cannot read the section {line!r} in {cfg}")
                section = None
                continue
            name, sub, rest = m.group(1).lower(), m.group(2), m.group(3)
            if "." in name:  # [section.subsection] (old syntax)
                head, _, tail = name.partition(".")
                name, sub = head, tail
            section = f"{name}.*" if sub is not None else name
            line = rest.strip(" \t")
            if not line or line[0] in "#;":
                continue
        m = _KEY.match(line)
        if m is None or section is None:
            problems.append(f"cannot read the line {line!r} in {cfg}")
            continue
        keys.append(f"{section}.{m.group(1).lower()}")
        continued, quoted = _value_continues(line[m.end() :], False)
    return keys


def _value_continues(value: str, quoted: bool) -> tuple[bool, bool]:
    """Scan one line of a value as git does: (does it continue on the next line, and is a
    double-quoted string still open there)."""
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            if i + 1 == len(value):
                return True, quoted
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in "#;" and not quoted:
            return False, False
        i += 1
    return False, False
