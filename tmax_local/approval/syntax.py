"""What a bash command line will run, read with a real bash parser (tree-sitter-bash).

`parse_parts(command)` walks the syntax tree and returns every *simple command* bash
would execute — the parts of lists, pipelines, subshells, ``$(…)``, backticks, process
substitutions, function bodies, loops and branches — each with its words (as written and
unquoted), its redirections, and the reasons it cannot be analysed, if any.

The parser is tolerant, bash is not, and the two disagree in corners. Where we know they
can disagree (line continuations inside a word, backslashes inside backticks, control
and invisible characters, syntax errors) the command is flagged as a *problem*, which the
policy turns into "always ask". Nothing here runs anything.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import lru_cache

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from tmax_local.approval.parts import (
    MAX_COMMAND_CHARS,
    MAX_DEPTH,
    Part,
    Problem,
    ProblemKind,
    Redirect,
    Word,
)

__all__ = ["parse_parts"]


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bash.language()))


@dataclass
class _Ctx:
    src: bytes
    text_of: dict[int, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    char_starts: list[int] | None = None

    def flag(self, message: str, kind: ProblemKind = ProblemKind.SYNTAX) -> None:
        self.problems.append(Problem(kind, message))

    def text(self, node: Node) -> str:
        return _decode(self.src[node.start_byte : node.end_byte])

    def span(self, node: Node) -> tuple[int, int]:
        """Character offsets of ``node`` in the command (tree-sitter counts bytes)."""
        if self.char_starts is None:
            starts, pos = [], 0
            for ch in self.src.decode("utf-8", "surrogatepass"):
                starts.append(pos)
                pos += len(ch.encode("utf-8", "surrogatepass"))
            starts.append(pos)
            self.char_starts = starts
        return (
            bisect.bisect_left(self.char_starts, node.start_byte),
            bisect.bisect_left(self.char_starts, node.end_byte),
        )


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


# --------------------------------------------------------------------------- words

# a blank or operator character not escaped by a backslash: bash would end the word there
_UNESCAPED_META = re.compile(r"(?<!\\)(?:\\\\)*[\n \t;&|<>]")
_DQ_ESCAPABLE = set('$`"\\\n')


def _unquoted_piece(text: str) -> tuple[str, bool]:
    """Quote removal for an unquoted word piece; static is False when bash would expand it
    (globs ``* ? [..]``, a leading ``~``, braces ``{a,b}`` / ``{1..3}``)."""
    out: list[str] = []
    special: list[str] = []  # unescaped characters, '' for escaped ones
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt != "\n":
                out.append(nxt)
                special.append("")
            i += 2
            continue
        out.append(ch)
        special.append(ch)
        i += 1
    raw = "".join(c or "\x00" for c in special)
    expands = (
        "*" in raw
        or "?" in raw
        or re.search(r"\[.*\]", raw) is not None
        or raw.startswith("~")
        or "=~" in raw
        or ":~" in raw
        or _BRACES.search(raw) is not None
    )
    return "".join(out), not expands


_BRACES = re.compile(r"\{[^{}]*(,|\.\.)[^{}]*\}")
_BRACKETS = re.compile(r"\[.*\]")


def _dq_piece(text: str) -> str:
    """Backslash handling inside double quotes."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _DQ_ESCAPABLE:
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _eval(ctx: _Ctx, node: Node) -> tuple[str, bool]:
    """(value, static) of a word-like node."""
    kind = node.type
    text = ctx.text(node)
    if not node.is_named:  # a keyword such as `export` or `local`
        return text, True
    if kind in ("word", "number", "variable_name", "test_operator", "extglob_pattern"):
        if kind == "number":
            return text, True
        if _UNESCAPED_META.search(text):
            ctx.flag(
                f"the parser read {text!r} as one word; bash splits it at the blank or operator"
            )
        return _unquoted_piece(text)
    if kind == "raw_string":
        return text[1:-1], True
    if kind == "ansi_c_string":
        inner = text[2:-1]
        # $'…' escapes are decoded by bash; we do not guess them
        return inner, "\\" not in inner
    if kind == "string":
        return _eval_string(ctx, node)
    if kind in ("concatenation", "command_name"):
        return _eval_sequence(ctx, node)
    if kind == "variable_assignment":
        return _eval_assignment(ctx, node)
    if kind == "simple_expansion" and any(c in text for c in " \t\n"):
        ctx.flag(f"the parser read {text!r} as one expansion; bash would not")
    return text, False


