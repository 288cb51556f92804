"""Choosing a shipped model by the pileup it was trained at."""

from __future__ import annotations

import awkward as ak
import pytest

from coffea_mlreco.inference.model_cards import closest_pileup, names_by_pileup


def test_names_by_pileup_reads_the_pu_suffix_of_one_family() -> None:
    names = ["mlpf_pu60", "mlpf_pu200", "perceiver_pu60", "mlpf_test", "mlpf_puX"]
    assert names_by_pileup(names, "mlpf") == {60: "mlpf_pu60", 200: "mlpf_pu200"}
    assert names_by_pileup(names, "deepmet") == {}


def test_closest_pileup_follows_the_chunk_mean() -> None:
    available = {60: "pu60", 200: "pu200"}
    chunk = ak.Array({"Pileup": [{"nTrueInt": 190.0}, {"nTrueInt": 150.0}]})  # mean 170 → 200
    assert closest_pileup(available, chunk) == "pu200"
    assert closest_pileup(available, ak.Array({"Pileup": [{"nTrueInt": 55.0}]})) == "pu60"
    assert closest_pileup(available, ak.Array({"Pileup": [{"nTrueInt": 130.0}]})) == "pu200"  # tie → higher
    # collision data: the good vertices estimate the pileup (2018 data: about 32 good vertices)
    assert closest_pileup(available, ak.Array({"PV": [{"npvsGood": 30}, {"npvsGood": 34}]})) == "pu60"
    assert closest_pileup(available, ak.Array({"PV": [{"npvsGood": 168}]})) == "pu200"
    assert closest_pileup(available, ak.Array({"x": [1.0]})) == "pu200"  # neither branch → highest
    with pytest.raises(ValueError, match="no model"):
        closest_pileup({}, chunk)


def test_one_model_is_chosen_without_reading_the_pileup() -> None:
    """A model given by the user (one entry) needs no pileup column: on dask events that column is not declared."""

    class Unreadable:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"read {name}")

        def __getitem__(self, name: str) -> None:
            raise AssertionError(f"read {name}")

    assert closest_pileup({0: "given"}, Unreadable()) == "given"  # type: ignore[arg-type]
