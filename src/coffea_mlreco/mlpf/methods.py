"""The MLPF task's methods (:class:`~coffea_mlreco.core.methods.MethodSet`): the MLPF network that
``mlpf.reconstruct`` runs, and what the processor and report compare it with — the file's rule-based PF
candidates, and both with PUPPI weights (the ``*_puppi`` jets and MET)."""

from __future__ import annotations

from coffea_mlreco.core.methods import Method, MethodSet

__all__ = ["MLPF_METHODS"]

MLPF_METHODS = MethodSet(
    task="MLPF",
    methods=(Method("mlpf", "MLPF", network="mlpf"),),
    references=(
        Method("pf", "Rule-based PF"),
        Method("pf_puppi", "Rule-based PF + PUPPI"),
        Method("mlpf_puppi", "MLPF + PUPPI"),
    ),
)
"""MLPF; ``pf``: rule-based PF; ``pf_puppi``, ``mlpf_puppi``: each with PUPPI weights."""
