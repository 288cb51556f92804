"""``coffea_mlreco.ditau.reconstruct``: the same ``DiTauReco`` in every coffea mode, on generated H→ττ and on real
CMS NanoAOD; the branches dask reads; the methods a file supports; per-event NaN isolation; model directories;
and the physics of the masses on H(125) events."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import dask_awkward as dak
import numpy as np
import pytest
from coffea_mlreco.processors.ditau import generator_mass
from column_modes import MODES, assert_same_columns, columns_in_mode, open_events

from coffea_mlreco.core import MissingBranchError, NonFiniteInputError, input_branches
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_TAU
from coffea_mlreco.ditau import METHODS, input_columns, reconstruct, supported_methods
from coffea_mlreco.ditau.columns import FILE_MET_MODEL
from coffea_mlreco.ditau.inputs import Channel, DiTauSelection
from coffea_mlreco.ditau.wrappers import DITAU_MODELS

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")

ALL_FIELDS = {
    "mass_vis",
    "mass_collinear",
    "collinear_status",
    "mass_fastmtt",
    "fastmtt_status",
    "tau1_fastmtt",
    "tau2_fastmtt",
    "mass_ml",
    "tau1_ml",
    "tau2_ml",
    "channel",
    "valid",
}
NANOAOD_FIELDS = ALL_FIELDS - {"mass_ml", "tau1_ml", "tau2_ml"}  # CMS NanoAOD has no TauProd
FILES = ("generated", "real")


def _path(request: pytest.FixtureRequest, which: str) -> Path:
    return request.getfixturevalue("ditau_small" if which == "generated" else "real_nano_dy")


@pytest.fixture(scope="module")
def eager_columns(ditau_small: Path) -> dict[str, ak.Array]:
    """``DiTauReco`` of the small generated file and of the real DY file, from eager events (the references)."""
    return {"generated": columns_in_mode(reconstruct, ditau_small, "eager", ["DiTauReco"])}


def _reference(eager_columns: dict[str, ak.Array], which: str, path: Path) -> ak.Array:
    if which not in eager_columns:
        eager_columns[which] = columns_in_mode(reconstruct, path, "eager", ["DiTauReco"])
    return eager_columns[which]


@pytest.mark.parametrize("which", FILES)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_eager_columns(
    mode: str, which: str, eager_columns: dict[str, ak.Array], request: pytest.FixtureRequest
) -> None:
    path = _path(request, which)
    reference = _reference(eager_columns, which, path)
    client = request.getfixturevalue("dask_client") if mode == "apply_to_fileset" else None
    columns = columns_in_mode(reconstruct, path, mode, ["DiTauReco"], client=client)
    assert_same_columns(columns, reference)
    reco = columns["DiTauReco"]
    assert set(ak.fields(reco)) == (ALL_FIELDS if which == "generated" else NANOAOD_FIELDS)
    channel = ak.to_numpy(reco.channel)
    selected = channel >= 0
    assert selected.sum() > (20 if which == "generated" else 0) and ak.all(reco.valid)
    for field in ("mass_collinear", "mass_fastmtt", "mass_ml"):
        if field in ak.fields(reco):
            mass = ak.to_numpy(reco[field])
            assert np.isnan(mass[~selected]).all() and (mass[selected] > 0).all(), field
    vis = ak.to_numpy(reco.mass_vis)
    assert (ak.to_numpy(reco.mass_fastmtt)[selected] >= vis[selected] - 1e-6).all()  # neutrinos only add mass
    assert (ak.to_numpy(reco.fastmtt_status)[~selected] == 8).all()


@pytest.mark.parametrize("mode", ["eager", "dask"])
def test_the_callers_events_are_unchanged(ditau_small: Path, mode: str) -> None:
    events = open_events(ditau_small, mode)
    before = list(events.fields)
    tau_fields = list(events.Tau.fields)
    out = reconstruct(events)
    assert list(events.fields) == before and "DiTauReco" not in events.fields
    assert list(events.Tau.fields) == tau_fields
    assert "DiTauReco" in out.fields and set(before) < set(out.fields)


def test_building_the_dask_graph_computes_nothing(ditau_small: Path) -> None:
    events = open_events(ditau_small, "dask")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("something was computed while the graph was built")

    with dask.config.set(scheduler=refuse):
        out = reconstruct(events)
    assert isinstance(out.DiTauReco.mass_ml, dak.Array)
    assert ak.fields(out.DiTauReco._meta) == ak.fields(out.DiTauReco)


@pytest.mark.parametrize(
    ("which", "methods"),
    [("generated", None), ("generated", ("collinear",)), ("generated", ("transformer",)), ("real", None)],
)
def test_dask_reads_the_documented_branches(
    which: str, methods: tuple[str, ...] | None, request: pytest.FixtureRequest
) -> None:
    events = open_events(_path(request, which), "dask")
    out = reconstruct(events, methods=methods)
    (read,) = dak.report_necessary_columns(out.DiTauReco).values()
    ran = supported_methods(events) if methods is None else methods
    assert sorted(read) == input_branches(events, input_columns(events, ran))
    assert not any(name.startswith(("Gen", "nGen")) for name in read)
    base = {
        "Tau_pt",
        "Tau_charge",
        "Tau_decayMode",
        "Electron_pfRelIso03_all",
        "Muon_pfRelIso04_all",
        "MET_pt",
        "MET_covXX",
        "MET_covXY",
        "MET_covYY",
    }
    assert base <= set(read)
    assert ("TauProd_tauIdx" in read) == ("Jet_pt" in read) == ("transformer" in ran)
    if which == "real":  # the DeepTau working points and the lepton IDs of real NanoAOD
        assert {"Tau_idDeepTau2017v2p1VSjet", "Electron_mvaFall17V2noIso_WP90", "Muon_mediumId"} <= set(read)
        assert "MET_sumEt" not in read  # the file's covariance is used


def test_a_zero_working_point_leaves_the_deeptau_branch_unread(real_nano_dy: Path) -> None:
    events = open_events(real_nano_dy, "eager")
    loose = input_columns(events, METHODS, DiTauSelection(tau_vs_jet_wp=0))
    assert "idDeepTau2017v2p1VSjet" not in loose["Tau"] and "idDeepTau2017v2p1VSe" in loose["Tau"]
    out = reconstruct(events, selection=DiTauSelection(tau_vs_jet_wp=0)).DiTauReco
    default = reconstruct(events).DiTauReco
    assert ak.sum(out.channel >= 0) >= ak.sum(default.channel >= 0)


def test_methods_the_file_supports(ditau_small: Path, real_nano_dy: Path) -> None:
    generated, real = open_events(ditau_small, "eager"), open_events(real_nano_dy, "eager")
    assert supported_methods(generated) == ("collinear", "fastmtt", "transformer")  # no MLMET: no fastmtt_mlmet
    assert supported_methods(real) == ("collinear", "fastmtt")
    assert "mass_ml" not in ak.fields(reconstruct(real).DiTauReco)
    with pytest.raises(MissingBranchError, match="TauProd_tauIdx") as err:
        reconstruct(real, methods=("transformer",))
    assert err.value.branch == "TauProd_tauIdx"
    without_tau = ak.without_field(generated, "Tau")
    assert supported_methods(without_tau) == ()
    with pytest.raises(MissingBranchError, match="Tau_pt"):
        reconstruct(without_tau)
    only = reconstruct(generated, methods="collinear").DiTauReco
    assert set(ak.fields(only)) == {"mass_vis", "mass_collinear", "collinear_status", "channel", "valid"}
    with pytest.raises(ValueError, match="unknown di-tau method"):
        reconstruct(generated, methods=("svfit",))
    with pytest.raises(ValueError, match="models= keys"):
        reconstruct(generated, models={"fastmtt": "transformer"})


def _poison(events: ak.Array, collection: str, field: str, event: int) -> ak.Array:
    """``events`` with the first ``collection.field`` value of ``event`` set to NaN."""
    values = events[collection][field]
    if values.ndim == 1:
        flat = to_numpy(values).copy()
        flat[event] = np.nan
        return ak.with_field(events, flat, where=(collection, field))
    counts = ak.to_numpy(ak.num(values))
    flat = to_numpy(ak.flatten(values)).copy()
    flat[int(counts[:event].sum())] = np.nan
    return ak.with_field(events, ak.unflatten(flat, counts), where=(collection, field))


def test_an_event_with_nan_inputs_is_isolated(ditau_small: Path, eager_columns: dict[str, ak.Array]) -> None:
    events = open_events(ditau_small, "eager")
    clean = eager_columns["generated"]["DiTauReco"]
    channel = ak.to_numpy(clean.channel)
    hadronic = np.flatnonzero(np.isin(channel, [Channel.TAUTAU, Channel.MUTAU, Channel.ETAU]))
    with_products = np.flatnonzero((channel == Channel.TAUTAU) & (ak.to_numpy(ak.num(events.TauProd)) > 0))
    bad = {
        int(hadronic[0]): ("Tau", "pt"),
        int(with_products[-1]): ("TauProd", "eta"),
        int(np.flatnonzero(channel >= 0)[len(hadronic) // 2]): ("MET", "covXX"),
    }
    assert len(bad) == 3
    poisoned = events
    for event, (collection, field) in bad.items():
        poisoned = _poison(poisoned, collection, field, event)
    reco = reconstruct(poisoned).DiTauReco
    invalid = np.zeros(len(events), bool)
    invalid[list(bad)] = True
    assert_same_columns(reco[~invalid], clean[~invalid])
    assert not ak.any(reco.valid[invalid])
    for field in ("mass_vis", "mass_collinear", "mass_fastmtt", "mass_ml"):
        assert np.isnan(ak.to_numpy(reco[field][invalid])).all()
    assert np.isnan(ak.to_numpy(reco.tau1_ml.pt[invalid])).all()
    assert (ak.to_numpy(reco.channel[invalid]) == -1).all() and (ak.to_numpy(reco.fastmtt_status[invalid]) == -1).all()
    with pytest.raises(NonFiniteInputError, match=r"TauProd\.eta"):
        reconstruct(_poison(events, "TauProd", "eta", int(with_products[-1])), on_invalid="raise")
    with pytest.raises(ValueError, match="on_invalid"):
        reconstruct(events, on_invalid="skip")


def test_empty_chunk(ditau_small: Path) -> None:
    events = open_events(ditau_small, "eager")[:0]
    reco = reconstruct(events).DiTauReco
    assert len(reco) == 0 and set(ak.fields(reco)) == ALL_FIELDS


def _model_dir(target: Path, bias_shift: float = 0.0) -> Path:
    """A model directory holding the card and weights of the shipped transformer these events get (no MLMET: the
    one trained on the file's MET), its output bias shifted."""
    from safetensors.torch import load_file, save_file

    card = DITAU_MODELS.card(FILE_MET_MODEL)
    weights = Path(card["weights"])
    target.mkdir()
    state = load_file(str(weights))
    if bias_shift:
        last_bias = [k for k in state if k.startswith("head") and k.endswith("bias")][-1]
        state[last_bias] = state[last_bias] + bias_shift
    save_file(state, str(target / weights.name))
    shipped = json.loads(weights.with_suffix(".json").read_text())
    (target / "my_transformer.json").write_text(json.dumps(shipped))
    return target


def test_a_model_directory_is_used(ditau_small: Path, eager_columns: dict[str, ak.Array], tmp_path: Path) -> None:
    events = open_events(ditau_small, "eager")
    shipped = eager_columns["generated"]["DiTauReco"]
    copied = reconstruct(events, models={"transformer": _model_dir(tmp_path / "copy")}).DiTauReco
    assert_same_columns(copied, shipped)
    shifted = reconstruct(events, models={"transformer": str(_model_dir(tmp_path / "shifted", 0.2))}).DiTauReco
    selected = ak.to_numpy(shipped.channel) >= 0
    ml, ml_shipped = ak.to_numpy(shifted.mass_ml)[selected], ak.to_numpy(shipped.mass_ml)[selected]
    assert np.all(np.isfinite(ml)) and np.all(ml != ml_shipped)
    assert np.array_equal(ak.to_numpy(shifted.mass_fastmtt), ak.to_numpy(shipped.mass_fastmtt), equal_nan=True)
    shutil.rmtree(tmp_path / "copy")


def _resolution(ratio: np.ndarray) -> float:
    p16, p84 = np.percentile(ratio, [16, 84])
    return float(p84 - p16) / 2


def test_higgs_masses_peak_at_125(ditau_events: dict[str, Any]) -> None:
    """On H(125)→ττ the FastMTT-style and transformer medians lie within 10 % of 125 GeV, the visible mass well
    below, and the collinear approximation is wider than both (m/m_gen − 1, (P84 − P16)/2)."""
    events = ditau_events["htautau"]
    reco = reconstruct(events).DiTauReco
    m_gen = generator_mass(events)
    selected = (ak.to_numpy(reco.channel) >= 0) & np.isfinite(m_gen)
    assert selected.sum() > 150
    assert abs(np.median(m_gen[selected]) - 125.0) < 2.0
    mass = {name: ak.to_numpy(reco[f"mass_{name}"])[selected] for name in ("vis", "collinear", "fastmtt", "ml")}
    for name in ("fastmtt", "ml"):
        assert abs(np.median(mass[name]) / 125.0 - 1) < 0.10, name
    assert np.median(mass["vis"]) < 0.8 * 125.0
    width = {name: _resolution(values / m_gen[selected] - 1) for name, values in mass.items()}
    assert width["collinear"] > width["fastmtt"] and width["collinear"] > width["ml"]
    # the regressed taus rebuild the transformer mass and carry m_τ; FastMTT's taus rebuild its mass
    sel = ak.to_numpy(reco.channel) >= 0
    np.testing.assert_allclose(
        ak.to_numpy((reco.tau1_ml + reco.tau2_ml).mass)[sel], ak.to_numpy(reco.mass_ml)[sel], rtol=1e-9
    )
    np.testing.assert_allclose(ak.to_numpy(reco.tau2_ml.mass)[sel], M_TAU)
    np.testing.assert_allclose(
        ak.to_numpy((reco.tau1_fastmtt + reco.tau2_fastmtt).mass)[sel], ak.to_numpy(reco.mass_fastmtt)[sel], rtol=1e-6
    )


def test_reconstruct_needs_no_truth(
    ditau_small: Path, eager_columns: dict[str, ak.Array], copy_events: Callable[..., Path], tmp_path: Path
) -> None:
    """A copy of the file without any generator branch gives the same columns."""

    def drop_truth(branches: dict[str, Any]) -> None:
        for name in [n for n in branches if n.startswith("Gen")]:
            del branches[name]

    stripped = copy_events(ditau_small, tmp_path / "no_truth.root", drop_truth)
    columns = columns_in_mode(reconstruct, stripped, "eager", ["DiTauReco"])
    assert_same_columns(columns, eager_columns["generated"])


def test_nanoaod_v15_reads_pfmet_and_deeptau_v2p5() -> None:
    """NanoAODv15: the MET is ``PFMET`` and the taus carry DeepTau 2018v2p5; the reconstruction runs (eager) and
    dask reads exactly the declared branches, those among them."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nano_tt_v15.root"
    if not path.is_file():
        pytest.skip(f"real NanoAOD test file {path} is absent")
    eager = open_events(path, "eager")
    # v15 stores the taus' decay products, TauProd; the ML-MET fit needs our MLMET column
    assert supported_methods(eager) == ("collinear", "fastmtt", "transformer")
    reco = reconstruct(eager).DiTauReco
    assert len(reco) == len(eager) and set(reco.fields) >= {"mass_vis", "mass_fastmtt", "mass_ml", "valid"}
    events = open_events(path, "dask")
    (read,) = dak.report_necessary_columns(reconstruct(events).DiTauReco).values()
    assert sorted(read) == input_branches(events, input_columns(events, supported_methods(events)))
    assert {"PFMET_pt", "PFMET_covXX", "Tau_idDeepTau2018v2p5VSjet"} <= set(read)
    assert not any(name.startswith("MET_") for name in read)
