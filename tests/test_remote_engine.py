"""The remote engine against a real llama.cpp ``llama-server`` on 127.0.0.1.

The server is built from the llama.cpp sources vendored in the llama-cpp-python sdist
(``scripts/build_llama_server.sh``, cached) and serves a tiny random Qwen 3.5 model converted
by our converter. A GBNF grammar keeps the random model's replies well-formed. Faults are
real: the server process is killed mid-reply, nothing listens on the port, a forwarding
proxy in front of the server checks the API key or cuts a stream.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from engine_support import CALL_GRAMMAR, run_agent

from tmax_local.agent import events as ev
from tmax_local.agent import harness
from tmax_local.agent.engine import ContextOverflow
from tmax_local.agent.remote import (
    RemoteEngine,
    RemoteOptions,
    ServedModelNotFound,
    ServerAuthError,
    ServerUnreachable,
)
from tmax_local.errors import ConfigError
from tmax_local.testing.http_proxy import ForwardingProxy
from tmax_local.testing.llama_server import BuildFailed, LlamaServer, find_or_build, free_port

# Building llama-server the first time takes minutes (cached afterwards).
pytestmark = pytest.mark.timeout(3600)

GRAMMAR = {"grammar": CALL_GRAMMAR}
NEVER = threading.Event()


@pytest.fixture(scope="module")
def server_bin(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("build") / "build.log"
    # Building takes ~18 CPU-minutes (about 10 min on 2 idle cores): only when asked.
    build = os.environ.get("TMAX_BUILD_LLAMA_SERVER") == "1"
    try:
        return find_or_build(build=build, log=log)
    except BuildFailed as err:
        pytest.skip(
            f"llama-server unavailable ({err}); build it once with "
            "`bash scripts/build_llama_server.sh` or set TMAX_BUILD_LLAMA_SERVER=1"
        )


@pytest.fixture(scope="module")
def model(tiny_gguf) -> Path:
    pytest.importorskip("transformers")
    return tiny_gguf("F32")


@pytest.fixture(scope="module")
def server(server_bin, model, tmp_path_factory):
    log = tmp_path_factory.mktemp("srv") / "server.log"
    with LlamaServer(server_bin, model, ctx=4096, log=log) as srv:
        yield srv


def _engine(url: str, **kw) -> RemoteEngine:
    kw.setdefault("extra_body", GRAMMAR)
    kw.setdefault("seed", 7)
    return RemoteEngine(RemoteOptions(url, **kw))


def test_connect_reads_server_facts(server, model):
    eng = _engine(server.url)
    d = eng.describe()
    assert d["dialect"] == "llama.cpp" and d["prompt_mode"] == "tokens"
    assert d["tokenizer"] == "server" and d["context_limit"] == 4096 and d["context_reported"]
    assert eng.served_model == model.name or model.stem in eng.served_model
    assert eng.name == f"{eng.served_model} @ http://127.0.0.1:{server.port}"
    assert "token-id prompts" in eng.header()
    # The server's tokenizer is the harness's: the special tokens are single ids.
    assert eng.tokenize(harness.GENERATION_PROMPT)[:1] == [248045]


def test_turns_send_only_new_tokens_prefix_cache(server):
    """Turn N costs only its new tokens, by the server's own timings report."""
    eng = _engine(server.url)
    prompt = harness.render_prompt("Print a word.")
    pieces: list[str] = []
    g1 = eng.generate(prompt, on_text=pieces.append, cancel=NEVER, max_tokens=120)
    n_prompt = eng.count_tokens(prompt)
    assert g1.finish == "stop" and "".join(pieces) == g1.text
    assert "<tool_call>" in g1.text and g1.text.rstrip().endswith("</tool_call>")
    assert eng.stream[:n_prompt] == eng.tokenize(prompt)
    assert eng.stream[-1] == 248046  # the turn closed with <|im_end|>
    assert len(eng.stream) == n_prompt + g1.tokens_generated
    assert g1.tokens_evaluated == n_prompt and g1.tokens_cached == 0
    sampled = eng.stream[n_prompt:]
    for step in range(2):
        before = list(eng.stream)
        append = harness.tool_response_turn(f"word{step}\n\n(exit_code=0)")
        g = eng.generate(append, on_text=lambda s: None, cancel=NEVER, max_tokens=120)
        report = eng.turn_log[-1]
        n_new = eng.count_tokens(append)
        # The server took everything before from its cache except the previous reply's
        # tail: its closing <|im_end|> (sampled, never evaluated) and, with this
        # llama-server, the token before it (the slot ends one short: "stop processing:
        # n_tokens = prompt + reply - 2" in its log). So a turn costs its new tokens + 2.
        assert report.sent == len(before) + n_new
        assert g.tokens_cached + g.tokens_evaluated == report.sent, eng.turn_log
        assert n_new < g.tokens_evaluated <= n_new + 2, eng.turn_log
        assert eng.stream[: len(before)] == before  # append-only: history untouched
        assert eng.stream[n_prompt : n_prompt + len(sampled)] == sampled
        assert g.context_used == len(eng.stream)