def _eval_sequence(ctx: _Ctx, node: Node) -> tuple[str, bool]:
    value: list[str] = []
    # `{a,b}` and `[ab]` may arrive as several pieces: judge the whole text too
    static = _BRACES.search(ctx.text(node)) is None and _BRACKETS.search(ctx.text(node)) is None
    pos = node.start_byte
    for child in node.children:
        if child.start_byte > pos:  # text the grammar did not put in a child
            gap, gap_static = _unquoted_piece(_decode(ctx.src[pos : child.start_byte]))
            value.append(gap)
            static = static and gap_static
        piece, piece_static = _eval(ctx, child)
        value.append(piece)
        static = static and piece_static
        pos = child.end_byte
    if node.end_byte > pos:
        gap, gap_static = _unquoted_piece(_decode(ctx.src[pos : node.end_byte]))
        value.append(gap)
        static = static and gap_static
    return "".join(value), static


def _eval_string(ctx: _Ctx, node: Node) -> tuple[str, bool]:
    """A double-quoted string: literal pieces are unescaped, anything else is dynamic."""
    start, end = node.start_byte + 1, node.end_byte - 1
    if end < start:
        return ctx.text(node), False
    value: list[str] = []
    static = True
    pos = start
    for child in node.children:
        if child.type == '"' or child.start_byte < start or child.end_byte > end:
            continue
        if child.start_byte > pos:
            value.append(_dq_piece(_decode(ctx.src[pos : child.start_byte])))
        if child.type == "string_content":
            value.append(_dq_piece(ctx.text(child)))
        else:
            value.append(ctx.text(child))
            static = False
        pos = child.end_byte
    if end > pos:
        value.append(_dq_piece(_decode(ctx.src[pos:end])))
    return "".join(value), static


def _eval_assignment(ctx: _Ctx, node: Node) -> tuple[str, bool]:
    name = node.child_by_field_name("name")
    val = node.child_by_field_name("value")
    head_end = val.start_byte if val is not None else node.end_byte
    head = _decode(ctx.src[node.start_byte : head_end])
    static = name is not None and name.type == "variable_name" and "[" not in head
    if val is None:
        return head, static
    value, val_static = _eval(ctx, val)
    return head + value, static and val_static


def _splits(ctx: _Ctx, node: Node) -> bool:
    kind = node.type
    if kind in ("simple_expansion", "expansion", "command_substitution", "arithmetic_expansion"):
        return True
    if kind == "word":
        return not _unquoted_piece(ctx.text(node))[1]
    if kind in ("concatenation", "command_name"):
        return _BRACES.search(ctx.text(node)) is not None or any(
            _splits(ctx, c) for c in node.children
        )
    return False


def _word(ctx: _Ctx, nodes: list[Node]) -> Word:
    """One word from one node, or from adjacent nodes the grammar split (never static)."""
    splits = any(_splits(ctx, n) for n in nodes)
    if len(nodes) == 1:
        value, static = _eval(ctx, nodes[0])
        return Word(ctx.text(nodes[0]), value, static, splits)
    text = _decode(ctx.src[nodes[0].start_byte : nodes[-1].end_byte])
    value = "".join(_eval(ctx, n)[0] for n in nodes)
    return Word(text, value, False, splits)


def _group_adjacent(nodes: list[Node]) -> list[list[Node]]:
    groups: list[list[Node]] = []
    for n in nodes:
        if groups and groups[-1][-1].end_byte == n.start_byte:
            groups[-1].append(n)
        else:
            groups.append([n])
    return groups


# --------------------------------------------------------------------------- redirects

_REDIRECT_TYPES = {"file_redirect", "heredoc_redirect", "herestring_redirect"}


