"""The agent's side of undo: a checkpoint of the project before each command it runs.

The agent loop only knows the small ``Checkpointer`` protocol
(``tmax_local.agent.protocols``): ``before_command(session_id, step, command)`` returns a
``Checkpoint`` and ``session_end(session_id)`` records the final state. This class keeps
that in the project's shadow store and its session log; ``tmax-local checkpoints`` and
``tmax-local restore`` read it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmax_local.undo.store import Change, CheckpointError, ProjectTooLarge, Store, Tree

if TYPE_CHECKING:
    from tmax_local.undo.restore import RestoreResult


@dataclass(frozen=True)
class Checkpoint:
    id: str  # the tree id (SHA-256 of what it covers)
    seconds: float
    not_covered: list[tuple[str, str]] = field(default_factory=list)  # new since last time


class SessionCheckpointer:
    """Snapshots ``root`` into its store (``base``: the checkpoints dir, default the data
    dir's) before every command, recording each in the session's log."""

    def __init__(self, root: str | Path, *, base: Path | None = None, **store_kw: Any):
        self.root = Path(root).resolve()
        self.base = base
        self.store_kw = store_kw
        self._store: Store | None = None
        self._reported: set[tuple[str, str]] = set()
        self._refused: str | None = None  # a project too big to checkpoint is not rescanned

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.root, base=self.base, **self.store_kw)
        return self._store

    def _snapshot(self) -> Tree:
        if self._refused is not None:
            raise CheckpointError(self._refused)
        try:
            from tmax_local.undo.restore import checkpoint

            return checkpoint(self.store)
        except OSError as err:
            raise CheckpointError(
                f"could not record a checkpoint: {err.strerror} ({err.filename})"
            ) from None
        except ProjectTooLarge as err:
            self._refused = str(err)
            raise

    def before_command(self, session_id: str, step: int, command: str) -> Checkpoint:
        t0 = time.perf_counter()
        tree = self._snapshot()
        self.store.record(session_id, kind="step", step=step, tree=tree.id, command=command)
        new = [x for x in tree.not_covered if x not in self._reported]
        self._reported.update(new)
        return Checkpoint(tree.id, time.perf_counter() - t0, new)

    def session_end(self, session_id: str) -> str:
        tree = self._snapshot()
        self.store.record(session_id, kind="end", tree=tree.id)
        self.store.flush_index()
        return tree.id

    # --- undo from an app ---------------------------------------------------------------
    def preview(self, checkpoint: str) -> Change:
        """What restoring ``checkpoint`` would change, without touching the project."""
        from tmax_local.undo.restore import preview

        return preview(self.store, checkpoint)[2]

    def restore(self, checkpoint: str, session_id: str, step: int) -> tuple[RestoreResult, str]:
        """Put the project back to ``checkpoint`` (taken before ``step``); the state just
        before is kept as an undo point of the session. Returns (result, its label)."""
        from tmax_local.undo.history import next_undo_label
        from tmax_local.undo.restore import restore

        label = next_undo_label(self.store, session_id)
        result = restore(
            self.store, checkpoint, session=session_id, label=label, target_label=f"step {step}"
        )
        return result, label


def restore_note(step: int, change: Change) -> str:
    """What the agent reads in its next turn after the user restored the files."""
    return (
        f"[tmax-local] The user restored the project's files to their state before step "
        f"{step}: everything the commands of step {step} and later changed on disk was undone "
        f"({change.summary()}). Outputs you saw since then may no longer match the files."
    )
