"""A tiny Qwen 3.5 checkpoint with learned structure, for quantization-quality tests.

Random weights make every input column equally important, so they cannot show what an
importance matrix is for. This trains the tiny hybrid model (hidden 256, 4 layers, K≠V linear
attention heads) briefly on tmax-2b's calibration trajectories (the rollout text), on CPU.

The output head is untied so the full 248k-token softmax stays exact yet cheap to train:
the ``head_tokens`` most frequent tokens of the training text get their own learned output
rows, and all the others share one learned row (their logits are equal, so the softmax mass
over them is ``logit_rest + log(n_rest)``). The result is written as an ordinary float32
checkpoint.

Built once per recipe and cached under ``<repo>/.cache/trained-tiny/<key>`` (gitignored; set
``TMAX_TEST_CACHE`` to move it): the key hashes the recipe and the training text, so a changed
recipe retrains.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RECIPE: dict[str, Any] = {
    "version": 2,
    "hidden_size": 256,
    "num_layers": 4,
    "linear_k_heads": 2,
    "linear_v_heads": 4,
    "seq_len": 128,
    "batch": 4,
    "steps": 60,
    "head_tokens": 8192,
    "lr": 3e-3,
    "seed": 0,
    "threads": 2,
}


def cache_root() -> Path:
    env = os.environ.get("TMAX_TEST_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / ".cache"


def recipe_key(recipe: dict[str, Any] = RECIPE) -> str:
    from tmax_local.convert.calibration import documents_digest, trajectory_documents

    h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    h.update(documents_digest(trajectory_documents("calibration")).encode())
    return h.hexdigest()[:16]


def trained_tiny_checkpoint(recipe: dict[str, Any] = RECIPE, *, log: bool = False) -> Path:
    """The cached trained checkpoint directory (trains it first when missing)."""
    dest = cache_root() / "trained-tiny" / recipe_key(recipe)
    if (dest / "training.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
    try:
        _train(tmp, recipe, log=log)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process finished first
            if not (dest / "training.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _train(out: Path, r: dict[str, Any], *, log: bool) -> None:
    import torch
    from tokenizers import Tokenizer

    from tmax_local.convert.calibration import trajectory_documents
    from tmax_local.testing.checkpoints import (
        _write_checkpoint,
        load_reference_model,
        make_tiny_checkpoint,
        write_tokenizer,
    )

    torch.set_num_threads(int(r["threads"]))
    base = make_tiny_checkpoint(
        out / "base",
        hidden_size=r["hidden_size"],
        num_layers=r["num_layers"],
        linear_k_heads=r["linear_k_heads"],
        linear_v_heads=r["linear_v_heads"],
        dtype="float32",
        untied=True,
        seed=r["seed"],
    )
    config = json.loads((base / "config.json").read_text())
    model = load_reference_model(base).train()
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    ids = np.concatenate(
        [
            np.asarray(tok.encode(d.text, add_special_tokens=False).ids, np.int64)
            for d in trajectory_documents("calibration")
        ]
    )
    vocab = model.lm_head.weight.shape[0]
    freq = np.bincount(ids, minlength=vocab)
    used = np.sort(np.argsort(-freq, kind="stable")[: int(r["head_tokens"])])
    n_rest = vocab - len(used)
    remap = np.full(vocab, len(used), np.int64)  # every other token: the shared "rest" row
    remap[used] = np.arange(len(used))
    used_t = torch.from_numpy(used)
    head = torch.nn.Parameter(model.lm_head.weight.detach()[used_t].clone() * 0.1)
    rest = torch.nn.Parameter(torch.zeros(model.config.hidden_size))
    # The input embedding stays at its random init (a dense 248k-row gradient and its Adam
    # state would dominate each step); the blocks, norms and the output head learn.
    model.model.embed_tokens.weight.requires_grad_(False)
    body = [
        p for n, p in model.named_parameters() if not n.startswith("lm_head") and p.requires_grad
    ]
    opt = torch.optim.AdamW(
        [{"params": body}, {"params": [head, rest]}], lr=r["lr"], weight_decay=0.0
    )
    gen = np.random.default_rng(r["seed"])
    seq, batch, steps = int(r["seq_len"]), int(r["batch"]), int(r["steps"])
    log_rest = math.log(max(n_rest, 1))
    losses = []
    t0 = time.monotonic()
    for step in range(steps):
        lr = r["lr"] * min(1.0, (step + 1) / 10) * (0.1 + 0.9 * (1 - step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = gen.integers(0, len(ids) - seq - 1, size=batch)
        x = torch.from_numpy(np.stack([ids[s : s + seq] for s in starts]))
        y = torch.from_numpy(np.stack([remap[ids[s + 1 : s + seq + 1]] for s in starts]))
        h = model.model(input_ids=x).last_hidden_state
        logits = torch.cat([h @ head.T, (h @ rest + log_rest).unsqueeze(-1)], dim=-1)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(body + [head, rest], 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if log and (step % 10 == 0 or step < 3 or step == steps - 1):
            print(
                f"step {step:4d} loss {losses[-1]:.3f} ({time.monotonic() - t0:.0f} s)", flush=True
            )
    with torch.no_grad():
        full = rest.detach().expand(vocab, -1).clone()
        full[used_t] = head.detach()
        model.lm_head.weight = torch.nn.Parameter(full)
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    names = sorted((k, tuple(v.shape)) for k, v in state.items())
    _write_checkpoint(out, config, names, lambda n: state[n], "float32", 1)
    write_tokenizer(out)
    shutil.rmtree(base)
    meta = {
        "recipe": r,
        "tokens_in_training_text": len(ids),
        "distinct_tokens": int((freq > 0).sum()),
        "own_output_rows": len(used),
        "loss_first": losses[0],
        "loss_last10": float(np.mean(losses[-10:])),
        "seconds": round(time.monotonic() - t0, 1),
    }
    (out / "training.json").write_text(json.dumps(meta, indent=2))