def _redirect(ctx: _Ctx, node: Node) -> tuple[Redirect, list[Node]]:
    """A redirect and the extra words after its target (``> f x`` passes ``x`` as an argument)."""
    fd = ""
    op = ""
    dests: list[Node] = []
    for i, child in enumerate(node.children):
        fname = node.field_name_for_child(i)
        if child.type == "file_descriptor":
            fd = ctx.text(child)
        elif not child.is_named and not op:
            op = child.type
        elif fname == "destination" or (
            node.type == "herestring_redirect"
            and child.is_named
            and child.type != "file_descriptor"
        ):
            dests.append(child)
    if node.type == "heredoc_redirect":
        body = None
        start_node = None
        for child in node.children:
            if child.type == "heredoc_body":
                body = child
            elif child.type == "heredoc_start":
                start_node = child
        delim = ctx.text(start_node) if start_node is not None else ""
        quoted = any(c in delim for c in "'\"\\")
        _check_heredoc(ctx, node, delim, op == "<<-")
        body_text = ctx.text(body) if body is not None else ""
        dynamic = (
            not quoted
            and body is not None
            and any(c.type != "heredoc_content" for c in body.children)
        )
        return Redirect(op or "<<", None, fd, heredoc=body_text, heredoc_static=not dynamic), []
    groups = _group_adjacent(dests)
    target = _word(ctx, groups[0]) if groups else None
    extra = [n for g in groups[1:] for n in g]
    return Redirect(op, target, fd), extra


def _heredoc_delimiter(text: str) -> str:
    """The delimiter bash looks for: the start word after quote removal."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            j = text.find("'", i + 1)
            j = len(text) if j < 0 else j
            out.append(text[i + 1 : j])
            i = j + 1
        elif ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in _DQ_ESCAPABLE:
                    j += 1
                out.append(text[j])
                j += 1
            i = j + 1
        elif ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _check_heredoc(ctx: _Ctx, node: Node, start: str, strip_tabs: bool) -> None:
    """Flag a here-document whose end the grammar placed where bash would not."""
    delimiter = _heredoc_delimiter(start)
    body = end = None
    for child in node.children:
        if child.type == "heredoc_body":
            body = ctx.text(child)
        elif child.type == "heredoc_end":
            end = ctx.text(child)
    lines = (body or "").split("\n")
    if strip_tabs:
        lines = [line.lstrip("\t") for line in lines]
        end = end.lstrip("\t") if end is not None else None
    if end != delimiter or delimiter in lines:
        ctx.flag(f"the here-document delimiter {start!r} may end elsewhere than the parser thinks")


# --------------------------------------------------------------------------- walking

_STRUCTURAL_SKIP = {"comment", "heredoc_start", "heredoc_end", "heredoc_content"}


def parse_parts(command: str) -> tuple[list[Part], list[Problem]]:
    """The simple commands of ``command`` as written (wrappers such as ``sudo`` or
    ``bash -c`` are not looked into here: see `wrappers`), and the problems found in the
    command as a whole."""
    problems: list[Problem] = []
    if len(command) > MAX_COMMAND_CHARS:
        return [], [
            Problem(ProblemKind.LIMIT, f"the command is longer than {MAX_COMMAND_CHARS} characters")
        ]
    problems.extend(_character_problems(command))
    problems.extend(_lexical_problems(command))
    src = command.encode("utf-8", "surrogatepass")
    tree = _parser().parse(_ascii_stand_in(command) if not command.isascii() else src)
    ctx = _Ctx(src)
    root = tree.root_node
    if root.has_error:
        problems.append(Problem(ProblemKind.SYNTAX, _describe_error(ctx, root)))
    else:
        problems.extend(_coverage_problems(ctx, root))
    _walk(ctx, root, (), False, 0)
    problems.extend(ctx.problems)
    return ctx.parts, list(dict.fromkeys(problems))


def _ascii_stand_in(command: str) -> bytes:
    """The command with every non-ASCII character replaced by as many ``x`` as its UTF-8
    bytes. Bash treats all of them as ordinary word characters, so the shape of the command
    is unchanged and byte offsets still index the original. It also keeps them away from
    the grammar's scanner, which crashes the process on some (``x{\\U000E0001``)."""
    return b"".join(
        ch.encode("ascii") if ch.isascii() else b"x" * len(ch.encode("utf-8", "surrogatepass"))
        for ch in command
    )


def _character_problems(command: str) -> list[Problem]:
    found: list[str] = []
    for ch in command:
        if ch in "\t\n":
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("Zl", "Zp") or (cat == "Zs" and ch != " "):
            found.append(ch)
    if not found:
        return []
    shown = ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(found))
    return [Problem(ProblemKind.CHARACTERS, f"contains control or invisible characters ({shown})")]


