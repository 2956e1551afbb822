"""The converted tokenizer and chat template.

llama.cpp's tokenizer reading our GGUF must split text exactly like the HF tokenizer
of the checkpoint (the real Qwen 3.5 vocabulary), and the chat template embedded in
the GGUF must render the harness's turns exactly as `tmax_local.agent.harness` frames them.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_cpp")
tokenizers = pytest.importorskip("tokenizers")

TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog. It's 2026; don't panic!",
    "code": "def f(x):\n\tif x  >  1:\n\t\treturn [i ** 2 for i in range(x)]  # comment\n\n\n    pass\r\n",
    "shell": "ls -la /tmp && grep -rn 'TODO' src/ | head -n 20 > out.txt 2>&1",
    "chinese": "你好，世界！今天天气很好，我们去公园散步吧。",
    "emoji": "Deploy 🚀 done ✅ — 👩‍💻 and 🇯🇵 flags, café naïve",
    "numbers": "3.14159 1234567890 0x1F 1e-6",
    "special": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\nok</think>\n"
    "<tool_call>\n<function=bash>\n</tool_call><|endoftext|>",
    "whitespace": "a\n\nb   c\t\td \n \n  e",
}


@pytest.fixture(scope="module")
def vocab_llama(tiny_gguf):
    import llama_cpp

    llm = llama_cpp.Llama(
        str(tiny_gguf("F32", naming="causal", linear_k_heads=2, linear_v_heads=4)),
        vocab_only=True,
        verbose=False,
    )
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_checkpoint):
    ckpt = tiny_checkpoint(naming="causal", linear_k_heads=2, linear_v_heads=4)
    return tokenizers.Tokenizer.from_file(str(ckpt / "tokenizer.json"))


@pytest.mark.parametrize("kind", list(TEXTS))
def test_llama_cpp_tokenizes_like_hf(vocab_llama, hf_tokenizer, kind):
    text = TEXTS[kind]
    ours = vocab_llama.tokenize(text.encode(), add_bos=False, special=True)
    theirs = hf_tokenizer.encode(text, add_special_tokens=False).ids
    assert ours == theirs
    assert vocab_llama.detokenize(ours, special=True).decode() == text


def test_special_token_ids(vocab_llama):
    ids = {
        "<|endoftext|>": 248044,
        "<|im_start|>": 248045,
        "<|im_end|>": 248046,
        "<tool_call>": 248058,
        "</tool_call>": 248059,
        "<tool_response>": 248066,
        "</tool_response>": 248067,
        "<think>": 248068,
        "</think>": 248069,
    }
    for text, tid in ids.items():
        assert vocab_llama.tokenize(text.encode(), add_bos=False, special=True) == [tid], text
    assert vocab_llama.token_eos() == 248046


TOOL = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Execute a bash command in a persistent shell.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}
INSTRUCTIONS = (
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
    "</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
    "that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\n"
    "Reminder:\n- Function calls MUST follow the specified format: an inner <function=...>"
    "</function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your "
    "function call in natural language BEFORE the function call, but NOT after\n- If there is no "
    "function call available, answer the question like normal with your current knowledge and do "
    "not tell the user about function calls\n</IMPORTANT>"
)


def _render(template: str, **ctx) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise ValueError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(**ctx)


def test_embedded_chat_template_renders_harness_turns(tiny_gguf):
    import gguf

    reader = gguf.GGUFReader(
        str(tiny_gguf("F32", naming="causal", linear_k_heads=2, linear_v_heads=4))
    )
    template = reader.get_field("tokenizer.chat_template").contents()
    command = "ls -la /tmp\ncat 'a b.txt' | wc -l"
    messages = [
        {"role": "system", "content": "You are a terminal agent."},
        {"role": "user", "content": "Count the lines."},
        {
            "role": "assistant",
            "content": "Listing first.",
            "tool_calls": [{"function": {"name": "bash", "arguments": {"command": command}}}],
        },
        {"role": "tool", "content": "3\n\n(exit_code=0)"},
    ]
    out = _render(template, messages=messages, tools=[TOOL], add_generation_prompt=True)
    expected = (
        "<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n"
        + json.dumps(TOOL, ensure_ascii=False)
        + "\n</tools>"
        + INSTRUCTIONS
        + "\n\nYou are a terminal agent.<|im_end|>\n"
        "<|im_start|>user\nCount the lines.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nListing first.\n\n"
        "<tool_call>\n<function=bash>\n<parameter=command>\n"
        + command
        + "\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n3\n\n(exit_code=0)\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )
    assert out == expected

    # llama-cpp-python's own Jinja formatter renders the same prompt from the same metadata
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    fmt = Jinja2ChatFormatter(template=template, eos_token="<|im_end|>", bos_token="")
    assert fmt(messages=messages, tools=[TOOL]).prompt == expected
