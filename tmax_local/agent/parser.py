"""Turn the model's streamed text into an action.

TMax replies with prose (its reasoning; it rarely closes ``<think>`` with ``</think>``) and
then one or more tool calls in Qwen's XML form::

    <tool_call>
    <function=bash>
    <parameter=command>
    ls -la
    </parameter>
    </function>
    </tool_call>

Parameter values are raw text (no JSON): the command is everything between
``<parameter=command>`` and its ``</parameter>``, minus exactly the one newline the format puts
after the opening tag and the one before the closing tag. Heredocs and blank lines are kept.

``ReplyParser`` is fed the text as it streams (``feed``), tells a UI whether the stream is
inside a tool call, notices ``<|im_end|>`` (everything after it is dropped) and gives the
verdict with ``finish()``: the first bash call is the action, later ones are reported as
ignored (the trained-on harness ran only the first), and a reply without a well-formed bash
call yields the harness's format-error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tmax_local.agent import harness

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
THINK_CLOSE = "</think>"

_FUNCTION_OPEN = re.compile(r"<function=([^>\n]+)>")
_PARAM_OPEN = re.compile(r"<parameter=([^>\n]+)>")
# A parameter value ends at a </parameter> that is followed by the next parameter or the
# end of the function, so a command that merely mentions "</parameter>" survives.
_PARAM_END = re.compile(r"</parameter>(?=\s*(?:<parameter=|</function>))")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, str]

    @property
    def command(self) -> str | None:
        return self.arguments.get("command")


@dataclass(frozen=True)
class ParsedReply:
    """The parser's verdict on one reply."""

    text: str  # the reply up to (not including) <|im_end|>
    reasoning: str  # prose before the first tool call (with any </think> removed)
    calls: list[ToolCall] = field(default_factory=list)  # well-formed calls, in order
    malformed: int = 0  # <tool_call> blocks that could not be read
    error: str | None = None  # format-error observation when there is no usable call

    @property
    def command(self) -> str | None:
        """The command to run: the first call's, if it is a bash call."""
        if self.error is not None or not self.calls:
            return None
        return self.calls[0].command

    @property
    def ignored(self) -> list[str]:
        """Commands (or descriptions) of the calls after the first: never run."""
        out = []
        for call in self.calls[1:]:
            out.append(call.command if call.command is not None else f"<{call.name} call>")
        return out


def _strip_one_newline(value: str) -> str:
    value = value.removeprefix("\n")
    value = value.removesuffix("\n")
    return value


def _parse_call(block: str) -> ToolCall | None:
    """One ``<tool_call>`` body (between the tags); None when malformed."""
    m = _FUNCTION_OPEN.search(block)
    if m is None or block[: m.start()].strip():
        return None
    name = m.group(1).strip()
    end_fn = block.rfind("</function>")
    if end_fn < m.end():
        return None
    body = block[m.end() : end_fn]
    args: dict[str, str] = {}
    pos = 0
    while True:
        p = _PARAM_OPEN.search(body, pos)
        if p is None:
            if body[pos:].strip():
                return None
            break
        if body[pos : p.start()].strip():
            return None
        e = _PARAM_END.search(body + "</function>", p.end())
        if e is None:
            return None
        args[p.group(1).strip()] = _strip_one_newline(body[p.end() : e.start()])
        pos = e.end()
    return ToolCall(name=name, arguments=args)


def parse_reply(text: str) -> ParsedReply:
    """Parse a complete reply (the text the model produced after ``<think>\\n``)."""
    end = text.find(harness.IM_END)
    if end != -1:
        text = text[:end]
    first = text.find(TOOL_CALL_OPEN)
    prose = text if first == -1 else text[:first]
    reasoning = prose.replace(THINK_CLOSE, "").strip()

    calls: list[ToolCall] = []
    malformed = 0
    pos = first
    while pos != -1:
        start = pos + len(TOOL_CALL_OPEN)
        close = text.find(TOOL_CALL_CLOSE, start)
        nxt = text.find(TOOL_CALL_OPEN, start)
        if close == -1 or (nxt != -1 and nxt < close):
            # Unclosed block: acceptable only as the very end of the reply.
            block_end = nxt if nxt != -1 else len(text)
            call = _parse_call(text[start:block_end]) if nxt == -1 else None
            pos = nxt
        else:
            call = _parse_call(text[start:close])
            pos = text.find(TOOL_CALL_OPEN, close + len(TOOL_CALL_CLOSE))
        if call is None:
            malformed += 1
        else:
            calls.append(call)

    error = None
    if not calls:
        error = harness.format_error()
    elif calls[0].name != "bash":
        error = harness.format_error(
            f"Unknown tool '{calls[0].name}'. The only available tool is `bash`."
        )
    elif not calls[0].command:
        error = harness.format_error("'command' parameter is required.")
    return ParsedReply(
        text=text, reasoning=reasoning, calls=calls, malformed=malformed, error=error
    )


class ReplyParser:
    """Incremental front end over a streamed reply.

    ``feed(delta)`` returns the part of ``delta`` that belongs to the reply (text after
    ``<|im_end|>`` is cut); ``in_tool_call`` says whether the stream is currently inside a
    ``<tool_call>`` block (a UI may render that part as the proposed command);
    ``ended`` turns true once ``<|im_end|>`` has been seen.
    """

    def __init__(self) -> None:
        self._text = ""
        self.ended = False

    @property
    def text(self) -> str:
        return self._text

    def feed(self, delta: str) -> str:
        if self.ended:
            return ""
        joined = self._text + delta
        end = joined.find(harness.IM_END, max(0, len(self._text) - len(harness.IM_END)))
        if end != -1:
            self.ended = True
            joined = joined[:end]
        kept = joined[len(self._text) :]
        self._text = joined
        return kept

    @property
    def in_tool_call(self) -> bool:
        return self._text.rfind(TOOL_CALL_OPEN) > self._text.rfind(TOOL_CALL_CLOSE)

    def finish(self) -> ParsedReply:
        return parse_reply(self._text)


def render_tool_calls(calls: list[tuple[str, dict[str, str]]], content: str = "") -> str:
    """The raw text of a reply with these calls, as the Qwen 3.5 template writes an assistant
    turn (used by tests and the scripted model's helpers)."""
    out = content.strip()
    for i, (name, args) in enumerate(calls):
        if i == 0:
            out += "\n\n" if out else ""
        else:
            out += "\n"
        out += f"<tool_call>\n<function={name}>\n"
        for key, value in args.items():
            out += f"<parameter={key}>\n{value}\n</parameter>\n"
        out += "</function>\n</tool_call>"
    return out


def bash_reply(command: str, thought: str = "") -> str:
    """A well-formed reply proposing ``command`` (what the model emits before <|im_end|>)."""
    return render_tool_calls([("bash", {"command": command})], thought)
