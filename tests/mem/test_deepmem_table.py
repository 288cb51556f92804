"""The MEM weight table (write/read round trip and its validation) and the weight MAPE."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coffea_mlreco.mem.deepmem import INPUT_NAMES
from coffea_mlreco.mem.table_schema import KINEMATICS, MEMTable, concat_mem_tables, read_mem_table, write_mem_table
from coffea_mlreco.mem.training import mape, mape_per_hypothesis


def _table_fields(n: int = 50, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    kin: dict[str, np.ndarray] = {}
    for lep in ("lep1", "lep2"):
        kin[f"{lep}_pt"] = 20 + rng.exponential(20, n)
        kin[f"{lep}_eta"] = rng.uniform(-2.4, 2.4, n)
        kin[f"{lep}_phi"] = rng.uniform(-math.pi, math.pi, n)
        kin[f"{lep}_pdgId"] = rng.choice([-13, 13, -11, 11], n)
    for jet in ("jet1", "jet2"):
        has = rng.random(n) < 0.5
        kin[f"{jet}_pt"] = np.where(has, 30 + rng.exponential(30, n), 0.0)
        kin[f"{jet}_eta"] = np.where(has, rng.uniform(-4.7, 4.7, n), 0.0)
        kin[f"{jet}_phi"] = np.where(has, rng.uniform(-math.pi, math.pi, n), 0.0)
    kin["met_pt"], kin["met_phi"] = rng.exponential(20, n), rng.uniform(-math.pi, math.pi, n)
    return {
        "kinematics": kin,
        "hypotheses": ("dy", "zprime"),
        "log10_weight": rng.normal(-12, 2, (n, 2)),
        "log10_weight_err": rng.uniform(0, 0.004, (n, 2)),
        "provenance": {"file": "nano_dy.root", "generator_seed": 7, "vegas_seed": 3, "precision": 0.01},
        "event": np.arange(n, dtype=np.int64) + 1000,
    }


def test_roundtrip(tmp_path: Path) -> None:
    fields = _table_fields()
    path = write_mem_table(tmp_path / "w.npz", **fields)
    table = read_mem_table(path)
    assert len(table) == 50 and table.hypotheses == ("dy", "zprime")
    assert table.provenance == fields["provenance"]
    for k in KINEMATICS:
        np.testing.assert_array_equal(table.kinematics[k], fields["kinematics"][k])
    assert table.kinematics["lep1_pdgId"].dtype == np.int64
    np.testing.assert_array_equal(table.log10_weight, fields["log10_weight"])
    np.testing.assert_array_equal(table.log10_weight_err, fields["log10_weight_err"])
    np.testing.assert_array_equal(table.event, fields["event"])
    x = table.features()
    assert x.shape == (50, 14) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, INPUT_NAMES.index("met_phi")], fields["kinematics"]["met_phi"], rtol=1e-6)
    # the columns can be put in another order, and tables concatenated
    swapped = table.in_order(["zprime", "dy"])
    np.testing.assert_array_equal(swapped.log10_weight[:, 0], table.log10_weight[:, 1])
    both = concat_mem_tables([table, read_mem_table(write_mem_table(tmp_path / "b.npz", **_table_fields(seed=2)))])
    assert len(both) == 100 and both.provenance["generator_seed"] == [7, 7]


def _bad(**change: Any) -> dict[str, Any]:
    fields = _table_fields(5)
    for key, value in change.items():
        if key in fields["kinematics"]:
            fields["kinematics"][key] = value
        else:
            fields[key] = value
    return fields


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"log10_weight": np.full((5, 2), np.nan)}, "log10_weight has 10 non-finite"),
        ({"log10_weight": np.zeros((5, 3))}, r"expected \(N, H\) = \(5, 2\)"),
        ({"log10_weight_err": -np.ones((5, 2))}, "must be ≥ 0"),
        ({"lep1_eta": np.array([0.0, np.nan, 0, 0, 0])}, "'lep1_eta' has 1 non-finite"),
        ({"met_pt": np.zeros(4)}, r"'met_pt' has shape \(4,\)"),
        ({"lep2_pdgId": np.array([13, 13, 22, 13, 13])}, "ids other than"),
        ({"jet1_pt": np.zeros(5), "jet1_eta": np.ones(5)}, "absent jet1"),
        ({"hypotheses": ("dy", "dy")}, "repeat"),
        ({"provenance": {"file": "x.root"}}, "generator_seed"),
    ],
)
def test_invalid_tables_are_rejected(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_mem_table(tmp_path / "bad.npz", **_bad(**change))


def test_unknown_or_missing_keys_and_suffix(tmp_path: Path) -> None:
    fields = _table_fields(5)
    with pytest.raises(ValueError, match=r"unknown \['lep3_pt'\]"):
        MEMTable(
            {**fields["kinematics"], "lep3_pt": np.ones(5)},
            fields["hypotheses"],
            fields["log10_weight"],
            fields["log10_weight_err"],
            fields["provenance"],
        )
    with pytest.raises(ValueError, match=r"\.npz"):
        write_mem_table(tmp_path / "w.parquet", **fields)
    np.savez(tmp_path / "other.npz", lep1_pt=np.ones(3), weight=np.ones(3))
    with pytest.raises(ValueError, match="not a MEM weight table"):
        read_mem_table(tmp_path / "other.npz")


def test_mape_is_the_relative_error_of_the_weight() -> None:
    true = np.array([[-10.0, -3.0], [-12.0, -5.0]])
    # P̂/P = 1.02, 0.95 in column 0 and 1.10, 1.0 in column 1
    pred = true + np.log10([[1.02, 1.10], [0.95, 1.0]])
    np.testing.assert_allclose(mape_per_hypothesis(pred, true), [0.035, 0.05], rtol=1e-12)
    assert mape(pred, true) == pytest.approx(0.0425, rel=1e-12)
    assert mape(pred[:, 0], true[:, 0]) == pytest.approx(0.035, rel=1e-12)
    with pytest.raises(ValueError, match="equal shape"):
        mape(pred, true[:, :1])


def test_roc_auc_of_the_held_out_discriminant() -> None:
    """`core.metrics.roc_auc` (what `held_out_metrics` reports): 1 separated, 0 reversed, ½ for ties."""
    from coffea_mlreco.core.metrics import roc_auc

    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and roc_auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert roc_auc([1.0, 1.0], [1.0]) == 0.5 and roc_auc([1.0, 3.0], [2.0]) == 0.5
    assert math.isnan(roc_auc([], [1.0]))
    rng = np.random.default_rng(1)
    s, b = rng.normal(1, 1, 2000), rng.normal(0, 1, 2000)
    assert roc_auc(s, b) == pytest.approx(0.760, abs=0.02)  # Φ(1/√2) for unit Gaussians one σ apart


def test_per_event_sum_et_column(tmp_path: Path) -> None:
    """``met_sumEt`` (tables integrated with each event's MET resolution) round-trips, is the last feature of a model
    with a per-event MET width, and is never mixed with tables integrated at the default ΣE_T."""
    fields = _table_fields(6)
    sum_et = np.array([150.0, 420.0, 900.0, 1300.0, 2100.0, 2900.0])
    fields["kinematics"]["met_sumEt"] = sum_et
    table = read_mem_table(write_mem_table(tmp_path / "s.npz", **fields))
    assert table.per_event_met_resolution
    np.testing.assert_array_equal(table.kinematics["met_sumEt"], sum_et)
    x = table.features(flavour=True, sum_et=True)
    assert x.shape == (6, 16)
    np.testing.assert_allclose(x[:, -1], sum_et)
    assert table.select(np.array([1, 4])).kinematics["met_sumEt"].tolist() == [420.0, 2100.0]
    assert len(concat_mem_tables([table, table])) == 12
    plain = read_mem_table(write_mem_table(tmp_path / "p.npz", **_table_fields(6)))
    assert not plain.per_event_met_resolution
    with pytest.raises(ValueError, match="no met_sumEt"):
        plain.features(sum_et=True)
    with pytest.raises(ValueError, match="mix two MET resolutions"):
        concat_mem_tables([table, plain])
    fields["kinematics"]["met_sumEt"] = -sum_et
    with pytest.raises(ValueError, match="met_sumEt must be ≥ 0"):
        write_mem_table(tmp_path / "n.npz", **fields)
