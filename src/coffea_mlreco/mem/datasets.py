"""Which datasets are the MEM discriminant's signal and which its background, by name.

A dataset name is split into lower-case alphanumeric tokens (at every character other than a–z, 0–9). It is
*signal* when a token is one of :data:`SIGNAL_TOKENS` or starts with ``zprime``; *background* when a token is one
of :data:`BACKGROUND_TOKENS` or starts with ``dyjets``/``dyto``. Names matching both or neither are neither (not
used in a ROC). ``evaluate`` names a dataset after its file's stem (``zprime_ll.root`` → signal, ``dy_7121.root`` →
background); ``train mem`` names held-out weight tables the same way (``zp_7221.npz``, ``dy_7121.npz``).
"""

from __future__ import annotations

import re

__all__ = ["BACKGROUND_TOKENS", "SIGNAL_TOKENS", "dataset_kind"]

SIGNAL_TOKENS = frozenset({"zprime", "zp", "zprimell", "signal", "sig"})
BACKGROUND_TOKENS = frozenset({"dy", "dyll", "drellyan", "drell", "zll", "ztoll", "background", "bkg"})


def dataset_kind(name: str) -> str | None:
    """``"signal"``, ``"background"`` or None for a dataset name (rules in the module docstring)."""
    tokens = [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]
    is_s = any(t in SIGNAL_TOKENS or t.startswith("zprime") for t in tokens)
    is_b = any(t in BACKGROUND_TOKENS or t.startswith(("dyjets", "dyto")) for t in tokens)
    if is_s == is_b:
        return None
    return "signal" if is_s else "background"
