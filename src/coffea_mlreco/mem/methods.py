"""The MEM task's methods (:class:`~coffea_mlreco.core.methods.MethodSet`): VEGAS integration and the DeepMEM
network."""

from __future__ import annotations

from coffea_mlreco.core.methods import Method, MethodSet

__all__ = ["MEM_METHODS"]

MEM_METHODS = MethodSet(
    task="MEM",
    methods=(
        Method("integrated", "Integrated (VEGAS)"),
        Method("network", "DeepMEM network", network="deepmem"),
    ),
)
"""The integrated MEM weights and the network's estimate of them, in the order of the report."""
