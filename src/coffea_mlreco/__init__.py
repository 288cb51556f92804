"""coffea-mlreco: machine-learned event reconstruction inside coffea columnar analyses."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
