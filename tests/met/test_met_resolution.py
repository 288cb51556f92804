"""The per-event MET covariance (``met.resolution``) and ``coffea-mlreco calibrate-met``.

The fit is checked on residuals drawn from a known resolution; the command on two small generated files (PU 0
Drell-Yan and the PU 60 tt̄ dileptonic sample of the MET tests), whose table ``met.reconstruct`` then reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coffea_mlreco import met
from coffea_mlreco.cli import main
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.met.resolution import calibrate_resolution, core_variance, load_resolutions


def test_calibration_recovers_a_known_resolution() -> None:
    """Gaussian residuals with σ = √(5² + k(N_PV)²·Σ) in three pileup groups, k rising with pileup: the table
    gives σ within 5 % at the groups' own N_PV across their Σ range, and in between pileups the interpolation
    lies between the neighbours."""
    rng = np.random.default_rng(3)

    def truth(sum_pt: np.ndarray, npv: np.ndarray) -> np.ndarray:
        return np.sqrt(25.0 + (0.25 + 0.004 * npv) * sum_pt)

    sums, npvs, groups = [], [], []
    for pileup in (0, 60, 200):
        n = 20_000
        sums.append(rng.gamma(4.0, 60.0, n) + 2.0 * pileup)
        npvs.append(np.full(n, 0.7 * pileup + 1.0))
        groups.append(np.full(n, pileup))
    sum_pt, npv, group = (np.concatenate(a) for a in (sums, npvs, groups))
    sigma = truth(sum_pt, npv)
    dx, dy = rng.normal(0.0, sigma), rng.normal(0.0, sigma)
    table, rows = calibrate_resolution(dx, dy, sum_pt, npv, group)
    assert len(rows) == 30 and table.npv == pytest.approx((1.0, 43.0, 141.0))
    for pileup in (0, 60, 200):
        s = np.quantile(sums[[0, 60, 200].index(pileup)], [0.1, 0.5, 0.9])
        n_pv = np.full(3, 0.7 * pileup + 1.0)
        np.testing.assert_allclose(table.sigma_at(s, n_pv), truth(s, n_pv), rtol=0.05)
    middle = table.sigma_at(400.0, 90.0)
    assert table.sigma_at(400.0, 43.0) < middle < table.sigma_at(400.0, 141.0)
    assert table.sigma_at(400.0, 500.0) == table.sigma_at(400.0, 141.0)  # constant beyond the calibration
    pooled, _ = calibrate_resolution(dx, dy, sum_pt, npv, group, pileup_dependent=False)
    assert pooled.npv == (0.0,) and len(pooled.sum_pt[0]) == 30
    assert pooled.sigma_at(1e9, 0.0) == pooled.sigma[0][-1]


def test_core_variance_ignores_tails() -> None:
    rng = np.random.default_rng(4)
    core = rng.normal(0.0, 10.0, 50_000)
    tails = rng.normal(0.0, 200.0, 2_000)  # 4 % badly measured events
    assert np.sqrt(core_variance(np.concatenate([core, tails]))) == pytest.approx(10.0, rel=0.06)
    assert np.std(np.concatenate([core, tails])) > 35.0


def test_shipped_table_covers_every_method_and_records_its_calibration() -> None:
    table = load_resolutions()
    assert set(table) == set(met.METHODS)
    assert len(table["pf"].npv) == 1  # PF's Σ grows with pileup itself
    for method in ("puppi", "deepmet", "perceiver"):  # calibrated at PU 0, 60, 200
        assert len(table[method].npv) == 3
        assert table[method].sigma_at(300.0, 150.0) > table[method].sigma_at(300.0, 1.0)
    shipped = Path(met.__file__).with_name("met_resolution.json")
    calibration = json.loads(shipped.read_text())["calibration"]
    seeds = {int(f["generator"]["seed"]) for f in calibration["files"]}
    pileups = {float(f["generator"]["pileup"]) for f in calibration["files"]}
    assert pileups == {0.0, 60.0, 200.0} and calibration["events"] > 10_000
    assert not seeds & {41, 615}  # the tests' held-out files


def test_bad_table_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"methods": {"puppi": {"npv": [1.0], "sum_pt": [[10.0, 20.0]]}}}))
    with pytest.raises(ValueError, match=r"bad\.json: method 'puppi' lacks sigma"):
        load_resolutions(path)
    path.write_text(json.dumps({"methods": {"puppi": {"npv": [1.0], "sum_pt": [[10.0, 20.0]], "sigma": [[5.0]]}}}))
    with pytest.raises(ValueError, match=r"method 'puppi': each pileup needs ascending"):
        load_resolutions(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="needs a 'methods' object"):
        load_resolutions(path)


def test_calibrate_met_writes_the_table_reconstruct_reads(
    tmp_path: Path, dilep_pu60: Path, generated_nano: Path
) -> None:
    """The command measures PF and PUPPI on a PU 0 and a PU 60 file; ``met.reconstruct(resolution=...)`` then
    gives covariances from that table, larger at PU 60 than at PU 0 for the same method."""
    out = tmp_path / "table.json"
    assert (
        main(
            [
                "calibrate-met",
                str(generated_nano),
                str(dilep_pu60),
                "--methods",
                "pf",
                "puppi",
                "--bins",
                "3",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    table = load_resolutions(out)
    assert set(table) == {"pf", "puppi"}
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    sigma = {}
    for name, path in (("pu0", generated_nano), ("pu60", dilep_pu60)):
        events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
        reco = met.reconstruct(events, methods=("pf", "puppi"), resolution=out)
        cov = to_numpy(reco.PuppiMETReco.covXX, np.float64)
        np.testing.assert_allclose(
            cov, table["puppi"].variance(to_numpy(reco.PuppiMETReco.sumEt), to_numpy(events.PV.npvsGood))
        )
        sigma[name] = np.sqrt(np.median(to_numpy(reco.PFMETReco.covXX, np.float64)))
    assert sigma["pu60"] > 1.5 * sigma["pu0"]
    assert main(["calibrate-met", str(generated_nano), "--output", str(tmp_path)]) == 2  # a folder: refused
