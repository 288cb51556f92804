"""KLFitter-style likelihood fit on generated semileptonic tt̄ events: it must beat the χ², pull the masses to
the poles, and normalise its permutation probabilities."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.core.constants import M_TOP, M_W, W_TOP, W_W
from coffea_mlreco.ttbar.chi2 import btag_allowed, chi2_assignment
from coffea_mlreco.ttbar.inputs import BTAG_MEDIUM_WP, semileptonic_inputs
from coffea_mlreco.ttbar.klfitter import (
    FITTED_MASSES,
    _basis,
    _tf_log,
    _tf_tables,
    klfitter_assignment,
    klfitter_permutations,
)
from coffea_mlreco.ttbar.resolutions import BASES, load_ttbar_parameters

REAL_TT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nano_tt_v12.root"
FIELDS = ("had_b", "had_q1", "had_q2", "lep_b")


def _events(path: Path):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


@pytest.fixture(scope="session")
def tt_sample(tt_assignment):
    """The 2000 pileup-0 events of the χ² tests: selected-event inputs and true jet positions."""
    _, inputs, targets, _ = tt_assignment
    return inputs, targets


@pytest.fixture(scope="session")
def fitted(tt_sample):
    inputs, _ = tt_sample
    return klfitter_assignment(inputs)


def correct(result: ak.Array, targets: ak.Array) -> np.ndarray:
    q_same = (result.had_q1 == targets[:, 1]) & (result.had_q2 == targets[:, 2])
    q_swap = (result.had_q1 == targets[:, 2]) & (result.had_q2 == targets[:, 1])
    return ak.to_numpy((result.had_b == targets[:, 0]) & (result.lep_b == targets[:, 3]) & (q_same | q_swap))


def test_likelihood_fit_beats_chi2(tt_sample, fitted) -> None:
    inputs, targets = tt_sample
    full = ak.to_numpy(inputs.selected & ak.all(targets >= 0, axis=1))
    klf = correct(fitted, targets)[full]
    chi2 = correct(chi2_assignment(inputs), targets)[full]
    assert klf.mean() > chi2.mean()
    assert np.sum(klf & ~chi2) > 2 * np.sum(chi2 & ~klf)  # on the same events, it wins most disagreements
    kinematic = correct(klfitter_assignment(inputs, btag="none"), targets)[full]
    assert klf.mean() > kinematic.mean() + 0.1  # the b-tag term is worth it
    assert kinematic.mean() > 0.3


def test_fit_pulls_masses_to_the_poles(tt_sample, fitted) -> None:
    inputs, targets = tt_sample
    good = ak.to_numpy(inputs.selected) & correct(fitted, targets)
    assert good.sum() > 100
    jets = [inputs.jets[good][ak.singletons(fitted[f][good])][:, 0] for f in FIELDS]
    p4 = [
        np.stack(
            [
                ak.to_numpy(j.pt * np.cos(j.phi)),
                ak.to_numpy(j.pt * np.sin(j.phi)),
                ak.to_numpy(j.pt * np.sinh(j.eta)),
                ak.to_numpy(np.sqrt((j.pt * np.cosh(j.eta)) ** 2 + j.mass**2)),
            ],
            axis=1,
        )
        for j in jets
    ]

    def mass(p: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(p[:, 3] ** 2 - (p[:, :3] ** 2).sum(axis=1), 0))

    for name, measured, pole in (("m_whad", mass(p4[1] + p4[2]), M_W), ("m_thad", mass(p4[0] + p4[1] + p4[2]), M_TOP)):
        fit = ak.to_numpy(fitted[name])[good]
        assert np.median(np.abs(fit - pole)) < 0.5 * np.median(np.abs(measured - pole)), name
        assert abs(np.median(fit) - pole) < 2.0, name
    for name, pole in (("m_wlep", M_W), ("m_tlep", M_TOP)):
        assert abs(np.median(ak.to_numpy(fitted[name])[good]) - pole) < 2.0, name


def test_permutation_probabilities(tt_sample, fitted) -> None:
    inputs, _ = tt_sample
    perms = klfitter_permutations(inputs)
    sel = ak.to_numpy(inputs.selected)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(perms.probability, axis=1))[sel], 1.0, rtol=1e-9)
    assert np.all(ak.num(perms)[~sel] == 0)
    best = ak.argmax(perms.log_likelihood, axis=1, keepdims=True)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(perms.probability[best]))[sel], ak.to_numpy(fitted.event_probability)[sel], rtol=1e-9
    )
    for f in FIELDS:
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(perms[f][best]))[sel], ak.to_numpy(fitted[f])[sel])
    prob = ak.to_numpy(fitted.event_probability)[sel]
    assert np.all((prob > 0) & (prob <= 1))
    assert np.mean(ak.to_numpy(fitted.converged)[sel]) > 0.95


def test_output_conventions(tt_sample, fitted) -> None:
    inputs, _ = tt_sample
    assert ak.fields(fitted) == [
        *FIELDS,
        "log_likelihood",
        "event_probability",
        "nu_pz",
        "nu_eta",
        "converged",
        *FITTED_MASSES,
    ]
    sel = ak.to_numpy(inputs.selected)
    idx = np.stack([ak.to_numpy(fitted[f]) for f in FIELDS], axis=1)
    assert np.all(idx[~sel] == -1) and np.all(np.isnan(ak.to_numpy(fitted.log_likelihood)[~sel]))
    assert not np.any(ak.to_numpy(fitted.converged)[~sel])
    assert np.all((idx[sel] >= 0) & (idx[sel] < 6))
    ordered = np.sort(idx[sel], axis=1)
    assert np.all(ordered[:, 1:] != ordered[:, :-1])
    eta = ak.to_numpy(fitted.nu_eta)[sel]
    assert np.all(np.isfinite(eta)) and np.all(np.isfinite(ak.to_numpy(fitted.nu_pz)[sel]))


def test_veto_mode_fits_only_allowed_permutations(tt_sample) -> None:
    inputs, _ = tt_sample
    sub = inputs[ak.to_numpy(inputs.selected)][:60]
    perms = klfitter_permutations(sub, max_jets=5, btag="veto")
    tagged = sub.jets.btag > BTAG_MEDIUM_WP
    for event in range(len(sub)):
        tags = ak.to_numpy(tagged[event])[:5]
        n_t = int(tags.sum())
        for row in perms[event].to_list():
            allowed = btag_allowed(*(bool(tags[row[f]]) for f in FIELDS), n_t, min(len(tags), 5) - n_t)
            assert math.isnan(row["probability"]) != allowed


def test_transfer_function_kernel_matches_reference() -> None:
    params = load_ttbar_parameters()
    table = _tf_tables(params)
    tfs = [*params.light_jet, *params.b_jet, params.electron, params.muon]
    rng = np.random.default_rng(5)
    for k, tf in enumerate(tfs):
        x_true = rng.uniform(20, 500, 50)
        x_meas = x_true * rng.uniform(0.5, 1.5, 50)
        reference = tf.log_pdf(x_meas, x_true)
        kernel = [_tf_log(k, t, m, table) for t, m in zip(x_true, x_meas, strict=True)]
        np.testing.assert_allclose(kernel, reference, rtol=1e-9, atol=1e-9)
    assert [_basis(BASES.index(b), 4.0) for b in BASES] == [0.25, 0.5, 4.0]


def test_met_resolution_without_covariance(tt_sample, fitted) -> None:
    """Files without MET_cov fall back on the fitted σ(ΣET) or constant MET resolution."""
    inputs, targets = tt_sample
    met = inputs.met
    plain = ak.with_field(inputs, ak.zip({f: met[f] for f in ("pt", "phi", "px", "py")}), "met")
    result = klfitter_assignment(plain)
    full = ak.to_numpy(inputs.selected & ak.all(targets >= 0, axis=1))
    assert abs(correct(result, targets)[full].mean() - correct(fitted, targets)[full].mean()) < 0.1
    with_sumet = ak.with_field(plain, ak.with_field(plain.met, 400.0 + 0.0 * plain.met.pt, "sumEt"), "met")
    assert np.mean(ak.to_numpy(klfitter_assignment(with_sumet).converged)[full]) > 0.95


def test_natural_widths_still_work(tt_sample) -> None:
    inputs, targets = tt_sample
    sub = ak.to_numpy(inputs.selected & ak.all(targets >= 0, axis=1))
    params = dataclasses.replace(load_ttbar_parameters(), bw_width_w=W_W, bw_width_top=W_TOP)
    result = klfitter_assignment(inputs[sub][:80], parameters=params)
    assert np.mean(ak.to_numpy(result.converged)) > 0.8
    assert abs(np.median(ak.to_numpy(result.m_wlep)) - M_W) < 0.5


def test_empty_chunk_and_bad_values(tt_sample) -> None:
    inputs, _ = tt_sample
    assert len(klfitter_assignment(inputs[:0])) == 0
    assert len(klfitter_permutations(inputs[:0])) == 0
    with pytest.raises(ValueError, match="btag"):
        klfitter_assignment(inputs[:5], btag="working_point")
    first = int(np.flatnonzero(ak.to_numpy(inputs.selected))[0])
    pt = ak.to_numpy(ak.flatten(inputs.jets.pt)).astype(np.float64)
    pt[int(ak.sum(inputs.n_jets[:first]))] = np.nan
    jets = ak.with_field(inputs.jets, ak.unflatten(pt, ak.num(inputs.jets)), "pt")
    with pytest.raises(ValueError, match=r"jets\.pt"):
        klfitter_assignment(ak.with_field(inputs, jets, "jets"))


@pytest.mark.filterwarnings("ignore:Missing cross-reference target:RuntimeWarning")  # the file, not us
def test_real_cms_file() -> None:
    if not REAL_TT.is_file():
        pytest.skip(f"real NanoAOD test file {REAL_TT} is absent (only present in the development checkout)")
    inputs = semileptonic_inputs(_events(REAL_TT))
    result = klfitter_assignment(inputs)
    sel = ak.to_numpy(inputs.selected)
    assert sel.sum() > 10
    assert np.all(ak.to_numpy(result.had_b)[sel] >= 0)
    assert np.all(np.isfinite(ak.to_numpy(result.log_likelihood)[sel]))
    assert np.mean(ak.to_numpy(result.converged)[sel]) > 0.9