_CONTINUATION = re.compile(r"(?<!\\)((?:\\\\)*)\\\n")


def _lexical_problems(command: str) -> list[Problem]:
    out: list[Problem] = []
    for m in _CONTINUATION.finditer(command):
        before = command[m.start() - 1] if m.start() > 0 else " "
        if m.group(1):
            before = "\\"
        after = command[m.end()] if m.end() < len(command) else " "
        if not before.isspace() and not after.isspace():
            out.append(
                Problem(
                    ProblemKind.SYNTAX,
                    "a line continuation (backslash-newline) joins a word across lines",
                )
            )
            break
    return out


_COVERING = {
    "heredoc_body",
    "string",
    "raw_string",
    "ansi_c_string",
    "translated_string",
    "word",
    "comment",
    "regex",
    "extglob_pattern",
    "string_content",
    "heredoc_content",
}


def _coverage_problems(ctx: _Ctx, root: Node) -> list[Problem]:
    """Text the grammar silently skipped (seen: ``ls - 2>&1`` loses the ``-``)."""
    covered = bytearray(len(ctx.src))
    stack = [root]
    while stack:
        node = stack.pop()
        if node.child_count == 0 or node.type in _COVERING:
            covered[node.start_byte : node.end_byte] = b"\x01" * (node.end_byte - node.start_byte)
        else:
            stack.extend(node.children)
    src = ctx.src
    i = 0
    while i < len(src):
        if covered[i] or src[i] in b" \t\n":
            i += 1
        elif src[i : i + 2] == b"\\\n":
            i += 2
        else:
            j = i
            while j < len(src) and not covered[j] and src[j] not in b" \t\n":
                j += 1
            skipped = _decode(src[i:j])
            return [Problem(ProblemKind.SYNTAX, f"the parser skipped {skipped!r}; bash would not")]
    return []


def _describe_error(ctx: _Ctx, root: Node) -> str:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing:
            return f"bash syntax error: missing {node.type!r} at character {ctx.span(node)[0]}"
        if node.is_error:
            snippet = ctx.text(node)[:40]
            return f"bash syntax error near {snippet!r} at character {ctx.span(node)[0]}"
        stack.extend(reversed(node.children))
    return "bash syntax error"


def _walk(ctx: _Ctx, node: Node, redirects: tuple[Redirect, ...], piped: bool, depth: int) -> None:
    if depth > MAX_DEPTH:
        ctx.flag("the command is nested too deeply to analyse", ProblemKind.LIMIT)
        return
    kind = node.type
    if kind in _STRUCTURAL_SKIP:
        return
    if kind == "command":
        _command(ctx, node, redirects, piped, depth)
    elif kind == "redirected_statement":
        _redirected(ctx, node, redirects, piped, depth)
    elif kind in ("declaration_command", "unset_command"):
        _declaration(ctx, node, redirects, piped, depth)
    elif kind in ("variable_assignment", "variable_assignments"):
        _assignment(ctx, node, redirects, piped, depth)
    elif kind == "function_definition":
        _function(ctx, node, redirects, piped, depth)
    elif kind in _HEADERS or (kind == "compound_statement" and ctx.text(node).startswith("((")):
        _header(ctx, node, redirects, piped)
        for child in node.children:
            _walk(ctx, child, redirects, piped, depth + 1)
    elif kind == "pipeline":
        after_pipe = piped
        for child in node.children:
            if child.type in ("|", "|&"):
                after_pipe = True
                continue
            _walk(ctx, child, redirects, after_pipe, depth + 1)
    elif kind == "command_substitution":
        if ctx.text(node).startswith("`") and "\\" in ctx.text(node):
            ctx.flag("backslashes inside `backquotes` are re-read by bash; use $(…) instead")
        for child in node.children:
            _walk(ctx, child, (), piped, depth + 1)
    elif kind == "compound_statement" and ctx.text(node).startswith("{"):
        _check_braces(ctx, node)
        for child in node.children:
            _walk(ctx, child, redirects, piped, depth + 1)
    elif kind in _REDIRECT_TYPES:
        # commands after a here-document start (`cat <<EOF | sh`) sit inside the redirect
        for child in node.children:
            _walk(ctx, child, (), piped, depth + 1)
    else:
        for child in node.children:
            _walk(ctx, child, redirects, piped, depth + 1)