def test_agent_run_end_to_end_through_server(server, tmp_path):
    """Real loop, real PTY shell, approvals local; the transcript holds every event."""
    from tmax_local.agent.transcript import load_records, stream_text

    eng = _engine(server.url)
    seen: list = []
    done = run_agent(eng, tmp_path, "Say a word.", seen.append, max_steps=3)
    assert done.reason == "step_limit" and done.steps == 3
    ran = [e for e in seen if isinstance(e, ev.CommandExecuted)]
    assert len(ran) == 3
    for e in ran:
        assert e.observation == f"{e.command.split(' ', 1)[1]}\n\n(exit_code=0)"
    stats = [e for e in seen if isinstance(e, ev.TurnStats)]
    assert stats[0].tokens_cached == 0
    for k in (1, 2):
        appended = harness.tool_response_turn(ran[k - 1].observation)
        n_new = eng.count_tokens(appended)
        assert n_new < stats[k].tokens_evaluated <= n_new + 2  # see the prefix-cache test
        assert stats[k].tokens_cached + stats[k].tokens_evaluated == (
            stats[k - 1].context_used + n_new
        )
        assert stats[k].context_limit == 4096
    records = load_records(tmp_path / "t.jsonl")
    kinds = [r["kind"] for r in records]
    assert len([k for k in kinds if k == "TurnStats"]) == 3
    assert {"SessionStarted", "StepStarted", "ReasoningDelta", "ToolCallProposed"} <= set(kinds)
    assert kinds[-1] == "AgentFinished"
    assert [r["tokens_cached"] for r in records if r["kind"] == "TurnStats"] == [
        s.tokens_cached for s in stats
    ]
    # The transcript rebuilds exactly what the server was sent.
    text, pending = stream_text(records)
    assert eng.text_stream == text
    assert pending == harness.tool_response_turn(ran[2].observation)


def test_cancel_closes_the_stream(server):
    eng = _engine(server.url, extra_body={})  # unconstrained: the random model rambles
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 3:
            cancel.set()

    t0 = time.perf_counter()
    g = eng.generate(harness.render_prompt("x"), on_text=on_text, cancel=cancel, max_tokens=3000)
    assert g.finish == "cancelled"
    assert time.perf_counter() - t0 < 30
    assert 3 <= g.tokens_generated < 200
    # The server noticed the client left and stopped: the next turn starts at once and
    # its cache still covers the conversation sent so far.
    g2 = eng.generate(
        harness.tool_response_turn("ok\n\n(exit_code=0)", model_closed_turn=False),
        on_text=lambda s: None,
        cancel=NEVER,
        max_tokens=5,
    )
    assert g2.tokens_generated <= 5
    assert eng.turn_log[-1].cached is not None and eng.turn_log[-1].cached > 0


def test_text_prompt_mode_also_works(server):
    eng = _engine(server.url, prompt_mode="text")
    assert "text prompts" in eng.header()
    g1 = eng.generate(
        harness.render_prompt("Print a word."), on_text=lambda s: None, cancel=NEVER, max_tokens=120
    )
    assert g1.finish == "stop" and "<tool_call>" in g1.text
    g2 = eng.generate(
        harness.tool_response_turn("w\n\n(exit_code=0)"),
        on_text=lambda s: None,
        cancel=NEVER,
        max_tokens=120,
    )
    assert g2.tokens_cached is not None and g2.tokens_cached > 0


def test_openai_dialect_on_v1_completions(server):
    """/v1/completions with a token-id prompt (what vLLM gets), cached count from usage."""
    eng = _engine(server.url, dialect="openai")
    assert eng.dialect == "openai" and eng.prompt_mode == "tokens"
    eng.generate(
        harness.render_prompt("Print a word."), on_text=lambda s: None, cancel=NEVER, max_tokens=120
    )
    g2 = eng.generate(
        harness.tool_response_turn("w\n\n(exit_code=0)"),
        on_text=lambda s: None,
        cancel=NEVER,
        max_tokens=120,
    )
    assert g2.tokens_cached is not None and g2.tokens_cached > 0


