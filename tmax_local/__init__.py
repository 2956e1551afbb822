"""tmax-local: run AllenAI's TMax terminal-agent models locally.

Importing this package does no work: no directories are created, nothing is
loaded. The core (agent, runtime, shell, approval, converter) never imports
Textual; only ``tmax_local.tui`` does.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