_HEADERS = {"for_statement", "c_style_for_statement", "test_command", "case_statement"}
_ARITH_TESTS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}


def _header(ctx: _Ctx, node: Node, redirects: tuple[Redirect, ...], piped: bool) -> None:
    """The part a compound command's header makes: ``for x in …`` assigns ``x``;
    ``[[ … ]]``, ``(( … ))``, ``case … in`` and ``for ((…))`` are evaluated by the shell."""
    kind = node.type
    if kind == "for_statement":
        var = next((c for c in node.children if c.type == "variable_name"), None)
        items: list[Node] = []
        started = False
        for c in node.children:
            if c.type == "in":
                started = True
            elif c.type in (";", "do_group", "\n") or c.type == "compound_statement":
                break
            elif started and c.type != "comment":
                items.append(c)
        words = [_word(ctx, g) for g in _group_adjacent(items)] if items else []
        name = ctx.text(var) if var is not None else ""
        value = " ".join(w.value for w in words) if items else '"$@"'
        static = bool(items) and all(w.static for w in words)
        end = items[-1].end_byte if items else (var.end_byte if var is not None else node.end_byte)
        text = _decode(ctx.src[node.start_byte : end])
        assign = Word(f"{name}={value}", f"{name}={value}", static)
        arith, indirect = _facts(ctx, items)
        part = Part(text, (), (assign,), redirects, kind="loop", piped=piped)
    else:
        if kind == "case_statement":
            body_start = next((c for c in node.children if c.type == "case_item"), None)
            end = body_start.start_byte if body_start is not None else node.end_byte
            subject = [c for c in node.children if c.is_named and c.type != "case_item"]
            arith, indirect = _facts(ctx, list(node.children))
        elif kind == "c_style_for_statement":
            body = next(
                (c for c in node.children if c.type in ("do_group", "compound_statement")), None
            )
            end = body.start_byte if body is not None else node.end_byte
            subject = []
            head = _decode(ctx.src[node.start_byte : end])
            arith, indirect = (head,), _facts(ctx, list(node.children))[1]
        elif kind == "compound_statement":  # (( … ))
            end = node.end_byte
            subject = []
            arith, indirect = (ctx.text(node),), _facts(ctx, list(node.children))[1]
        else:  # [[ … ]] or [ … ]
            end = node.end_byte
            subject = []
            arith, indirect = _facts(ctx, [node])
        del subject
        text = _decode(ctx.src[node.start_byte : end]).rstrip()
        part = Part(text, (), (), redirects, kind="test", piped=piped)
    _add(ctx, replace(part, span=ctx.span(node), arithmetic=arith, indirect=indirect))


