"""Di-tau candidate selection: channels against generator truth, conventions, MET covariance, errors."""

from __future__ import annotations

import warnings
from typing import Any

import awkward as ak
import numpy as np
import pytest

from coffea_mlreco.core.truth import delta_r
from coffea_mlreco.ditau.collinear_mass import collinear_mass
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import (
    MET_SIGMA0_GEV,
    MET_SIGMA_SUMET,
    Channel,
    LegKind,
    channel_name,
    ditau_candidates,
    kernel_arrays,
    met_with_covariance,
)

_EXPECTED_KINDS = {
    Channel.TAUTAU: (LegKind.HADRONIC, LegKind.HADRONIC),
    Channel.MUTAU: (LegKind.MUON, LegKind.HADRONIC),
    Channel.ETAU: (LegKind.ELECTRON, LegKind.HADRONIC),
    Channel.EMU: (LegKind.ELECTRON, LegKind.MUON),
    Channel.MUMU: (LegKind.MUON, LegKind.MUON),
    Channel.EE: (LegKind.ELECTRON, LegKind.ELECTRON),
}


@pytest.mark.parametrize("sample", ["htautau", "ztautau"])
def test_channels_match_generator_decays(reconstructed: dict[str, Any], sample: str) -> None:
    rec = reconstructed[sample]
    channel = ak.to_numpy(rec.candidates.channel)
    assert len(channel) > 100
    assert np.mean(channel == rec.gen_channel) > 0.95  # jets faking taus are the only source of mistakes
    for code in (Channel.TAUTAU, Channel.MUTAU, Channel.ETAU):  # the big channels are all populated
        assert np.sum(channel == code) >= 10, channel_name(code)


def test_leg_conventions(reconstructed: dict[str, Any]) -> None:
    cand = reconstructed["htautau"].candidates
    leg1, leg2 = cand.leg1, cand.leg2
    channel = ak.to_numpy(cand.channel)
    kinds = np.stack([ak.to_numpy(leg1.kind), ak.to_numpy(leg2.kind)], axis=1)
    for code, expected in _EXPECTED_KINDS.items():
        assert np.all(kinds[channel == code] == np.array(expected)), channel_name(code)
    assert np.all(ak.to_numpy(leg1.charge * leg2.charge) < 0)
    assert np.all(ak.to_numpy(delta_r(leg1.eta, leg1.phi, leg2.eta, leg2.phi)) > 0.5)
    same = (channel == Channel.TAUTAU) | (channel == Channel.MUMU) | (channel == Channel.EE)
    assert np.all(ak.to_numpy(leg1.pt)[same] >= ak.to_numpy(leg2.pt)[same])
    hadronic = kinds == LegKind.HADRONIC
    modes = np.stack([ak.to_numpy(leg1.decayMode), ak.to_numpy(leg2.decayMode)], axis=1)
    assert np.all(np.isin(modes[hadronic], [0, 1, 2, 10, 11])) and np.all(modes[~hadronic] == -1)
    assert np.all(ak.to_numpy(leg1.pt)[hadronic[:, 0]] > 20.0)


def test_unselected_events_have_no_legs(ditau_events: dict[str, Any]) -> None:
    cand = ditau_candidates(ditau_events["ztautau"])
    selected = ak.to_numpy(cand.selected)
    assert 0 < selected.sum() < len(selected)
    assert np.all(ak.to_numpy(ak.is_none(cand.leg1)) == ~selected)
    assert np.all(ak.to_numpy(cand.channel)[~selected] == Channel.NONE)


def test_met_covariance_from_file(ditau_events: dict[str, Any]) -> None:
    events = ditau_events["htautau"]
    met = met_with_covariance(events)
    np.testing.assert_allclose(ak.to_numpy(met.covXX), ak.to_numpy(events.MET.covXX), rtol=1e-6)
    np.testing.assert_allclose(ak.to_numpy(met.px), ak.to_numpy(events.MET.pt * np.cos(events.MET.phi)), rtol=1e-5)


def test_met_covariance_fallback_and_missing() -> None:
    events = ak.zip({"MET": ak.zip({"pt": [10.0, 50.0], "phi": [0.0, 1.0], "sumEt": [100.0, 900.0]})}, depth_limit=1)
    met = met_with_covariance(events)
    np.testing.assert_allclose(ak.to_numpy(met.covXX), MET_SIGMA0_GEV**2 + MET_SIGMA_SUMET**2 * np.array([100, 900]))
    assert ak.to_numpy(met.covXY).tolist() == [0.0, 0.0]
    bare = ak.zip({"MET": ak.zip({"pt": [10.0], "phi": [0.0]})}, depth_limit=1)
    with pytest.raises(ValueError, match="MET_sumEt"):
        met_with_covariance(bare)


