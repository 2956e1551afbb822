"""Undo: checkpoints of the project before every command, and restoring them.

- ``store.Store``: the shadow store of one project (content-addressed, under the data dir;
  the user's ``.git`` is only read).
- ``restore.restore`` / ``restore.preview``: put the project back to a checkpoint.
- ``checkpointer.SessionCheckpointer``: what the agent loop calls before each command.
- ``cli``: ``tmax-local checkpoints`` and ``tmax-local restore``.
"""
