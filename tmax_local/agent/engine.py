"""llama.cpp backend (llama-cpp-python): one append-only token stream per conversation.

The stream is a list of token ids: the prompt's tokens, then the model's *own sampled ids*
(never a re-tokenization of its text), then each appended observation turn, and so on.
History is never re-rendered. Each ``generate`` evaluates only what is new — the last
sampled token of the previous reply (llama.cpp has sampled but not yet evaluated it) plus the
appended text — on top of the state llama.cpp already holds, via ``Llama.generate(new,
reset=False)``: with ``reset=False`` llama-cpp-python skips its own prefix matching and
simply evaluates the given tokens after ``n_tokens``, so the hybrid model's recurrent state
is never rolled back or rebuilt mid-task. (``reset=True`` would compare the whole history,
and for a hybrid model any divergence means a full re-prefill, because recurrent state
cannot be partially removed.) After every turn the engine checks that llama.cpp's evaluated
tokens are a prefix of its own stream.

Loading: memory-mapped GGUF, ``ctx`` ``harness.CONTEXT_TOKENS`` (65536) by default, all
layers on the GPU when the build supports offload (else CPU), physical-core threads, flash
attention (on by default, CPU included: a turn's cost grows less with history) and KV cache
types. Sampling: temperature / top_p as evaluated (``harness.TEMPERATURE`` /
``harness.TOP_P``), top_k and min_p off, optional GBNF grammar (tests use it to force a
valid tool call from a random tiny model).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmax_local.agent import harness
from tmax_local.agent.protocols import Generation, GenerationFinish
from tmax_local.errors import ModelNotFound, TmaxError

CACHE_TYPES = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "bf16": 30,
}


class ContextOverflow(TmaxError):
    title = "Context full"


def default_threads() -> int:
    import psutil

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def default_gpu_layers() -> int:
    import llama_cpp

    return -1 if llama_cpp.llama_supports_gpu_offload() else 0


@dataclass(frozen=True)
class EngineOptions:
    """How to load and sample. ``None`` means: pick the default described per field."""

    ctx: int = harness.CONTEXT_TOKENS
    gpu_layers: int | None = None  # None: all (-1) if the build can offload, else 0
    threads: int | None = None  # None: physical cores
    # None: on. Measured on CPU (2 threads, 2B Q4_K_M, bench/bench_flash_attn.py): a 470-token
    # turn after 12k of history costs 1.33x the same turn after 1k with flash attention,
    # 1.48x without (4.60 s vs 4.90 s at 12k; 3.45 s vs 3.32 s at 1k).
    flash_attn: bool | None = None
    cache_type_k: str | None = None  # f16 (llama.cpp default), f32, q8_0, ...
    cache_type_v: str | None = None
    use_mmap: bool = True
    n_batch: int = 512
    temperature: float = harness.TEMPERATURE
    top_p: float = harness.TOP_P
    seed: int | None = None
    grammar: str | None = None  # GBNF applied to every reply
    verbose: bool = False


def _cache_type(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return CACHE_TYPES[name.lower()]
    except KeyError:
        raise TmaxError(
            f"unknown KV cache type {name!r}; use one of {', '.join(CACHE_TYPES)}"
        ) from None


_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def load_progress(callback: Callable[[float], None] | None) -> Any:
    """Report model loading (0.0 … 1.0) through llama.cpp's own progress callback.

    llama-cpp-python's ``Llama`` takes no progress callback, but it builds its model
    parameters from ``llama_model_default_params()`` inside ``__init__``: for the duration
    of one load, that function returns parameters whose ``progress_callback`` calls
    ``callback`` (loads are serialised by a lock, so nothing else sees the change).
    """
    if callback is None:
        yield
        return
    from llama_cpp import llama_cpp as lib  # the module `Llama.__init__` calls it through

    original = lib.llama_model_default_params

    def report(progress: float, _user: Any) -> bool:
        with contextlib.suppress(Exception):  # never let a UI error abort the load
            callback(float(progress))
        return True

    c_report = lib.llama_progress_callback(report)

    def params_with_progress() -> Any:
        params = original()
        params.progress_callback = c_report
        return params

    with _LOAD_LOCK:
        lib.llama_model_default_params = params_with_progress
        try:
            yield
        finally:
            lib.llama_model_default_params = original


class LlamaEngine:
    """``ModelBackend`` on llama.cpp. ``stream`` holds the conversation's token ids."""

    def __init__(
        self,
        model_path: str | Path,
        options: EngineOptions = EngineOptions(),
        *,
        name: str | None = None,
        llama: Any | None = None,
        on_load_progress: Callable[[float], None] | None = None,
    ):
        self.model_path = Path(model_path)
        self.options = options
        self.name = name or self.model_path.name
        if llama is None:
            llama = self._load(on_load_progress)
        self.llm = llama
        self.context_limit = int(self.llm.n_ctx())
        self.stream: list[int] = []
        self.turn_log: list[dict[str, int]] = []  # per turn: evaluated, generated, context
        self._grammar = None
        if options.grammar:
            from llama_cpp import LlamaGrammar

            self._grammar = LlamaGrammar.from_string(options.grammar, verbose=False)
        self._im_end = self._single_token(harness.IM_END)

    def _load(self, on_progress: Callable[[float], None] | None = None) -> Any:
        if not self.model_path.is_file():
            raise ModelNotFound(f"model file not found: {self.model_path}")
        from llama_cpp import Llama

        o = self.options
        gpu_layers = default_gpu_layers() if o.gpu_layers is None else o.gpu_layers
        flash = True if o.flash_attn is None else o.flash_attn
        kwargs: dict[str, Any] = {
            "model_path": str(self.model_path),
            "n_ctx": o.ctx,
            "n_gpu_layers": gpu_layers,
            "n_threads": o.threads or default_threads(),
            "n_batch": o.n_batch,
            "n_ubatch": o.n_batch,
            "use_mmap": o.use_mmap,
            "flash_attn": flash,
            "verbose": o.verbose,
            "type_k": _cache_type(o.cache_type_k),
            "type_v": _cache_type(o.cache_type_v),
        }
        if o.seed is not None:
            kwargs["seed"] = o.seed
        try:
            with load_progress(on_progress):
                return Llama(**kwargs)
        except ValueError as err:  # llama-cpp-python reports load failures as ValueError
            raise TmaxError(f"llama.cpp could not load {self.model_path}: {err}") from None

    def _single_token(self, text: str) -> int:
        ids = self.tokenize(text)
        if len(ids) != 1:
            raise TmaxError(f"{text} is not a single token in this model's vocabulary")
        return ids[0]

    # --- ModelBackend -----------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    @property
    def context_used(self) -> int:
        return len(self.stream)

    @property
    def evaluated(self) -> int:
        """Tokens llama.cpp holds in its state (the stream minus the last sampled token)."""
        return int(self.llm.n_tokens)

    def reset(self) -> None:
        self.stream = []
        self.llm.reset()

    def generate(
        self,
        append: str,
        *,
        on_text: Callable[[str], None],
        cancel: threading.Event,
        max_tokens: int,
    ) -> Generation:
        from llama_cpp import llama_cpp as lib

        t0 = time.perf_counter()
        new = self.tokenize(append)
        held = self.evaluated
        if held > len(self.stream) or list(self.llm.input_ids[:held]) != self.stream[:held]:
            raise TmaxError("internal error: llama.cpp state diverged from the token stream")
        feed = self.stream[held:] + new
        room = self.context_limit - len(self.stream) - len(new)
        if room < 1:
            raise ContextOverflow(
                f"the next turn needs {len(new)} tokens but only "
                f"{self.context_limit - len(self.stream)} are left of {self.context_limit}"
            )
        self.stream.extend(new)
        budget = min(max_tokens, room)

        o = self.options
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text_parts: list[str] = []
        generated = 0
        finish: GenerationFinish = "length"
        t_first: float | None = None
        vocab = self.llm._model.vocab
        gen = self.llm.generate(
            feed,
            reset=False,
            temp=o.temperature,
            top_p=o.top_p,
            top_k=0,
            min_p=0.0,
            repeat_penalty=1.0,
            grammar=self._grammar,
        )
        try:
            for token in gen:
                if t_first is None:
                    t_first = time.perf_counter()
                self.stream.append(token)
                generated += 1
                if token == self._im_end or lib.llama_vocab_is_eog(vocab, token):
                    # Another end-of-generation token (e.g. <|endoftext|>) ends the turn too;
                    # it is not evaluated yet, so the stream records <|im_end|> in its place
                    # and the next turn continues in the trained format.
                    self.stream[-1] = self._im_end
                    finish = "stop"
                    break
                piece = decoder.decode(self.llm.detokenize([token], special=True))
                if piece:
                    text_parts.append(piece)
                    on_text(piece)
                if cancel.is_set():
                    finish = "cancelled"
                    break
                if generated >= budget:
                    break
        finally:
            with contextlib.suppress(Exception):
                gen.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            text_parts.append(tail)
            on_text(tail)
        t_end = time.perf_counter()
        t_first = t_first or t_end
        self.turn_log.append(
            {"evaluated": len(feed), "generated": generated, "context": len(self.stream)}
        )
        return Generation(
            text="".join(text_parts),
            finish=finish,
            tokens_evaluated=len(feed),
            tokens_generated=generated,
            prompt_seconds=t_first - t0,
            generation_seconds=t_end - t_first,
            time_to_first_token_s=t_first - t0,
            context_used=len(self.stream),
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()
