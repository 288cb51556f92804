"""The MEM weight table: what ``coffea-mlreco mem-weights`` writes (`coffea_mlreco.mem.tables`) and
``coffea-mlreco train mem`` reads (`coffea_mlreco.mem.training`).

One ``.npz`` file per table, written with :func:`write_mem_table` and read with :func:`read_mem_table` (no pickles).
Keys, N events and H hypotheses:

==================================  ===========  =====================================================================
key                                 shape/dtype  meaning
==================================  ===========  =====================================================================
``lep{1,2}_pt/_eta/_phi``           [N] f64      the two leptons (GeV, rad; φ in [−π, π]); lepton 1 is the φ reference
``lep{1,2}_pdgId``                  [N] i64      signed PDG id (±11, ±13, ±15)
``jet{1,2}_pt/_eta/_phi``           [N] f64      the two leading jets; an absent jet is pT = η = φ = 0
``met_pt``, ``met_phi``             [N] f64      missing transverse momentum (GeV, rad)
``met_sumEt`` (optional)            [N] f64      ΣE_T (GeV, ``MET_sumEt``), ≥ 0: present exactly when the weights were
                                                 integrated with each event's MET resolution (``mem-weights
                                                 --use-sum-et``), the input of models with a per-event MET width
``hypotheses``                      [H] str      hypothesis names (identifiers), the column order below
``log10_weight``                    [N, H] f64   log10 P(x|α) of the integration (finite)
``log10_weight_err``                [N, H] f64   its uncertainty in log10 units (= relative error of P / ln 10), ≥ 0
``provenance``                      0-d str      JSON object with at least ``file`` and ``generator_seed`` (may be
                                                 null) — e.g. also ``vegas_seed``, ``precision``, ``integrator``
``event`` (optional)                [N] i64      event number in the source file
==================================  ===========  =====================================================================

Any other key, a missing one, a shape mismatch or a non-finite value is a ValueError (failed integrations are
dropped before writing, never stored as NaN).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coffea_mlreco.core.outputs import atomic_file
from coffea_mlreco.mem.deepmem import INPUT_NAMES, DeepMEMConfig

__all__ = ["KINEMATICS", "SUM_ET", "MEMTable", "concat_mem_tables", "read_mem_table", "write_mem_table"]

KINEMATICS: tuple[str, ...] = (
    "lep1_pt",
    "lep1_eta",
    "lep1_phi",
    "lep1_pdgId",
    "lep2_pt",
    "lep2_eta",
    "lep2_phi",
    "lep2_pdgId",
    "jet1_pt",
    "jet1_eta",
    "jet1_phi",
    "jet2_pt",
    "jet2_eta",
    "jet2_phi",
    "met_pt",
    "met_phi",
)
"""Per-event kinematic columns of a MEM weight table."""
SUM_ET = "met_sumEt"
"""The optional per-event ΣE_T column (GeV) of tables integrated with each event's MET resolution."""
_PDGID = ("lep1_pdgId", "lep2_pdgId")
_PDGID = ("lep1_pdgId", "lep2_pdgId")
_REQUIRED = (*KINEMATICS, "hypotheses", "log10_weight", "log10_weight_err", "provenance")
_OPTIONAL = ("event", SUM_ET)
_PROVENANCE_KEYS = ("file", "generator_seed")