def test_missing_collection_or_branch_is_named(ditau_events: dict[str, Any]) -> None:
    events = ditau_events["htautau"][:50]
    parts = {name: events[name] for name in ("Tau", "Electron", "Muon", "MET")}
    with pytest.raises(ValueError, match="Electron"):
        ditau_candidates(ak.zip({k: v for k, v in parts.items() if k != "Electron"}, depth_limit=1))
    muons = ak.zip({f: parts["Muon"][f] for f in ("pt", "eta", "phi", "mass", "charge")})
    with pytest.raises(ValueError, match="Muon_pfRelIso04_all"):
        ditau_candidates(ak.zip({**parts, "Muon": muons}, depth_limit=1))


def _one_tau_pair_event(id_values: list[int], branch: str) -> ak.Array:
    """Two opposite-charge, well separated hadronic taus carrying a DeepTau branch; no leptons."""
    taus = ak.zip(
        {
            "pt": [[40.0, 30.0]],
            "eta": [[0.1, -0.5]],
            "phi": [[0.0, 2.5]],
            "mass": [[0.5, 1.2]],
            "charge": [[1, -1]],
            "decayMode": [[0, 10]],
            branch: [id_values],
        }
    )
    none = ak.zip(
        {
            "pt": [[0.0]],
            "eta": [[0.0]],
            "phi": [[0.0]],
            "mass": [[0.0]],
            "charge": [[1]],
            "pfRelIso03_all": [[9.0]],
            "pfRelIso04_all": [[9.0]],
        }
    )[:, :0]
    met = ak.zip({"pt": [20.0], "phi": [1.0], "covXX": [100.0], "covXY": [0.0], "covYY": [100.0]})
    return ak.zip({"Tau": taus, "Electron": none, "Muon": none, "MET": met}, depth_limit=1)


@pytest.mark.parametrize(
    ("branch", "values", "selected"),
    [
        ("idDeepTau2017v2p1VSjet", [31, 63], True),  # NanoAOD ≤ v9 bitmask, Medium = bit 4
        ("idDeepTau2017v2p1VSjet", [31, 15], False),  # bitmask: 15 is Loose
        ("idDeepTau2018v2p5VSjet", [5, 6], True),  # integer working points, Medium = 5
        ("idDeepTau2018v2p5VSjet", [5, 4], False),
    ],
)
def test_deeptau_working_points(branch: str, values: list[int], selected: bool) -> None:
    cand = ditau_candidates(_one_tau_pair_event(values, branch))
    assert bool(cand.selected[0]) is selected
    if selected:
        assert int(cand.channel[0]) == Channel.TAUTAU


def test_nan_in_an_event_with_a_pair_is_named(reconstructed: dict[str, Any]) -> None:
    cand = reconstructed["htautau"].candidates[:20]
    met = ak.with_field(cand.met, np.where(np.arange(20) == 3, np.nan, ak.to_numpy(cand.met.px)), "px")
    with pytest.raises(ValueError, match=r"met\.px"):
        kernel_arrays(cand.leg1, cand.leg2, met)
    with pytest.raises(ValueError, match="covYY"):
        kernel_arrays(cand.leg1, cand.leg2, ak.without_field(cand.met, "covYY"))


def test_empty_chunk(ditau_events: dict[str, Any]) -> None:
    cand = ditau_candidates(ditau_events["htautau"][:0])
    assert len(cand) == 0
    for result in (collinear_mass(cand.leg1, cand.leg2, cand.met), fastmtt_mass(cand.leg1, cand.leg2, cand.met)):
        assert len(result) == 0 and "mass" in ak.fields(result)


def test_real_drell_yan_nanoaod(real_nano_dy: Any) -> None:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coffea: "Branch Photon_mass already exists ..."
        events = NanoEventsFactory.from_root(
            {str(real_nano_dy): "Events"}, schemaclass=NanoAODSchema, mode="eager"
        ).events()
    cand = ditau_candidates(events)
    assert len(cand) == len(events) and ak.to_numpy(cand.selected).any()
    np.testing.assert_allclose(ak.to_numpy(cand.met.covXY), ak.to_numpy(events.MET.covXY))
    sel = cand[cand.selected]
    assert set(ak.to_numpy(sel.channel).tolist()) <= {int(c) for c in Channel if c != Channel.NONE}
    assert np.all(ak.to_numpy(sel.leg1.mass) >= 0.0)
    for result in (collinear_mass(cand.leg1, cand.leg2, cand.met), fastmtt_mass(cand.leg1, cand.leg2, cand.met)):
        mass = ak.to_numpy(result.mass)
        selected = ak.to_numpy(cand.selected)
        assert np.all(np.isfinite(mass[selected])) and np.all(np.isnan(mass[~selected]))
        assert np.all(mass[selected] > 10.0)
