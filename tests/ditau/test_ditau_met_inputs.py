"""m_ττ with the MET of any method: the fits read ``PuppiMETReco`` / ``MLMET`` with their calibrated covariance
(``coffea_mlreco.met.resolution``), in eager and dask mode, and the processor appends them where the file has PF
candidates.

Sample: 400 H → ττ events at PU 60 with PF candidates (seed 615, used in no calibration or training).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from coffea_mlreco.processors.ditau import DiTauProcessor

from coffea_mlreco import ditau, met
from coffea_mlreco.cli import main
from coffea_mlreco.core.columns import MET_COLUMNS, to_numpy
from coffea_mlreco.ditau.columns import DEFAULT_MODEL, FILE_MET_MODEL
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import ditau_candidates
from coffea_mlreco.ditau.wrappers import DITAU_MODELS
from coffea_mlreco.met.resolution import core_variance, load_resolutions
from coffea_mlreco.simulation import generate_sample


@pytest.fixture(scope="module")
def pu60_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ditau_pu60") / "h_pu60.root"
    return generate_sample("htautau", 400, 60, seed=615, output=out, progress=False)


def _open(path: Path, mode: str = "eager") -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        factory = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode=mode)
        return factory.events()


@pytest.fixture(scope="module")
def with_met(pu60_file: Path) -> Any:
    return met.reconstruct(_open(pu60_file), methods=("puppi", "perceiver"), device="cpu")


def test_met_columns_carry_their_calibrated_covariance(with_met: Any) -> None:
    """Every MET column holds covXX = covYY = the table's variance at its Σ and N_PV, covXY = 0; the pulls of
    the PUPPI and Perceiver MET against the generator MET have a core width near 1 (held-out events)."""
    table = load_resolutions()
    gx = to_numpy(with_met.GenMET.pt * np.cos(with_met.GenMET.phi), np.float64)
    gy = to_numpy(with_met.GenMET.pt * np.sin(with_met.GenMET.phi), np.float64)
    npv = to_numpy(with_met.PV.npvsGood, np.float64)
    for method in ("puppi", "perceiver"):
        rec = with_met[MET_COLUMNS[method]]
        cov = to_numpy(rec.covXX, np.float64)
        np.testing.assert_allclose(cov, table[method].variance(to_numpy(rec.sumEt, np.float64), npv))
        np.testing.assert_array_equal(to_numpy(rec.covYY, np.float64), cov)
        assert not np.any(to_numpy(rec.covXY, np.float64))
        pt, phi = to_numpy(rec.pt, np.float64), to_numpy(rec.phi, np.float64)
        pulls = np.concatenate([(pt * np.cos(phi) - gx), (pt * np.sin(phi) - gy)]) / np.sqrt(np.tile(cov, 2))
        assert 0.8 < np.sqrt(core_variance(pulls)) < 1.25, method


def test_fits_read_puppi_and_ml_met(pu60_file: Path, with_met: Any) -> None:
    """``fastmtt`` reads PuppiMETReco once it is there, ``fastmtt_mlmet`` MLMET; ``met={"fastmtt": "file"}``
    gives the fit of the file's MET, bit for bit."""
    plain = _open(pu60_file)
    assert ditau.supported_methods(plain) == ("collinear", "fastmtt", "transformer")
    assert ditau.supported_methods(with_met) == ditau.METHODS
    assert ditau.met_columns(plain, ditau.METHODS)["fastmtt"] is None
    assert ditau.met_columns(with_met, ditau.METHODS) == {
        "collinear": "PuppiMETReco",
        "fastmtt": "PuppiMETReco",
        "fastmtt_mlmet": "MLMET",
        "transformer": None,  # the shipped transformer's card: trained with the file's MET
    }
    reco = ditau.reconstruct(with_met, methods=("fastmtt", "fastmtt_mlmet"), device="cpu").DiTauReco
    for method, column in (("fastmtt", "PuppiMETReco"), ("fastmtt_mlmet", "MLMET")):
        cand = ditau_candidates(with_met, met_column=column)
        expected = to_numpy(fastmtt_mass(cand.leg1, cand.leg2, cand.met).mass, np.float64)
        field = ditau.MASS_FIELDS[method]
        np.testing.assert_array_equal(to_numpy(reco[field], np.float64), expected)
    file_met = ditau.reconstruct(with_met, methods=("fastmtt",), met={"fastmtt": "file"}).DiTauReco
    plain_fit = ditau.reconstruct(plain, methods=("fastmtt",)).DiTauReco
    np.testing.assert_array_equal(to_numpy(file_met.mass_fastmtt), to_numpy(plain_fit.mass_fastmtt))
    selected = to_numpy(reco.channel >= 0, bool)
    assert selected.sum() > 40
    assert not np.array_equal(to_numpy(reco.mass_fastmtt)[selected], to_numpy(plain_fit.mass_fastmtt)[selected])