@pytest.fixture(scope="module")
def text_server(model, tmp_path_factory):
    """llama-cpp-python's own server (``llama_cpp.server``) on the tiny model."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] not installed")
    import subprocess
    import sys

    from tmax_local.agent.http_client import Endpoint, HttpClient

    port = free_port()
    log = (tmp_path_factory.mktemp("lcp") / "lcp.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    http = HttpClient(Endpoint.parse(f"http://127.0.0.1:{port}"))
    try:
        for _ in range(1200):
            try:
                http.request("GET", "/v1/models")
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_text_only_server_without_tokenize(text_server):
    """llama-cpp-python's server: text prompts only, no /tokenize, no context size.
    The engine falls back to text and to the local Qwen 3.5 tokenizer, checked against the
    server's own prompt-token count, and says so."""
    eng = RemoteEngine(RemoteOptions(text_server, fallback_context=2048))
    d = eng.describe()
    assert (d["dialect"], d["prompt_mode"], d["tokenizer"]) == ("openai", "text", "local Qwen 3.5")
    assert "text prompts" in eng.header() and "assumed" in eng.header()
    prompt = harness.render_prompt("Hi.")
    g = eng.generate(prompt, on_text=lambda s: None, cancel=NEVER, max_tokens=8)
    assert g.tokens_generated >= 1 and eng.text_stream.startswith(prompt)
    assert eng.stream[: eng.count_tokens(prompt)] == eng.tokenize(prompt)