@dataclass(frozen=True)
class MEMTable:
    """An in-memory MEM weight table (see the module docstring for the fields and their units)."""

    kinematics: dict[str, np.ndarray]
    hypotheses: tuple[str, ...]
    log10_weight: np.ndarray
    log10_weight_err: np.ndarray
    provenance: dict[str, Any]
    event: np.ndarray | None = None

    def __post_init__(self) -> None:
        missing = [k for k in KINEMATICS if k not in self.kinematics]
        unknown = sorted(set(self.kinematics) - {*KINEMATICS, SUM_ET})
        if missing or unknown:
            raise ValueError(f"MEM table kinematics: missing {missing}, unknown {unknown}")
        names = (*KINEMATICS, *((SUM_ET,) if SUM_ET in self.kinematics else ()))
        kin = {k: np.asarray(self.kinematics[k], dtype=np.int64 if k in _PDGID else np.float64) for k in names}
        n = len(kin["lep1_pt"])
        for k, v in kin.items():
            if v.shape != (n,):
                raise ValueError(f"MEM table column {k!r} has shape {v.shape}, expected ({n},)")
            if not np.isfinite(v).all():
                raise ValueError(f"MEM table column {k!r} has {int((~np.isfinite(v)).sum())} non-finite value(s)")
        if (kin["lep1_pt"] <= 0).any() or (kin["lep2_pt"] <= 0).any():
            raise ValueError("MEM table: lepton pT must be positive")
        for k in _PDGID:
            if not np.isin(np.abs(kin[k]), (11, 13, 15)).all():
                raise ValueError(f"MEM table column {k!r} holds ids other than ±11, ±13, ±15")
        for j in ("jet1", "jet2"):
            if (kin[f"{j}_pt"] < 0).any():
                raise ValueError(f"MEM table: {j}_pt must be ≥ 0 (0 for an absent jet)")
            absent = kin[f"{j}_pt"] == 0
            if (kin[f"{j}_eta"][absent] != 0).any() or (kin[f"{j}_phi"][absent] != 0).any():
                raise ValueError(f"MEM table: an absent {j} (pT = 0) must have η = φ = 0")
        for k in ("met_pt", SUM_ET):
            if k in kin and (kin[k] < 0).any():
                raise ValueError(f"MEM table: {k} must be ≥ 0")
        hyps = DeepMEMConfig(hypotheses=tuple(str(h) for h in np.atleast_1d(self.hypotheses))).hypotheses
        logw = np.asarray(self.log10_weight, dtype=np.float64)
        err = np.asarray(self.log10_weight_err, dtype=np.float64)
        for name, a in (("log10_weight", logw), ("log10_weight_err", err)):
            if a.shape != (n, len(hyps)):
                raise ValueError(f"MEM table {name} has shape {a.shape}, expected (N, H) = ({n}, {len(hyps)})")
            if not np.isfinite(a).all():
                raise ValueError(
                    f"MEM table {name} has {int((~np.isfinite(a)).sum())} non-finite value(s); "
                    "drop failed integrations before writing"
                )
        if (err < 0).any():
            raise ValueError("MEM table log10_weight_err must be ≥ 0")
        if not isinstance(self.provenance, Mapping) or any(k not in self.provenance for k in _PROVENANCE_KEYS):
            raise ValueError(
                f"MEM table provenance must be a mapping with keys {list(_PROVENANCE_KEYS)} "
                f"(values may be null), got {self.provenance!r}"
            )
        try:
            provenance = json.loads(json.dumps(dict(self.provenance)))
        except TypeError as err_:
            raise ValueError(f"MEM table provenance is not JSON-serialisable: {err_}") from err_
        event = None
        if self.event is not None:
            event = np.asarray(self.event)
            if event.shape != (n,) or not np.issubdtype(event.dtype, np.integer):
                raise ValueError(
                    f"MEM table event must be an integer array of shape ({n},), got {event.dtype} {event.shape}"
                )
            event = event.astype(np.int64)
        for name, value in (
            ("kinematics", kin),
            ("hypotheses", hyps),
            ("log10_weight", logw),
            ("log10_weight_err", err),
            ("provenance", provenance),
            ("event", event),
        ):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.kinematics["lep1_pt"])

    @property
    def per_event_met_resolution(self) -> bool:
        """Whether the weights were integrated with each event's MET resolution (the table has ``met_sumEt``)."""
        return SUM_ET in self.kinematics

    def features(self, flavour: bool = False, sum_et: bool = False) -> np.ndarray:
        """The DeepMEM inputs [N, 14] (float32, :data:`~coffea_mlreco.mem.deepmem.INPUT_NAMES`); with
        ``flavour`` one more column, 1.0 for e⁺e⁻ and 0.0 for μ⁺μ⁻ (from ``lep1_pdgId``); with ``sum_et`` then
        ``met_sumEt`` (GeV; a ValueError if the table has none)."""
        columns = [self.kinematics[k] for k in INPUT_NAMES]
        if flavour:
            columns.append(np.abs(self.kinematics["lep1_pdgId"]) == 11)
        if sum_et:
            if not self.per_event_met_resolution:
                raise ValueError(
                    "this MEM table has no met_sumEt: its weights were integrated at the default ΣE_T, not with "
                    "each event's MET resolution (coffea-mlreco mem-weights --use-sum-et)"
                )
            columns.append(self.kinematics[SUM_ET])
        return np.stack(columns, axis=1).astype(np.float32)

    def select(self, index: np.ndarray) -> MEMTable:
        """The events ``index`` (integer or boolean array) as a new table with the same provenance."""
        return MEMTable(
            {k: v[index] for k, v in self.kinematics.items()},
            self.hypotheses,
            self.log10_weight[index],
            self.log10_weight_err[index],
            self.provenance,
            None if self.event is None else self.event[index],
        )

    def in_order(self, hypotheses: Sequence[str]) -> MEMTable:
        """The same table with its weight columns in the order ``hypotheses`` (the same set of names)."""
        if sorted(hypotheses) != sorted(self.hypotheses):
            raise ValueError(f"table hypotheses {list(self.hypotheses)} differ from {list(hypotheses)}")
        cols = [self.hypotheses.index(h) for h in hypotheses]
        return MEMTable(
            self.kinematics,
            tuple(hypotheses),
            self.log10_weight[:, cols],
            self.log10_weight_err[:, cols],
            self.provenance,
            self.event,
        )


