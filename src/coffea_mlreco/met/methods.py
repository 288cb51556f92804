"""The MET task's methods (:class:`~coffea_mlreco.core.methods.MethodSet`): what ``met.reconstruct`` runs, and
the file's own MET, which the processor and the report compare with them."""

from __future__ import annotations

from coffea_mlreco.core.methods import Method, MethodSet

__all__ = ["MET_METHODS"]

MET_METHODS = MethodSet(
    task="MET",
    methods=(
        Method("pf", "PF MET (from PF candidates)", short="PF MET"),
        Method("puppi", "PUPPI MET"),
        Method("deepmet", "DeepMET", network="deepmet"),
        Method("perceiver", "Perceiver MET", network="perceiver", short="Perceiver"),
    ),
    references=(Method("file_met", "MET stored in the file", short="MET in file"),),
)
"""PF, PUPPI, DeepMET and Perceiver MET, in the order of the report; ``file_met``: the file's ``MET``."""
