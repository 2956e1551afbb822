"""Open a Hugging Face checkpoint directory: config, tokenizer files, tensor index.

Nothing here reads tensor data; it only gathers headers and validates what is
there so that errors surface before a single byte of output is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmax_local.convert.safetensors_io import TensorRef, read_header
from tmax_local.errors import ConversionError

SUPPORTED_ARCHITECTURES = ("Qwen3_5ForConditionalGeneration", "Qwen3_5ForCausalLM")


@dataclass
class Checkpoint:
    path: Path
    config: dict[str, Any]  # the whole config.json
    text: dict[str, Any]  # text hyper-parameters (text_config for the multimodal form)
    architecture: str
    tensors: dict[str, TensorRef]  # ALL tensors, original names
    tokenizer_json: Path
    tokenizer_config: dict[str, Any] = field(default_factory=dict)
    chat_template: str | None = None

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def source_dtype(self) -> str:
        kinds = {t.dtype for t in self.tensors.values()}
        for d in ("BF16", "F16", "F32"):
            if d in kinds:
                return d
        return "F32"


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f"{what} is not valid JSON ({path}: {err})") from None
    except OSError as err:
        raise ConversionError(f"cannot read {path}: {err.strerror or err}") from None


def load_config(path: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Return (config, text hyper-parameters, architecture name)."""
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ConversionError(f"no config.json in {path}: not a Hugging Face checkpoint directory")
    config = _load_json(cfg_path, "config.json")
    if not isinstance(config, dict):
        raise ConversionError(f"config.json in {path} is not a JSON object")
    archs = config.get("architectures") or []
    if not isinstance(archs, list) or not archs:
        raise ConversionError(
            "config.json has no 'architectures' entry; cannot tell the model type"
        )
    arch = str(archs[0])
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ConversionError(
            f"unsupported architecture {arch!r}: tmax-local converts Qwen 3.5 / TMax models "
            f"({', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    text = config.get("text_config") if arch == "Qwen3_5ForConditionalGeneration" else config
    if not isinstance(text, dict):
        raise ConversionError(
            "config.json: Qwen3_5ForConditionalGeneration needs a 'text_config' object"
        )
    text = dict(text)
    # tie_word_embeddings lives at the top level of the multimodal config
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in config:
        text["tie_word_embeddings"] = config["tie_word_embeddings"]
    return config, text, arch


def _tensor_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        data = _load_json(index, "model.safetensors.index.json")
        try:
            names = sorted(set(data["weight_map"].values()))
        except (KeyError, TypeError, AttributeError):
            raise ConversionError(
                "model.safetensors.index.json has no valid 'weight_map'"
            ) from None
        files = [path / n for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ConversionError(f"checkpoint shard missing: {missing[0]} (listed in the index)")
        return files
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    others = sorted(path.glob("*.safetensors"))
    if others:
        return others
    raise ConversionError(f"no *.safetensors weights in {path}")


def open_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    if not path.is_dir():
        raise ConversionError(f"checkpoint directory not found: {path}")
    config, text, arch = load_config(path)

    tok_json = path / "tokenizer.json"
    if not tok_json.is_file():
        raise ConversionError(
            f"tokenizer.json missing in {path}: the GGUF needs the model's tokenizer"
        )
    tok_cfg_path = path / "tokenizer_config.json"
    if not tok_cfg_path.is_file():
        raise ConversionError(f"tokenizer_config.json missing in {path}")
    tok_cfg = _load_json(tok_cfg_path, "tokenizer_config.json")
    template = tok_cfg.get("chat_template") if isinstance(tok_cfg, dict) else None
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    elif isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)

    tensors: dict[str, TensorRef] = {}
    for f in _tensor_files(path):
        tensors.update(read_header(f))
    return Checkpoint(
        path=path,
        config=config,
        text=text,
        architecture=arch,
        tensors=tensors,
        tokenizer_json=tok_json,
        tokenizer_config=tok_cfg if isinstance(tok_cfg, dict) else {},
        chat_template=template if isinstance(template, str) else None,
    )
