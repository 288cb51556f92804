"""``coffea_mlreco.met.reconstruct``: the same MET columns in every coffea mode, only the documented branches read
in dask mode, the caller's events untouched, one bad candidate costing one event, and the physics of each column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import dask_awkward as dak
import numpy as np
import pytest
from column_modes import MODES, assert_same_columns, columns_in_mode, open_events

from coffea_mlreco import met
from coffea_mlreco.core import MissingBranchError, NonFiniteInputError, input_branches
from coffea_mlreco.core.metrics import met_residuals, resolution

NAMES = ("PFMETReco", "PuppiMETReco", "DeepMETReco", "MLMET", "PFCands.puppiWeightReco")


def reconstruct_cpu(events: Any) -> Any:
    return met.reconstruct(events, device="cpu")


@pytest.fixture(scope="module")
def eager_columns(dilep_pu60: Path) -> ak.Array:
    return columns_in_mode(reconstruct_cpu, dilep_pu60, "eager", NAMES)


@pytest.mark.parametrize("mode", [m for m in MODES if m != "eager"])
def test_every_mode_gives_the_eager_columns(
    dilep_pu60: Path, eager_columns: ak.Array, mode: str, request: pytest.FixtureRequest
) -> None:
    client = request.getfixturevalue("dask_client") if mode == "apply_to_fileset" else None
    assert_same_columns(columns_in_mode(reconstruct_cpu, dilep_pu60, mode, NAMES, client=client), eager_columns)


def test_columns_hold_the_physics(dilep_pu60: Path, eager_columns: ak.Array) -> None:
    events = open_events(dilep_pu60, "eager")
    gen_pt, gen_phi = ak.to_numpy(events.GenMET.pt), ak.to_numpy(events.GenMET.phi)
    sigma = {}
    for column in ("PFMETReco", "PuppiMETReco", "DeepMETReco", "MLMET"):
        reco = eager_columns[column]
        assert ak.all(reco.valid)
        sigma[column] = resolution(met_residuals(ak.to_numpy(reco.pt), ak.to_numpy(reco.phi), gen_pt, gen_phi).upar)
    # at pileup 60: PUPPI removes pileup that PF keeps, the networks do better than PUPPI
    assert sigma["PuppiMETReco"] < sigma["PFMETReco"]
    assert sigma["DeepMETReco"] < sigma["PuppiMETReco"] and sigma["MLMET"] < sigma["PuppiMETReco"]
    weights = eager_columns["PFCands.puppiWeightReco"]
    cands = events.PFCands
    assert ak.all((weights >= 0) & (weights <= 1))
    charged_pv = (cands.charge != 0) & (cands.fromPV == 3)
    assert ak.all(weights[charged_pv] == 1.0)  # charged from the primary vertex keep weight 1
    px = -ak.to_numpy(ak.sum(cands.pt * np.cos(cands.phi), axis=1))
    np.testing.assert_allclose(
        ak.to_numpy(eager_columns.PFMETReco.pt * np.cos(eager_columns.PFMETReco.phi)), px, rtol=1e-5, atol=1e-3
    )


def test_callers_events_are_unchanged(dilep_pu60: Path) -> None:
    events = open_events(dilep_pu60, "eager")
    fields, cand_fields = list(events.fields), list(events.PFCands.fields)
    out = met.reconstruct(events, methods=("pf", "puppi"))
    assert events.fields == fields and events.PFCands.fields == cand_fields
    assert {"PFMETReco", "PuppiMETReco"} <= set(out.fields) and "puppiWeightReco" in out.PFCands.fields
    assert out.PuppiMETReco.px is not None  # a MissingET record: coffea's behaviour works on it


def test_dask_reads_only_the_documented_branches(dilep_pu60: Path) -> None:
    events = open_events(dilep_pu60, "dask")
    out = met.reconstruct(events, device="cpu")
    (read,) = dak.report_necessary_columns(out[["PFMETReco", "PuppiMETReco", "DeepMETReco", "MLMET"]]).values()
    documented = input_branches(events, met.input_columns(events, met.METHODS))
    assert sorted(read) == documented
    assert not any(name.startswith(("Jet", "nJet", "Gen", "Electron", "Muon", "Tau")) for name in read)
    (pf_only,) = dak.report_necessary_columns(met.reconstruct(events, methods=("pf",)).PFMETReco).values()
    assert sorted(pf_only) == ["PFCands_phi", "PFCands_pt", "nPFCands"]


def _with_nan_candidate(events: ak.Array, event: int, candidate: int) -> ak.Array:
    pt = ak.to_numpy(ak.flatten(events.PFCands.pt)).copy()
    start = int(np.sum(ak.to_numpy(ak.num(events.PFCands, axis=1))[:event]))
    pt[start + candidate] = np.nan
    return ak.with_field(events, ak.unflatten(pt, ak.num(events.PFCands, axis=1)), where=("PFCands", "pt"))


def test_one_nan_candidate_costs_one_event(dilep_pu60: Path, eager_columns: ak.Array) -> None:
    events = open_events(dilep_pu60, "eager")
    bad = _with_nan_candidate(events, event=7, candidate=3)
    out = met.reconstruct(bad, device="cpu")
    columns = ak.zip({name: out[name] for name in ("PFMETReco", "PuppiMETReco", "DeepMETReco", "MLMET")}, depth_limit=1)
    for name in ak.fields(columns):
        assert ak.to_list(columns[name].valid).count(False) == 1 and not columns[name].valid[7]
        assert np.isnan(columns[name].pt[7]) and np.isnan(columns[name].phi[7])
    keep = np.arange(len(events)) != 7
    clean = eager_columns[keep]
    assert_same_columns(columns[keep], ak.zip({n: clean[n] for n in ak.fields(columns)}, depth_limit=1))
    assert ak.all(np.isnan(out.PFCands.puppiWeightReco[7]))
    assert_same_columns(out.PFCands.puppiWeightReco[keep], clean["PFCands.puppiWeightReco"])
    with pytest.raises(NonFiniteInputError, match=r"PFCands\.pt"):
        met.reconstruct(bad, methods=("pf",), on_invalid="raise")


def test_a_model_directory_is_used(dilep_pu60: Path, tmp_path: Path) -> None:
    card = met.wrappers.MET_MODELS.names()
    name = next(n for n in card if n.startswith("deepmet_pu60"))
    weights = Path(met.wrappers.MET_MODELS.card(name)["weights"])
    folder = tmp_path / "my_deepmet"
    folder.mkdir()
    (folder / "mine.json").write_text((weights.parent / f"{name}.json").read_text())
    (folder / weights.name).write_bytes(weights.read_bytes())
    events = open_events(dilep_pu60, "eager")[:50]
    mine = met.reconstruct(events, methods=("deepmet",), models={"deepmet": str(folder)}, device="cpu")
    shipped = met.reconstruct(events, methods=("deepmet",), models={"deepmet": name}, device="cpu")
    assert_same_columns(mine.DeepMETReco, shipped.DeepMETReco)
    with pytest.raises(ValueError, match="exactly one model card"):
        met.reconstruct(events, methods=("deepmet",), models={"deepmet": str(tmp_path)})


def test_missing_candidates_name_the_branch(real_nano_dy: Path) -> None:
    events = open_events(real_nano_dy, "eager")
    assert met.supported_methods(events) == ()
    with pytest.raises(MissingBranchError, match=r"PFCands_pt.*plain CMS NanoAOD does not store"):
        met.reconstruct(events)
    with pytest.raises(MissingBranchError, match="PFCands_pt"):
        met.reconstruct(open_events(real_nano_dy, "dask"))
    with pytest.raises(MissingBranchError, match="PFCands_pt"):
        met.reconstruct(events, methods=("pf",))
