"""Event topologies are data: shipped YAML files load, symmetries act as declared, bad files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from coffea_mlreco.ttbar.topology import load_topology, shipped_topologies


def test_shipped_topologies_load() -> None:
    assert {"semileptonic_ttbar", "dileptonic_ttbar"} <= set(shipped_topologies())
    semi = load_topology("semileptonic_ttbar")
    assert [p.name for p in semi.particles] == ["t_had", "t_lep"]
    assert semi.output_names == ("had_b", "had_q1", "had_q2", "lep_b")
    assert semi.n_assigned_jets == 4
    assert semi.output_slot("had_q2") == (0, 2)
    dilep = load_topology("dileptonic_ttbar")
    assert all(p.n_jets == 1 and not p.symmetries for p in dilep.particles)


def test_symmetric_permutations_and_canonical_form() -> None:
    t_had = load_topology("semileptonic_ttbar").particle("t_had")
    assert t_had.symmetric_permutations() == [(0, 1, 2), (0, 2, 1)]
    assert t_had.canonical((5, 3, 1)) == (5, 1, 3)
    assert load_topology("semileptonic_ttbar").particle("t_lep").symmetric_permutations() == [(0,)]


def test_user_topology_with_two_symmetry_groups(tmp_path: Path) -> None:
    path = tmp_path / "tth.yaml"
    path.write_text(
        "name: x\nparticles:\n  h: {jets: [b1, b2], symmetries: [[b1, b2]]}\n"
        "  t: {jets: [b, q1, q2], symmetries: [[q1, q2]]}\n"
    )
    topo = load_topology(path)
    assert topo.output_names == ("h_b1", "h_b2", "t_b", "t_q1", "t_q2")
    assert len(topo.particle("h").symmetric_permutations()) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "particles"),
        ("particles:\n  t: {jets: [b, b]}\n", "repeats"),
        ("particles:\n  t: {jets: [b, q], symmetries: [[q, z]]}\n", "symmetry group"),
        ("particles:\n  t: {jets: [b], colour: red}\n", "unknown keys"),
        ("particles:\n  t: {jets: [b]}\noutputs: {x: [t, q]}\n", "output"),
    ],
)
def test_invalid_topologies_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_topology(path)
    with pytest.raises(ValueError, match="no shipped topology"):
        load_topology("no_such_topology")