def _facts(ctx: _Ctx, nodes: list[Node]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Arithmetic bash evaluates in ``nodes`` (``$((…))``, ``$[…]``, subscripts, substring
    offsets, ``[[ a -eq b ]]`` operands) and indirect expansions (``${!x}``), not looking
    into command substitutions (those are parts of their own)."""
    arith: list[str] = []
    indirect: list[str] = []
    # `[ a -eq b ]` (the builtin) compares integers; `[[ a -eq b ]]` evaluates arithmetic
    in_double_brackets = not any(
        n.type == "test_command" and not ctx.text(n).startswith("[[") for n in nodes
    )
    stack = list(reversed(nodes))
    while stack:
        n = stack.pop()
        kind = n.type
        if kind in ("command_substitution", "process_substitution"):
            if ctx.text(n).startswith("$(("):  # the grammar's reading of `$((…))` in a heredoc
                arith.append(ctx.text(n))
            continue
        if kind == "arithmetic_expansion":
            arith.append(ctx.text(n))
        elif kind == "subscript":
            index = n.child_by_field_name("index")
            text = ctx.text(index) if index is not None else ctx.text(n)
            if text not in ("@", "*"):
                arith.append(text)
        elif kind == "expansion":
            children = list(n.children)
            types = [c.type for c in children]
            listing = re.search(r"(\[[@*]\]|[@*])\}$", ctx.text(n)) is not None  # ${!a[@]}
            if (len(types) > 2 and types[1] == "!" and not listing) or ctx.text(n).endswith("@P}"):
                indirect.append(ctx.text(n))
            if ":" in types:
                i = types.index(":")
                rest = [c for c in children[i + 1 :] if c.type != "}"]
                if rest:
                    arith.append(_decode(ctx.src[rest[0].start_byte : rest[-1].end_byte]))
        elif kind in ("binary_expression", "unary_expression"):
            ops = [ctx.text(c) for c in n.children if c.type == "test_operator"]
            operands = [ctx.text(c) for c in n.children if c.is_named and c.type != "test_operator"]
            if any(op in _ARITH_TESTS for op in ops) and in_double_brackets:
                arith += operands
            elif "-v" in ops:  # `[[ -v a[i] ]]` evaluates the subscript
                arith += [t for t in operands if "[" in t]
        stack.extend(reversed(n.children))
    return tuple(arith), tuple(indirect)


def _check_braces(ctx: _Ctx, node: Node) -> None:
    """``{`` and ``}`` are reserved words in bash only as separate words: ``{}`` or
    ``{ls; }`` are not groups to bash, whatever the grammar says."""
    text = ctx.text(node)
    body = text[1:-1].rstrip(" \t")
    if (
        not text.endswith("}")
        or len(text) < 2
        or text[1] not in " \t\n"
        or (body and body[-1] not in ";&\n")
    ):
        ctx.flag(f"{text[:20]!r} is not a {{ …; }} group to bash")


def _nested_walk(ctx: _Ctx, nodes: list[Node], piped: bool, depth: int) -> None:
    """Find code inside words and redirections: substitutions run before the command."""
    for n in nodes:
        if depth > MAX_DEPTH:
            ctx.flag("the command is nested too deeply to analyse", ProblemKind.LIMIT)
            return
        if n.type in ("command_substitution", "process_substitution") or n.type in _REDIRECT_TYPES:
            _walk(ctx, n, (), piped, depth + 1)
        else:
            _nested_walk(ctx, list(n.children), piped, depth + 1)


def _command(
    ctx: _Ctx,
    node: Node,
    redirects: tuple[Redirect, ...],
    piped: bool,
    depth: int,
    extra: tuple[Node, ...] = (),
    whole: Node | None = None,
) -> None:
    """A simple command; ``extra`` are words found after a redirection of it (``echo > f x``)."""
    assignments: list[Word] = []
    args: list[Node] = []
    own: list[Redirect] = []
    name_node: Node | None = None
    for i, child in enumerate(node.children):
        fname = node.field_name_for_child(i)
        if fname == "name" or child.type == "command_name":
            name_node = child
        elif fname == "redirect" or child.type in _REDIRECT_TYPES:
            red, more = _redirect(ctx, child)
            own.append(red)
            args.extend(more)
        elif child.type == "variable_assignment" and name_node is None:
            assignments.append(_word(ctx, [child]))
        elif child.type == "comment":
            continue
        elif name_node is not None:
            args.append(child)
        else:
            ctx.flag(f"unexpected {child.type!r} before the command name")
    _nested_walk(ctx, list(node.children), piped, depth)
    word_nodes = ([name_node] if name_node is not None else []) + args
    words = tuple(_word(ctx, g) for g in _group_adjacent(word_nodes))
    words += tuple(_word(ctx, g) for g in _group_adjacent(list(extra)))
    kind = "command" if words else ("assignment" if assignments else "redirection")
    shown = whole if whole is not None else node
    arith, indirect = _facts(ctx, [shown, *extra])
    _add(
        ctx,
        Part(
            ctx.text(shown),
            words,
            tuple(assignments),
            tuple(own) + redirects,
            kind=kind,
            piped=piped,
            span=ctx.span(shown),
            arithmetic=arith,
            indirect=indirect,
        ),
    )


def _redirected(
    ctx: _Ctx, node: Node, redirects: tuple[Redirect, ...], piped: bool, depth: int
) -> None:
    body = node.child_by_field_name("body")
    own: list[Redirect] = []
    extra: list[Node] = []
    others: list[Node] = []
    for child in node.children:
        if child.type in _REDIRECT_TYPES:
            red, more = _redirect(ctx, child)
            own.append(red)
            extra.extend(more)
            others.append(child)
        elif body is None or child.id != body.id:
            others.append(child)
    _nested_walk(ctx, others, piped, depth)
    if body is None:
        words = tuple(_word(ctx, g) for g in _group_adjacent(extra))
        arith, indirect = _facts(ctx, [node])
        _add(
            ctx,
            Part(
                ctx.text(node),
                words,
                (),
                tuple(own) + redirects,
                kind="command" if words else "redirection",
                piped=piped,
                span=ctx.span(node),
                arithmetic=arith,
                indirect=indirect,
            ),
        )
    else:
        _with_tail(ctx, body, tuple(own), tuple(extra), redirects, piped, depth + 1, node)


def _with_tail(
    ctx: _Ctx,
    node: Node,
    tail: tuple[Redirect, ...],
    extra: tuple[Node, ...],
    redirects: tuple[Redirect, ...],
    piped: bool,
    depth: int,
    whole: Node | None,
) -> None:
    """Walk ``node`` where ``tail`` redirections were written after it.

    The grammar attaches ``a && b > f`` and ``a | b > f`` to the whole list or pipeline,
    but bash gives the redirection (and any words after it) to the last command only.
    """
    if depth > MAX_DEPTH:
        ctx.flag("the command is nested too deeply to analyse", ProblemKind.LIMIT)
        return
    kind = node.type
    if kind in ("list", "pipeline", "negated_command"):
        stmts = [c for c in node.children if c.is_named and c.type != "comment"]
        after_pipe = piped
        for child in node.children:
            if child.type in ("|", "|&"):
                after_pipe = True
                continue
            if not stmts or child.id != stmts[-1].id:
                _walk(ctx, child, redirects, after_pipe if kind == "pipeline" else piped, depth + 1)
        if stmts:
            last_piped = after_pipe if kind == "pipeline" else piped
            _with_tail(ctx, stmts[-1], tail, extra, redirects, last_piped, depth + 1, None)
    elif kind == "command":
        _command(ctx, node, tail + redirects, piped, depth + 1, extra, whole=whole)
    else:
        if extra:
            ctx.flag("words follow a redirection of a compound command")
        _walk(ctx, node, tail + redirects, piped, depth + 1)


def _declaration(
    ctx: _Ctx, node: Node, redirects: tuple[Redirect, ...], piped: bool, depth: int
) -> None:
    nodes = [c for c in node.children if c.type != "comment"]
    _nested_walk(ctx, nodes, piped, depth)
    words = tuple(_word(ctx, g) for g in _group_adjacent(nodes))
    arith, indirect = _facts(ctx, nodes)
    _add(
        ctx,
        Part(
            ctx.text(node),
            words,
            (),
            redirects,
            piped=piped,
            span=ctx.span(node),
            arithmetic=arith,
            indirect=indirect,
        ),
    )


def _assignment(
    ctx: _Ctx, node: Node, redirects: tuple[Redirect, ...], piped: bool, depth: int
) -> None:
    items = [node] if node.type == "variable_assignment" else list(node.named_children)
    _nested_walk(ctx, list(node.children), piped, depth)
    words = tuple(_word(ctx, [n]) for n in items if n.type == "variable_assignment")
    arith, indirect = _facts(ctx, [node])
    _add(
        ctx,
        Part(
            ctx.text(node),
            (),
            words,
            redirects,
            kind="assignment",
            piped=piped,
            span=ctx.span(node),
            arithmetic=arith,
            indirect=indirect,
        ),
    )


def _function(
    ctx: _Ctx, node: Node, redirects: tuple[Redirect, ...], piped: bool, depth: int
) -> None:
    name = node.child_by_field_name("name")
    word = _word(ctx, [name]) if name is not None else Word("", "", False)
    _add(
        ctx,
        Part(ctx.text(node), (word,), (), (), kind="function", piped=piped, span=ctx.span(node)),
    )
    # the body runs later, whenever the function is called: analyse it as if it ran now
    for child in node.children:
        if name is None or child.id != name.id:
            _walk(ctx, child, redirects, piped, depth + 1)


def _add(ctx: _Ctx, part: Part) -> None:
    ctx.parts.append(part)
