"""Model wrapper of the di-tau transformer and the shipped trained model.

:class:`DiTauTransformerWrapper` takes ``(events, candidates)`` of events *with* a selected di-tau pair
(:func:`coffea_mlreco.ditau.inputs.ditau_candidates` restricted to ``selected``) and returns per event
``mass`` (m_ττ, GeV) and ``tau1``, ``tau2`` (the regressed taus before decay: ``pt``, ``eta``, ``phi``,
``mass``; GeV, rad, mass = m_τ). ``prepare`` builds the token features
(:mod:`coffea_mlreco.ditau.transformer_inputs`); ``postprocess`` turns the network's (log pT, η, φ) offsets
from the visible legs into four-momenta. Override either to change inputs or outputs.

Shipped models: ``ditau/weights/<name>.json`` (model card) + ``<name>.safetensors``, loaded by :data:`DITAU_MODELS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import MET_COLUMNS, Events, to_numpy
from coffea_mlreco.core.constants import M_TAU
from coffea_mlreco.ditau.inputs import FILE_MET
from coffea_mlreco.ditau.targets import pair_mass
from coffea_mlreco.ditau.transformer_inputs import MAX_JETS, MAX_PRODUCTS, transformer_inputs
from coffea_mlreco.inference import Dense, Jagged, ModelRegistry, ModelWrapper

__all__ = ["DITAU_MODELS", "DiTauTransformerWrapper"]


class _Selected(NamedTuple):
    events: Events
    candidates: Any


class DiTauTransformerWrapper(ModelWrapper):
    """Runs the di-tau transformer; call it as ``wrapper(events, candidates)`` (module docstring).

    ``met_input``: the MET the model was trained with and reads, ``"file"`` (the file's MET with its covariance)
    or a MET method (``"perceiver"``: the ``MLMET`` column with its calibrated covariance); from the model card's
    ``met_input`` (cards without it: ``"file"``). ``ditau.reconstruct`` hands the model that MET and the FastMTT
    fit made with it.
    """

    def __init__(self, backend: Any, met_input: str = FILE_MET, **kwargs: Any) -> None:
        if met_input != FILE_MET and met_input not in MET_COLUMNS:
            raise ValueError(f"met_input must be 'file' or one of {sorted(MET_COLUMNS)}, not {met_input!r}")
        super().__init__(backend, **kwargs)
        self.met_input = met_input

    @classmethod
    def from_card(cls, backend: Any, card: Mapping[str, Any], **kwargs: Any) -> DiTauTransformerWrapper:
        """The wrapper with the card's ``met_input``."""
        return cls(backend, met_input=str(card.get("met_input", FILE_MET)), **kwargs)

    @property
    def met_column(self) -> str | None:
        """The events' MET column the model reads (None: the file's MET)."""
        return None if self.met_input == FILE_MET else MET_COLUMNS[self.met_input]

    def __call__(self, events: Events, candidates: Any = None) -> Any:
        if candidates is None:
            raise ValueError("DiTauTransformerWrapper needs (events, candidates) from ditau_candidates")
        return super().__call__(_Selected(events, candidates))

    def prepare(self, events: Events) -> dict[str, Jagged | Dense]:
        inputs = transformer_inputs(events.events, events.candidates)
        return {
            "products1": Jagged(inputs.products1, max_objects=MAX_PRODUCTS, keep_highest="log_pt"),
            "products2": Jagged(inputs.products2, max_objects=MAX_PRODUCTS, keep_highest="log_pt"),
            "jets": Jagged(inputs.jets, max_objects=MAX_JETS, keep_highest="log_pt"),
            "legs": Dense(inputs.legs),
            "met": Dense(inputs.met),
        }

    def postprocess(self, outputs: ak.Array, events: Events) -> ak.Array:
        cand = events.candidates
        out = to_numpy(outputs["tau"], np.float64).reshape(-1, 2, 3)
        taus = np.empty_like(out)
        for k, leg in enumerate((cand.leg1, cand.leg2)):
            pt, eta, phi = (to_numpy(leg[f], np.float64) for f in ("pt", "eta", "phi"))
            taus[:, k, 0] = pt * np.exp(out[:, k, 0])
            taus[:, k, 1] = eta + out[:, k, 1]
            taus[:, k, 2] = np.mod(phi + out[:, k, 2] + np.pi, 2 * np.pi) - np.pi
        fields: dict[str, Any] = {"mass": pair_mass(taus)}
        for k in (0, 1):
            fields[f"tau{k + 1}"] = ak.zip(
                {"pt": taus[:, k, 0], "eta": taus[:, k, 1], "phi": taus[:, k, 2], "mass": np.full(len(taus), M_TAU)}
            )
        return ak.zip(fields, depth_limit=1)


DITAU_MODELS = ModelRegistry(
    "coffea_mlreco.ditau",
    "di-tau",
    {"coffea_mlreco.ditau.transformer:DiTauTransformer": DiTauTransformerWrapper},
)
"""The di-tau models: the shipped ``transformer`` (``DITAU_MODELS.load("transformer")``) or model directories."""
