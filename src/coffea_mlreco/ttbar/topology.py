"""Event topologies for jet-parton assignment, read from YAML (the physics is data, as in SPANet).

A topology names the resonances ("particles") of an event and, for each, the daughters observed as jets (in
a fixed order), the groups of daughters that may be swapped without changing the assignment (e.g. the two
light quarks of a hadronic W), the leptons and neutrinos it decays to, and the truth parton behind each jet
daughter. The shipped topologies live in ``ttbar/topologies/`` (``semileptonic_ttbar``,
``dileptonic_ttbar``); ``load_topology`` also accepts a path to a user's own file of the same form::

    name: semileptonic_ttbar
    particles:
      t_had: {jets: [b, q1, q2], symmetries: [[q1, q2]], truth: {b: had_b, q1: had_q1, q2: had_q2}}
      t_lep: {jets: [b], leptons: [l], neutrinos: [nu], truth: {b: lep_b}}
    outputs: {had_b: [t_had, b], had_q1: [t_had, q1], had_q2: [t_had, q2], lep_b: [t_lep, b]}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["EventTopology", "Particle", "load_topology", "shipped_topologies"]


@dataclass(frozen=True)
class Particle:
    """One resonance of the topology.

    Attributes:
        name: e.g. ``"t_had"``.
        jets: names of the daughters observed as jets, in the order the assignment reports them.
        symmetries: groups of jet daughters that are interchangeable (each a tuple of names).
        leptons, neutrinos: names of the leptonic daughters (not assigned; informative).
        truth: jet daughter → truth parton field (``coffea_mlreco.core.truth.ttbar_partons``).
    """

    name: str
    jets: tuple[str, ...]
    symmetries: tuple[tuple[str, ...], ...] = ()
    leptons: tuple[str, ...] = ()
    neutrinos: tuple[str, ...] = ()
    truth: tuple[tuple[str, str], ...] = ()

    @property
    def n_jets(self) -> int:
        return len(self.jets)

    def symmetric_permutations(self) -> list[tuple[int, ...]]:
        """Every reordering of the jet daughters (as index tuples) that the symmetries allow, identity first.

        E.g. ``[(0, 1, 2), (0, 2, 1)]`` for t_had with q1 ↔ q2. Groups act independently; each group may be
        permuted arbitrarily within itself.
        """
        position = {name: i for i, name in enumerate(self.jets)}
        group_orders = [list(itertools.permutations([position[n] for n in group])) for group in self.symmetries]
        out = []
        for choice in itertools.product(*group_orders):
            order = list(range(self.n_jets))
            for group, permuted in zip(self.symmetries, choice, strict=True):
                for name, target in zip(group, permuted, strict=True):
                    order[position[name]] = target
            out.append(tuple(order))
        return out

    def canonical(self, jets: tuple[int, ...]) -> tuple[int, ...]:
        """The representative of a jet assignment under the symmetries (each group sorted ascending)."""
        position = {name: i for i, name in enumerate(self.jets)}
        out = list(jets)
        for group in self.symmetries:
            slots = [position[n] for n in group]
            for slot, value in zip(slots, sorted(out[s] for s in slots), strict=True):
                out[slot] = value
        return tuple(out)


@dataclass(frozen=True)
class EventTopology:
    """The resonances of an event and the columns an assignment reports (``outputs``: column → (particle,
    daughter))."""

    name: str
    particles: tuple[Particle, ...]
    outputs: tuple[tuple[str, tuple[str, str]], ...]
    description: str = ""

    def particle(self, name: str) -> Particle:
        for p in self.particles:
            if p.name == name:
                return p
        raise KeyError(f"topology {self.name!r} has no particle {name!r}")

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.outputs)

    @property
    def n_assigned_jets(self) -> int:
        return sum(p.n_jets for p in self.particles)

    def output_slot(self, column: str) -> tuple[int, int]:
        """(particle index, daughter index) of an output column."""
        for name, (particle, daughter) in self.outputs:
            if name == column:
                index = [p.name for p in self.particles].index(particle)
                return index, self.particles[index].jets.index(daughter)
        raise KeyError(f"topology {self.name!r} has no output {column!r}")


def _as_tuple(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of names, not {value!r}")
    return tuple(value)


def _particle(name: str, spec: dict[str, Any], source: str) -> Particle:
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: particle {name!r} must be a mapping")
    unknown = set(spec) - {"jets", "symmetries", "leptons", "neutrinos", "truth"}
    if unknown:
        raise ValueError(f"{source}: particle {name!r} has unknown keys {sorted(unknown)}")
    jets = _as_tuple(spec.get("jets"), f"{source}: {name}.jets")
    if not jets:
        raise ValueError(f"{source}: particle {name!r} has no jet daughters to assign")
    if len(set(jets)) != len(jets):
        raise ValueError(f"{source}: particle {name!r} repeats a jet daughter name")
    symmetries = tuple(_as_tuple(g, f"{source}: {name}.symmetries") for g in spec.get("symmetries") or [])
    seen: set[str] = set()
    for group in symmetries:
        if len(group) < 2 or not set(group) <= set(jets) or seen & set(group):
            raise ValueError(
                f"{source}: particle {name!r}: symmetry group {list(group)} must name ≥ 2 of its "
                f"jet daughters {list(jets)}, each in at most one group"
            )
        seen |= set(group)
    truth = spec.get("truth") or {}
    if not isinstance(truth, dict) or not set(truth) <= set(jets):
        raise ValueError(f"{source}: particle {name!r}: truth must map jet daughters to parton names")
    return Particle(
        name,
        jets,
        symmetries,
        _as_tuple(spec.get("leptons"), f"{name}.leptons"),
        _as_tuple(spec.get("neutrinos"), f"{name}.neutrinos"),
        tuple((daughter, str(truth[daughter])) for daughter in jets if daughter in truth),
    )


def _topology_dir() -> Path:
    return Path(str(resources.files(__package__).joinpath("topologies")))


def shipped_topologies() -> list[str]:
    """Names of the topologies shipped with the package."""
    return sorted(p.stem for p in _topology_dir().glob("*.yaml"))


def load_topology(name_or_path: str | Path) -> EventTopology:
    """A shipped topology by name (``"semileptonic_ttbar"``) or a YAML file of the same form.

    Raises:
        ValueError: unknown name, or a file that does not describe a valid topology (the message says what).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = _topology_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            raise ValueError(f"no shipped topology {str(name_or_path)!r}; shipped: {', '.join(shipped_topologies())}")
    spec = yaml.safe_load(path.read_text())
    source = str(path)
    if not isinstance(spec, dict) or not isinstance(spec.get("particles"), dict) or not spec["particles"]:
        raise ValueError(f"{source}: a topology needs a 'particles' mapping")
    particles = tuple(_particle(str(n), s, source) for n, s in spec["particles"].items())
    by_name = {p.name: p for p in particles}
    outputs = []
    for column, target in (spec.get("outputs") or {}).items():
        if (
            not isinstance(target, list)
            or len(target) != 2
            or target[0] not in by_name
            or target[1] not in by_name[target[0]].jets
        ):
            raise ValueError(f"{source}: output {column!r} must be [particle, jet daughter], not {target!r}")
        outputs.append((str(column), (str(target[0]), str(target[1]))))
    if not outputs:  # default: <particle>_<daughter> for every jet daughter
        outputs = [(f"{p.name}_{d}", (p.name, d)) for p in particles for d in p.jets]
    return EventTopology(str(spec.get("name", path.stem)), particles, tuple(outputs), str(spec.get("description", "")))
