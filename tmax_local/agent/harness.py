"""The Vanillux harness TMax was trained and evaluated with, as exact text.

Sources (see ``data/CREDITS.txt``): the system prompt and ``vanillux_prompts.yaml`` come from
the TMax repository (hamishivi/tmax, Apache-2.0; the YAML is adapted from mini-swe-agent,
MIT). The bash tool wording, the observation layout (stdout, then stderr on a new line;
``(no output)``; head/tail truncation; ``\\n\\n(exit_code=N)``), the format-error message and
the token-stream framing follow open-instruct's ``swerl_vanillux_sandbox`` environment and its
``vllm_qwen3_xml`` parser config as used for TMax's RL (hamishivi/open-instruct):

- the model's own reply ends with its sampled ``<|im_end|>`` token, and the observation is
  appended right after it, with no newline in between:
  ``<|im_start|>user\\n<tool_response>\\n{obs}\\n</tool_response>\\n<|im_end|>\\n``
  followed by the generation prompt ``<|im_start|>assistant\\n<think>\\n``;
- the initial prompt is the Qwen 3.5 chat template's rendering of [system, user] with the
  bash tool (``render_prompt``; a test checks it against the jinja template itself).

A timed-out command reports ``exit_code=124`` (what the trained-on harness showed the model
when ``timeout`` killed a command). Every limit is a field of ``HarnessConfig``; the
numbers TMax was evaluated with are the constants below, the one place they are written
(the engine, the options and the app import them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

SUBMIT_MARKER = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
GENERATION_PROMPT = "<|im_start|>assistant\n<think>\n"

BASH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": (
            "Execute a bash command in a persistent shell. "
            "Working directory and environment variables are preserved between calls."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command to execute."}
            },
            "required": ["command"],
        },
    },
}

# The Qwen 3.5 template's calling instructions, placed after </tools> in the system turn.
XML_CALL_INSTRUCTIONS = (
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
    "</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
    "that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\n"
    "Reminder:\n- Function calls MUST follow the specified format: an inner <function=...>"
    "</function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your "
    "function call in natural language BEFORE the function call, but NOT after\n- If there is "
    "no function call available, answer the question like normal with your current knowledge "
    "and do not tell the user about function calls\n</IMPORTANT>"
)

# TMax's evaluation settings (the Vanillux harness and its vLLM sampling parameters).
CONTEXT_TOKENS = 65536
"""Context window the model was run with (``--ctx``)."""
MAX_NEW_TOKENS = 16384
"""New tokens the model may sample in one turn (``--max-new-tokens``)."""
MAX_STEPS = 64
"""Model turns before a run stops (``step_limit``; ``--max-steps``)."""
COMMAND_TIMEOUT_S = 120.0
"""Seconds a command may run before it is interrupted, reported as exit 124 (``--timeout``)."""
TEMPERATURE = 0.7
"""Sampling temperature (``--temperature``)."""
TOP_P = 0.95
"""Nucleus sampling top-p (``--top-p``)."""

FORMAT_ERROR_NO_CALL = "Your last response did not include a valid `bash` tool call."


@dataclass(frozen=True)
class HarnessConfig:
    """Limits of the harness; the defaults are TMax's evaluation settings."""

    max_steps: int = MAX_STEPS
    """Model turns before the run stops (``step_limit``)."""
    timeout: float = COMMAND_TIMEOUT_S
    """Seconds a command may run before it is interrupted (reported as exit code 124)."""
    max_new_tokens: int = MAX_NEW_TOKENS
    """New tokens the model may sample in one turn (sampling itself: ``EngineOptions``)."""
    observation_max_chars: int = 10000
    observation_head_chars: int = 5000
    observation_tail_chars: int = 5000


@dataclass(frozen=True)
class Prompts:
    system: str
    instance_template: str
    format_error_template: str
    too_long_hint: str