def write_mem_table(
    path: str | Path,
    kinematics: Mapping[str, Any],
    hypotheses: Sequence[str],
    log10_weight: np.ndarray,
    log10_weight_err: np.ndarray,
    provenance: Mapping[str, Any],
    event: np.ndarray | None = None,
) -> Path:
    """Validate and write a MEM weight table to ``path`` (must end in ``.npz``; compressed, no pickles).

    The table is written under a temporary name in ``path``'s folder and renamed when complete
    (`coffea_mlreco.core.outputs.atomic_file`): ``path`` holds a whole table or is left as it was.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"a MEM weight table is an .npz file, got {path}")
    table = MEMTable(dict(kinematics), tuple(hypotheses), log10_weight, log10_weight_err, dict(provenance), event)
    arrays: dict[str, np.ndarray] = dict(table.kinematics)
    arrays["hypotheses"] = np.asarray(table.hypotheses, dtype=str)
    arrays["log10_weight"] = table.log10_weight
    arrays["log10_weight_err"] = table.log10_weight_err
    arrays["provenance"] = np.asarray(json.dumps(table.provenance, sort_keys=True))
    if table.event is not None:
        arrays["event"] = table.event
    with atomic_file(path) as partial, partial.open("wb") as stream:
        np.savez_compressed(stream, **arrays)  # type: ignore[arg-type]  # numpy's stub confuses **kwds with allow_pickle
    return path


def read_mem_table(path: str | Path) -> MEMTable:
    """Read and validate a MEM weight table written by :func:`write_mem_table`."""
    with np.load(Path(path), allow_pickle=False) as f:
        keys = set(f.files)
        missing = [k for k in _REQUIRED if k not in keys]
        unknown = sorted(keys - set(_REQUIRED) - set(_OPTIONAL))
        if missing or unknown:
            raise ValueError(f"{path}: not a MEM weight table (missing keys {missing}, unknown keys {unknown})")
        data = {k: f[k] for k in f.files}
    try:
        provenance = json.loads(str(data["provenance"][()]))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: provenance is not JSON: {err}") from err
    return MEMTable(
        {k: data[k] for k in (*KINEMATICS, SUM_ET) if k in data},
        tuple(str(h) for h in np.atleast_1d(data["hypotheses"])),
        data["log10_weight"],
        data["log10_weight_err"],
        provenance,
        data.get("event"),
    )


def concat_mem_tables(tables: Sequence[MEMTable]) -> MEMTable:
    """One table from several with the same hypotheses (columns put in the first table's order).

    The provenance becomes ``{"file": [...], "generator_seed": [...], "parts": [each table's provenance]}``.
    """
    if not tables:
        raise ValueError("no MEM tables to concatenate")
    if len(tables) == 1:
        return tables[0]
    hyps = tables[0].hypotheses
    tables = [t.in_order(hyps) for t in tables]
    per_event = {t.per_event_met_resolution for t in tables}
    if len(per_event) > 1:
        raise ValueError(
            "MEM tables mix two MET resolutions: some were integrated with each event's (met_sumEt, --use-sum-et), "
            "some at the default ΣE_T; their weights are different functions of the same inputs"
        )
    events = [t.event for t in tables if t.event is not None]
    provenance = {
        "file": [t.provenance["file"] for t in tables],
        "generator_seed": [t.provenance["generator_seed"] for t in tables],
        "parts": [t.provenance for t in tables],
    }
    return MEMTable(
        {k: np.concatenate([t.kinematics[k] for t in tables]) for k in tables[0].kinematics},
        hyps,
        np.concatenate([t.log10_weight for t in tables]),
        np.concatenate([t.log10_weight_err for t in tables]),
        provenance,
        np.concatenate(events) if len(events) == len(tables) else None,
    )
