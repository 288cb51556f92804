"""The di-tau task's methods (:class:`~coffea_mlreco.core.methods.MethodSet`): the m_ττ reconstructions
``ditau.reconstruct`` runs, and the visible mass, the reference lower bound of the processor and report."""

from __future__ import annotations

from coffea_mlreco.core.methods import Method, MethodSet

__all__ = ["DITAU_METHODS"]

DITAU_METHODS = MethodSet(
    task="di-tau",
    methods=(
        Method("collinear", "Collinear approximation"),
        Method("fastmtt", "FastMTT-style"),
        Method("fastmtt_mlmet", "FastMTT-style, ML MET", short="FastMTT ML MET"),
        Method("transformer", "Transformer", network="transformer"),
    ),
    references=(Method("m_vis", "Visible mass"),),
)
"""Collinear approximation, FastMTT-style scan (with PUPPI MET where the events carry it), the same fit with the ML
(Perceiver) MET, and the transformer; ``m_vis``: the visible mass."""