def _data_text(name: str) -> str:
    return resources.files("tmax_local.agent").joinpath("data", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def prompts() -> Prompts:
    """The shipped prompt texts (read on first use, never at import)."""
    import yaml

    doc = yaml.safe_load(_data_text("vanillux_prompts.yaml"))
    return Prompts(
        system=_data_text("system_prompt.txt"),
        instance_template=doc["instance_template"],
        format_error_template=doc["format_error_template"],
        too_long_hint=doc["observation"]["too_long_hint"],
    )


def chat_template_source() -> str:
    """Qwen 3.5's chat template (as shipped with llama.cpp), for checks and the naive baseline."""
    return _data_text("qwen3_5_chat_template.jinja")


def render_instance(task: str) -> str:
    """The first user message: the instance template with the task substituted literally."""
    return prompts().instance_template.replace("{{task}}", task.strip())


def tool_json(tool: dict[str, Any]) -> str:
    """A tool as the Hugging Face template's ``tojson`` writes it (key order kept, UTF-8)."""
    return json.dumps(tool, ensure_ascii=False)


def render_system_turn(system_prompt: str | None = None) -> str:
    system = (prompts().system if system_prompt is None else system_prompt).strip()
    text = (
        f"{IM_START}system\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n"
        f"{tool_json(BASH_TOOL)}\n</tools>{XML_CALL_INSTRUCTIONS}"
    )
    if system:
        text += "\n\n" + system
    return text + f"{IM_END}\n"


def render_prompt(task: str, system_prompt: str | None = None) -> str:
    """The whole first prompt: system turn with the bash tool, the instance, the generation
    prompt. Equal to the Qwen 3.5 template's rendering of [system, user] with
    ``add_generation_prompt=True``."""
    user = render_instance(task).strip()
    return (
        render_system_turn(system_prompt) + f"{IM_START}user\n{user}{IM_END}\n" + GENERATION_PROMPT
    )


def _close_reply(model_closed_turn: bool) -> str:
    # The model's own <|im_end|> is already in the stream when it ended its turn itself;
    # a reply cut by the token limit (or by the user) is closed for it.
    return "" if model_closed_turn else IM_END


def tool_response_turn(
    observation: str, *, model_closed_turn: bool = True, instruction: str | None = None
) -> str:
    """What is appended after the model's reply when a command ran (or was rejected).

    ``instruction`` (a follow-up the user typed while the agent worked) becomes its own user
    turn right after the tool response, before the next generation prompt.
    """
    text = (
        _close_reply(model_closed_turn)
        + f"{IM_START}user\n<tool_response>\n{observation}\n</tool_response>\n{IM_END}\n"
    )
    if instruction:
        text += user_turn(instruction)
    return text + GENERATION_PROMPT


def user_turn(message: str) -> str:
    return f"{IM_START}user\n{message.strip()}{IM_END}\n"


def user_message_turn(
    message: str, *, model_closed_turn: bool = True, instruction: str | None = None
) -> str:
    """What is appended after a reply with no usable tool call: the format error as a user
    message (as the evaluation harness sent it), then the generation prompt."""
    text = _close_reply(model_closed_turn) + user_turn(message)
    if instruction:
        text += user_turn(instruction)
    return text + GENERATION_PROMPT


def format_error(error: str = FORMAT_ERROR_NO_CALL) -> str:
    return prompts().format_error_template.replace("{{error}}", error).strip()


def truncate_output(
    output: str, config: HarnessConfig = HarnessConfig(), *, dropped: int = 0
) -> str:
    """mini-swe-agent's head/tail cut with the too-long hint, for outputs over the limit.

    ``dropped`` counts characters already removed from the middle of ``output`` upstream
    (the shell caps what it keeps); they count as elided."""
    if len(output) + dropped <= config.observation_max_chars:
        return output
    head, tail = config.observation_head_chars, config.observation_tail_chars
    elided = len(output) + dropped - head - tail
    return (
        f"{prompts().too_long_hint}\n\n"
        f"---- HEAD ({head} chars) ----\n{output[:head]}\n"
        f"---- {elided} chars elided ----\n"
        f"---- TAIL ({tail} chars) ----\n{output[len(output) - tail :]}"
    )


def format_observation(
    output: str,
    exit_code: int | None,
    *,
    stderr: str = "",
    config: HarnessConfig = HarnessConfig(),
    dropped: int = 0,
) -> str:
    """The text the model reads after a command.

    ``output`` is stdout (our PTY merges stderr into it, so ``stderr`` is usually empty);
    a separate ``stderr`` follows on a new line, as in the trained-on harness. Trailing
    whitespace is removed; an output that is empty then reads ``(no output)``.
    """
    text = output
    if stderr:
        text = f"{text}\n{stderr}" if text else stderr
    # Trailing whitespace is dropped: none of the 1,676 recorded observations of the
    # evaluation harness ends with a newline or space (leading whitespace was kept).
    text = text.rstrip()
    body = truncate_output(text, config, dropped=dropped) if text else "(no output)"
    return f"{body}\n\n(exit_code={exit_code if exit_code is not None else -1})"


def is_submission(command: str) -> bool:
    """True when the command is just the submit command (nothing else to run)."""
    words = command.strip().rstrip(";").split()
    return len(words) == 2 and words[0] == "echo" and words[1].strip("'\"") == SUBMIT_MARKER