def test_cli_run_against_a_server(text_server, tmp_path):
    """`tmax-local run --model URL` as a user runs it: header names the server, the run
    goes through it, the transcript is written locally."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, TMAX_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tmax_local",
            "run",
            "Say hi.",
            "--model",
            text_server,
            "--approve",
            "never-run",
            "--max-steps",
            "1",
            "--max-new-tokens",
            "8",
            "--json",
            str(tmp_path / "run.json"),
            "--cwd",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 1, out.stderr  # the step limit, not an error
    assert f"server {text_server.removesuffix('/v1')}" in out.stdout
    assert "text prompts" in out.stdout and "Traceback" not in out.stderr
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["finished"]["reason"] == "step_limit" and len(data["steps"]) == 1
    assert data["steps"][0]["stats"]["tokens_generated"] >= 1


def test_cli_missing_key_variable_is_one_line(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TMAX_NO_SUCH_KEY"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tmax_local",
            "run",
            "x",
            "--model",
            "http://127.0.0.1:9/v1",
            "--api-key-env",
            "TMAX_NO_SUCH_KEY",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "TMAX_NO_SUCH_KEY" in out.stderr and "not set" in out.stderr


# --- faults ---------------------------------------------------------------------------


def test_server_not_started():
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ServerUnreachable, match="cannot reach the model server at http://127"):
        RemoteEngine(RemoteOptions(url))
    assert time.perf_counter() - t0 < 5


def test_wrong_or_missing_key_is_refused_and_never_shown(server, monkeypatch):
    secret = "sk-right-key-123"
    with ForwardingProxy("127.0.0.1", server.port, require_key=secret) as proxy:
        monkeypatch.setenv("TMAX_TEST_KEY", "sk-wrong-key-456")
        with pytest.raises(ServerAuthError, match=r"HTTP 401.*TMAX_TEST_KEY") as info:
            _engine(proxy.url, api_key_env="TMAX_TEST_KEY")
        assert "sk-wrong" not in str(info.value)
        with pytest.raises(ServerAuthError, match="--api-key-env"):
            _engine(proxy.url)
        monkeypatch.setenv("TMAX_TEST_KEY", secret)
        eng = _engine(proxy.url, api_key_env="TMAX_TEST_KEY")
        g = eng.generate(
            harness.render_prompt("Hi."), on_text=lambda s: None, cancel=NEVER, max_tokens=60
        )
        assert g.finish == "stop"
        assert proxy.requests[-1][2]["Authorization"] == f"Bearer {secret}"
        assert secret not in repr(eng.describe()) + eng.header() + eng.name
    monkeypatch.delenv("TMAX_TEST_KEY")
    with pytest.raises(ConfigError, match=r"TMAX_TEST_KEY.*not set"):
        _engine(server.url, api_key_env="TMAX_TEST_KEY")


def test_unknown_served_model(server):
    with pytest.raises(ServedModelNotFound, match=r"does not serve 'tmax-99b'.*--served-model"):
        _engine(server.url, served_model="tmax-99b")


def test_connection_dropped_once_resumes_the_reply(server):
    with ForwardingProxy("127.0.0.1", server.port) as proxy:
        eng = _engine(proxy.url)
        proxy.cut_streams, proxy.cut_after_events = 1, 4
        prompt = harness.render_prompt("Print a word.")
        pieces: list[str] = []
        g = eng.generate(prompt, on_text=pieces.append, cancel=NEVER, max_tokens=120)
        assert eng.turn_log[-1].retried
        assert g.finish == "stop" and "".join(pieces) == g.text
        streamed = [b for m, p, h, b in proxy.requests if p == "/completion"]
        assert len(streamed) == 2
        n = eng.count_tokens(prompt)
        # The retry continued from the ids received: its prompt is the first's plus them.
        assert streamed[1]["prompt"][:n] == streamed[0]["prompt"] == eng.stream[:n]
        assert len(streamed[1]["prompt"]) > n
        assert eng.stream[: len(streamed[1]["prompt"])] == streamed[1]["prompt"]


def test_context_longer_than_the_server_allows(server):
    eng = _engine(server.url)
    long_text = "word " * 5000
    with pytest.raises(ContextOverflow, match="4096-token limit"):
        eng.generate(long_text, on_text=lambda s: None, cancel=NEVER, max_tokens=10)
    # Had we not known the limit, the server's own refusal names it.
    eng.context_limit = 1_000_000
    with pytest.raises(ContextOverflow, match="longer than the server allows"):
        eng.generate(long_text, on_text=lambda s: None, cancel=NEVER, max_tokens=10)
    assert eng.stream == []


def test_server_killed_mid_reply(server_bin, model, tmp_path):
    """A crash mid-reply: one retry, then a clear error; stream and transcript intact."""
    from tmax_local.agent.transcript import load_records, stream_text

    with LlamaServer(server_bin, model, ctx=4096, log=tmp_path / "s.log") as srv:
        eng = RemoteEngine(RemoteOptions(srv.url, seed=3))  # no grammar: long replies
        seen: list = []

        def on_event(e):
            seen.append(e)
            if isinstance(e, ev.ReasoningDelta) and len(seen) > 5:
                srv.kill()

        done = run_agent(eng, tmp_path, "Say a word.", on_event, max_steps=2, max_new_tokens=3000)
    assert done.reason == "error"
    assert "lost the connection" in done.message and "no longer answers" in done.message
    assert eng.stream == [] and eng.turn_log == []  # the failed turn left no trace
    records = load_records(tmp_path / "t.jsonl")
    assert records[-1]["kind"] == "AgentFinished"
    # Nothing is lost: the pending prompt is recorded, so the session can be resumed.
    text, pending = stream_text(records)
    assert text == "" and pending == harness.render_prompt("Say a word.")
    assert any(r["kind"] == "ReasoningDelta" for r in records)


def test_url_and_options_parsing(monkeypatch):
    from tmax_local.agent.http_client import Endpoint
    from tmax_local.agent.remote import is_remote_model

    e = Endpoint.parse("https://gpu-box:8443/v1/")
    assert (e.scheme, e.host, e.port, e.root) == ("https", "gpu-box", 8443, "")
    assert Endpoint.parse("http://h/proxy/v1").root == "/proxy"
    assert Endpoint.parse("http://h").port == 80
    assert is_remote_model("http://x:1") and is_remote_model("HTTPS://x")
    assert not is_remote_model("allenai/tmax-2b") and not is_remote_model(None)
    with pytest.raises(ConfigError, match="not an http"):
        RemoteEngine(RemoteOptions("ftp://x"), connect=False)
    o = RemoteOptions("http://x")
    assert (o.temperature, o.top_p) == (0.7, 0.95)
    assert os.environ.get("TMAX_NOPE") is None


def test_status_bar_names_the_server_and_cached_tokens():
    from tmax_local.tui.session import describe_engine
    from tmax_local.tui.status import StatusBar, StatusInfo

    eng = RemoteEngine(RemoteOptions("http://gpu-box:8000/v1"), connect=False)
    eng.served_model, eng.context_limit = "tmax-9b", 65536
    info = describe_engine(eng)
    assert (info.name, info.backend, info.context_limit) == (
        "tmax-9b",
        "remote gpu-box:8000",
        65536,
    )
    eng.prompt_mode = "text"
    assert describe_engine(eng).backend == "remote gpu-box:8000 · text prompts"
    bar = StatusBar(ram_probe=lambda: "")
    bar.info = StatusInfo(model=info.name, backend=info.backend, gen_tok_s=41.5, cached=20480)
    text = bar.render().plain
    assert "tmax-9b │ remote gpu-box:8000 │ 41.5 tok/s │ cached 20k" in text


def test_key_still_readable_after_the_app_withholds_it(monkeypatch):
    """The app removes secret-looking variables from its environment before loading the
    model (tui.launch → protect_process); the key stays readable by the engine."""
    from tmax_local.shell import secrets

    monkeypatch.setitem(secrets._kept, "TMAX_TEST_SRV_KEY", "sk-kept")
    monkeypatch.delenv("TMAX_TEST_SRV_KEY", raising=False)
    assert RemoteOptions("http://x", api_key_env="TMAX_TEST_SRV_KEY").api_key() == "sk-kept"