@pytest.mark.skipif(
    not {DEFAULT_MODEL, FILE_MET_MODEL} <= set(DITAU_MODELS.names()), reason="the two shipped di-tau transformers"
)
def test_the_shipped_transformer_follows_the_met_the_events_carry(pu60_file: Path, with_met: Any) -> None:
    """The shipped transformer reads the ML MET: events that carry MLMET get it, events without it (before
    ``met.reconstruct``, or without PF candidates) the model trained on the file's MET, in reconstruct as in the
    processor."""
    plain = _open(pu60_file)
    assert DITAU_MODELS.card(DEFAULT_MODEL)["met_input"] == "perceiver"
    assert DITAU_MODELS.card(FILE_MET_MODEL).get("met_input", "file") == "file"
    assert ditau.shipped_model(with_met) == DEFAULT_MODEL and ditau.shipped_model(plain) == FILE_MET_MODEL
    masses = {}
    for events, name in ((with_met, DEFAULT_MODEL), (plain, FILE_MET_MODEL)):
        default = ditau.reconstruct(events, methods=("transformer",), device="cpu").DiTauReco
        named = ditau.reconstruct(events, methods=("transformer",), models={"transformer": name}, device="cpu")
        np.testing.assert_array_equal(to_numpy(default.mass_ml), to_numpy(named.DiTauReco.mass_ml))
        masses[name] = to_numpy(default.mass_ml, np.float64)
    selected = np.isfinite(masses[DEFAULT_MODEL])
    assert selected.sum() > 40 and not np.allclose(masses[DEFAULT_MODEL][selected], masses[FILE_MET_MODEL][selected])
    eager = ditau.reconstruct(with_met, device="cpu").DiTauReco  # the default methods include it
    np.testing.assert_array_equal(to_numpy(eager.mass_ml), masses[DEFAULT_MODEL])
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=200)
    for reconstruct_met, column in ((True, "MLMET"), (False, "file")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = runner(
                {"h": {"files": {str(pu60_file): "Events"}}},
                processor_instance=DiTauProcessor(methods=("transformer",), reconstruct_met=reconstruct_met),
                treename="Events",
            )
        assert out["met_columns"] == {"transformer": {column: out["events_selected"]}}


def test_ml_met_fit_without_mlmet_names_the_column(pu60_file: Path) -> None:
    with pytest.raises(ValueError, match=r"MLMET, .*coffea_mlreco\.met\.reconstruct"):
        ditau.reconstruct(_open(pu60_file), methods=("fastmtt_mlmet",))


def test_dask_chain_equals_eager(pu60_file: Path, with_met: Any, dask_client: Any) -> None:
    """met.reconstruct then ditau.reconstruct on dask-awkward events: the same masses as eagerly."""
    del dask_client  # computed on the session's client
    methods = ("fastmtt", "fastmtt_mlmet")
    lazy = met.reconstruct(_open(pu60_file, "dask"), methods=("puppi", "perceiver"), device="cpu")
    lazy = ditau.reconstruct(lazy, methods=methods).DiTauReco
    (computed,) = dask.compute(lazy)
    eager = ditau.reconstruct(with_met, methods=methods).DiTauReco
    for field in ("mass_fastmtt", "mass_fastmtt_mlmet"):
        np.testing.assert_allclose(to_numpy(computed[field]), to_numpy(eager[field]), rtol=1e-9, equal_nan=True)


def test_processor_appends_met_where_the_file_has_pf_candidates(pu60_file: Path) -> None:
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = runner(
            {"h": {"files": {str(pu60_file): "Events"}}},
            processor_instance=DiTauProcessor(methods=("fastmtt", "fastmtt_mlmet")),
            treename="Events",
        )
    n = out["events_selected"]
    assert n > 40
    assert out["met_columns"] == {"fastmtt": {"PuppiMETReco": n}, "fastmtt_mlmet": {"MLMET": n}}
    # each method's time includes the MET it read: the Perceiver costs far more than the fit
    assert out["seconds"]["fastmtt_mlmet"] > 2 * out["seconds"]["fastmtt"] > 0
    ratio = out["histograms"]["ratio"]
    for method in ("fastmtt", "fastmtt_mlmet"):
        assert ratio[{"method": method}].sum() > 0.9 * n  # the truth is filled for the ML-MET fit too
    assert ak.all(np.array(list(out["events_per_method"].values())) == n)


def test_transformer_trained_on_ml_met_reads_it(pu60_file: Path, tmp_path: Path) -> None:
    """``train ditau --met-input perceiver`` (1 epoch, smallest width) writes ``met_input`` into the card; the
    model then reads MLMET and the FastMTT fit of MLMET, and a model of the file's MET gives other masses."""
    validation = generate_sample("htautau", 200, 60, seed=616, output=tmp_path / "val.root", progress=False)
    out = tmp_path / "model"
    args = ["train", "ditau", "--train", str(pu60_file), "--validation", str(validation), "--epochs", "1"]
    args += ["--dim", "16", "--heads", "2", "--blocks", "1", "--quiet", "--output", str(out)]
    weighting = ["--balance-channels", "--flatten-per-channel", "--mass-loss-weight", "0.3", "--mass-prior-power", "1"]
    assert main([*args, "--met-input", "perceiver", *weighting]) == 0
    card = json.loads((out / "transformer.json").read_text())
    assert card["met_input"] == "perceiver" and card["balance_channels"] is True
    assert card["flatten_per_channel"] is True and card["mass_loss_weight"] == 0.3
    assert card["mass_prior_power"] == 1.0
    events = met.reconstruct(_open(pu60_file), methods=("puppi", "perceiver"), device="cpu")
    wrapper = DITAU_MODELS.load(str(out), device="cpu")
    assert ditau.met_columns(events, ("transformer",), wrapper) == {"transformer": "MLMET"}
    reco = ditau.reconstruct(events, methods=("transformer",), models={"transformer": str(out)}).DiTauReco
    with pytest.raises(ValueError, match="reads the MET column MLMET"):
        ditau.reconstruct(_open(pu60_file), methods=("transformer",), models={"transformer": str(out)})
    # by default, events without MLMET run the methods they can (the fits), not a transformer that needs it
    plain = ditau.reconstruct(_open(pu60_file), models={"transformer": str(out)}).DiTauReco
    assert "mass_fastmtt" in plain.fields and "mass_ml" not in plain.fields
    assert "mass_ml" in ditau.reconstruct(events, models={"transformer": str(out)}).DiTauReco.fields
    as_file = ditau.reconstruct(
        events, methods=("transformer",), models={"transformer": str(out)}, met={"transformer": "file"}
    ).DiTauReco
    selected = to_numpy(reco.channel >= 0, bool)
    assert np.isfinite(to_numpy(reco.mass_ml)[selected]).all()
    assert not np.allclose(to_numpy(reco.mass_ml)[selected], to_numpy(as_file.mass_ml)[selected])
