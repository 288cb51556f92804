"""The tt̄ task's methods (:class:`~coffea_mlreco.core.methods.MethodSet`): the jet-parton assignments
``ttbar.reconstruct`` runs, and the W-mass constraint, a neutrino-η estimate the processor compares with
theirs."""

from __future__ import annotations

from coffea_mlreco.core.methods import Method, MethodSet

__all__ = ["TTBAR_METHODS"]

TTBAR_METHODS = MethodSet(
    task="tt̄",
    methods=(
        Method("chi2", "χ² mass fit"),
        Method("klfitter", "KLFitter-style likelihood fit"),
        Method("pdnn", "Permutation DNN", network="pdnn"),
        Method("spanet", "SPANet (attention)", network="spanet"),
    ),
    references=(Method("w_constraint", "W-mass constraint"),),
)
"""χ², KLFitter-style fit, permutation DNN and SPANet; ``w_constraint``: the neutrino η from the W mass."""
