"""``coffea_mlreco.mem.reconstruct``: Matrix Element Method weights of dilepton events appended to NanoEvents.

One column, ``MEMReco``: a record per event (NaN where a weight was not computed) with, per method,

| method | fields | what |
|---|---|---|
| ``integrated`` | ``logw_<h>_integrated``, ``logw_<h>_integrated_err``, ``d_integrated``, ``integrated`` | VEGAS |
| ``network`` | ``logw_<h>_network``, ``d_network`` | the DeepMEM network |

per hypothesis h. The integration (:func:`coffea_mlreco.mem.mem_log_weights`) runs on at most
``max_integrated_events`` selected events per chunk, the network (:mod:`coffea_mlreco.mem.wrappers`) on every
selected event. Plus ``flavour`` (11 for e⁺e⁻, 13 for μ⁺μ⁻, 0 without a pair; −1 for an invalid event),
``selected`` (the event has a pair) and ``valid`` (its inputs are finite).

Units and conventions: ``logw_<h>_*`` is log₁₀ P(y|h), P in GeV⁻² (the normalised MEM weight of
:mod:`coffea_mlreco.mem.integration`, the network's estimate of the same); ``logw_<h>_integrated_err`` its 1σ Monte
Carlo uncertainty (log₁₀ units); ``d_<method>`` = P_S/(P_S + P_B) with S = ``signal`` (default ``zprime``, a
200 GeV Z′) and B = ``background`` (default ``dy_sm``, Drell-Yan γ*/Z), present when the method computes both
hypotheses; ``integrated`` is True for the events whose weights were integrated.

Selection (:func:`coffea_mlreco.mem.inputs.dilepton_candidates`): the leading opposite-sign same-flavour e/μ pair
(p_T > 15 GeV, |η| < 2.5, 50 < m_ℓℓ < 1000 GeV, isolation and ID where the file has the branches), the two leading
clean jets and the MET. Events without a pair get NaN weights.

Inputs (:func:`input_columns`, what dask-awkward reads): ``Electron`` and ``Muon`` ``pt``, ``eta``, ``phi``,
``mass``, ``charge``, with the isolation (``Electron_pfRelIso03_all``, ``Muon_pfRelIso04_all``) and the ID
(``Electron_mvaIso_WP90``, else ``Electron_mvaFall17V2Iso_WP90``; ``Muon_mediumId``) when the file has them;
``Jet`` ``pt``, ``eta``, ``phi`` and the jet ID (``jetId``, or on NanoAODv15 the energy fractions and
multiplicities it is computed from: :func:`coffea_mlreco.core.nanoaod.jet_id_fields`); ``MET`` (``PFMET`` on
NanoAODv15) ``pt``, ``phi``, and ``sumEt`` where a method takes each event's MET resolution (``use_sum_et``; a
network with a per-event MET width, ``config.met_sum_et_resolution``, and by default the integration beside it).
Both methods read the same branches. No generator (Gen*) branch is read.

Integration: each event integrated uses its own VEGAS random stream, ``default_rng([s, 0])`` with s a 64-bit hash
(BLAKE2b) of ``seed`` and the event's integration inputs (:func:`integration_seeds`), so its weights depend only on
the event — not on the chunk, its position in it, ``n_workers`` or the coffea mode — and eager, virtual and dask runs
give identical columns. (The processor used to seed a chunk with ``seed + entrystart`` and the i-th integrated event
with ``[seed + entrystart, i]``: the same event then got a different weight under another chunking.) *Which*
events are integrated does depend on the chunking when ``max_integrated_events`` caps it: the first
``max_integrated_events`` selected events of each chunk (dask: of each partition); ``None`` integrates all. (An
event with a NaN/inf input is blanked afterwards; under a cap, if its cleaned inputs — non-finite values set to 0 —
lose the pair, the next selected event of the chunk takes its integration slot.) The
integration costs a few ms per event and hypothesis at 1 % on one core, the network µs. The PDFs are the LHAPDF grids
shipped with ``pythia8mc`` (``$PYTHIA8DATA/../pdfdata``, else ``<sys.prefix>/share/Pythia8/pdfdata``;
:func:`coffea_mlreco.mem.pdf.pdf_data_dir`), read on each worker.

Network: ``models={"network": ...}`` takes a shipped name (default ``deepmem``), a model directory written by
``coffea-mlreco train mem --output DIR`` (one card + weights) or a :class:`~coffea_mlreco.mem.wrappers.DeepMEMWrapper`.
The network's hypotheses are its card's (``config.hypotheses``); the integrated ones default to the same (or
``(background, signal)`` without a network).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, MutableMapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events, InputColumns, reconstruct_columns, to_numpy
from coffea_mlreco.core.methods import choose_methods
from coffea_mlreco.core.nanoaod import jet_id_fields, met_collection
from coffea_mlreco.core.timing import timed
from coffea_mlreco.mem.hypothesis import Hypothesis, load_hypothesis
from coffea_mlreco.mem.inputs import (
    DEFAULT_DILEPTON_SELECTION,
    DileptonSelection,
    dilepton_candidates,
    integration_inputs,
)
from coffea_mlreco.mem.integration import mem_log_weights
from coffea_mlreco.mem.methods import MEM_METHODS
from coffea_mlreco.mem.transfer_functions import TransferFunctions
from coffea_mlreco.mem.wrappers import DEFAULT_MEM_MODEL, MEM_MODELS, DeepMEMWrapper

__all__ = [
    "COLUMN",
    "METHODS",
    "MEMReconstruction",
    "default_methods",
    "discriminant",
    "input_columns",
    "integration_seeds",
    "mem_network",
    "reconstruct",
    "supported_methods",
]

METHODS: tuple[str, ...] = MEM_METHODS.names
"""The MEM weights: VEGAS integration and the DeepMEM network, in the order of the report
(:data:`coffea_mlreco.mem.methods.MEM_METHODS`)."""
COLUMN = "MEMReco"
"""The column :func:`reconstruct` appends."""
DEFAULT_SQRT_S = 13600.0
"""pp centre-of-mass energy of the integration (GeV) unless ``sqrt_s`` is given."""

_KINEMATICS = ("pt", "eta", "phi", "mass", "charge")
_ISOLATION = {"Electron": "pfRelIso03_all", "Muon": "pfRelIso04_all"}


def _fields(events: Events, collection: str) -> set[str]:
    return set(events[collection].fields) if collection in events.fields else set()


def input_columns(
    events: Events,
    methods: Sequence[str] = METHODS,
    *,
    use_sum_et: bool = False,
    selection: DileptonSelection = DEFAULT_DILEPTON_SELECTION,
) -> InputColumns:
    """The columns the MEM ``methods`` read on these events (module docstring): the lepton kinematics always, the
    isolation/ID/jet-ID branches the selection uses where the file has them, ``MET_sumEt`` with ``use_sum_et``.
    Both methods read the same columns (``methods`` is accepted for the uniform interface)."""
    columns: dict[str, tuple[str, ...] | None] = {}
    for name, ids in (("Electron", selection.electron_id), ("Muon", selection.muon_id)):
        present = _fields(events, name)
        optional = [_ISOLATION[name], *[b for b in ids if b in present][:1]]
        columns[name] = (*_KINEMATICS, *(b for b in optional if b in present))
    jet = ("pt", "eta", "phi")
    columns["Jet"] = (*jet, *(f for f in jet_id_fields(events) if f not in jet))
    columns[met_collection(events)] = ("pt", "phi", *(("sumEt",) if use_sum_et else ()))
    return columns


def supported_methods(events: Events) -> tuple[str, ...]:
    """Both methods when the file has the lepton kinematics, ``Jet`` ``pt``/``eta``/``phi`` with the jet-ID
    branches and ``MET`` (``PFMET``) ``pt``/``phi``, else none (plain NanoAOD v9–v15 has them all)."""
    needed = {
        "Electron": set(_KINEMATICS),
        "Muon": set(_KINEMATICS),
        "Jet": {"pt", "eta", "phi", *jet_id_fields(events)},
        met_collection(events): {"pt", "phi"},
    }
    return METHODS if all(fields <= _fields(events, name) for name, fields in needed.items()) else ()


def default_methods(events: Events, with_network: bool = True) -> tuple[str, ...]:
    """The methods run when none is asked for: every method the file supports (:func:`supported_methods`; both
    where it lacks a branch, which the input check then names), the network only ``with_network`` (when a model is
    given or shipped; a checkout may lack the shipped weights)."""
    chosen = supported_methods(events) or METHODS
    return chosen if with_network else tuple(m for m in chosen if m != "network")


def discriminant(log10_signal: Any, log10_background: Any) -> np.ndarray:
    """d = P_S/(P_S + P_B) = 1/(1 + 10^(log₁₀ P_B − log₁₀ P_S)) from log₁₀ weights (overflow-safe; NaN in → NaN)."""
    llr = np.asarray(log10_signal, np.float64) - np.asarray(log10_background, np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.power(10.0, -llr))


def integration_seeds(
    lep1: Mapping[str, np.ndarray], lep2: Mapping[str, np.ndarray], met: Mapping[str, np.ndarray], seed: int = 0
) -> list[int]:
    """Per event, the VEGAS seed s of its integration (``default_rng([s, 0])``): the first 8 bytes (little endian)
    of BLAKE2b over ``seed`` (8 bytes) and the event's float64 inputs — ``pt``, ``eta``, ``phi``, ``pdgId`` of
    ``lep1`` then ``lep2``, then the ``met`` fields in sorted order (``phi``, ``pt`` and ``sumEt`` when given).
    A function of the event alone: the same event gets the same stream in any chunk."""
    if seed < 0:
        raise ValueError("the integration seed must be ≥ 0")
    columns = [np.asarray(lep[f], np.float64) for lep in (lep1, lep2) for f in ("pt", "eta", "phi", "pdgId")]
    columns += [np.asarray(met[f], np.float64) for f in sorted(met)]
    rows = np.ascontiguousarray(np.stack(columns, axis=1)) if columns[0].size else np.zeros((0, len(columns)))
    prefix = int(seed).to_bytes(8, "little")
    return [int.from_bytes(hashlib.blake2b(prefix + row.tobytes(), digest_size=8).digest(), "little") for row in rows]


def _integrate_block(job: tuple) -> np.ndarray:
    """[n, hypotheses, 2] (log₁₀ P, its error) of a block of events, each with its own seed."""
    lep1, lep2, met, seeds, hypotheses, precision, sqrt_s, transfer = job
    out = np.empty((len(seeds), len(hypotheses), 2))
    for i, event_seed in enumerate(seeds):
        one_lep1, one_lep2, one_met = ({f: v[i : i + 1] for f, v in part.items()} for part in (lep1, lep2, met))
        for k, hyp in enumerate(hypotheses):
            result = mem_log_weights(
                one_lep1, one_lep2, one_met, hyp, precision=precision, seed=event_seed, sqrt_s=sqrt_s, transfer=transfer
            )
            out[i, k] = result.log10_weight[0], result.log10_weight_err[0]
    return out


def _integrate(
    candidates: ak.Array,
    hypotheses: Sequence[Hypothesis],
    *,
    precision: float,
    seed: int,
    n_workers: int,
    use_sum_et: bool,
    sqrt_s: float,
) -> np.ndarray:
    """[n, hypotheses, 2] weights of *selected* candidates, every event seeded by :func:`integration_seeds`."""
    lep1, lep2, met = integration_inputs(candidates, use_sum_et)
    seeds = integration_seeds(lep1, lep2, met, seed)
    transfer = TransferFunctions.from_detector()
    n = len(seeds)
    if n_workers <= 1 or n <= 1:
        return _integrate_block((lep1, lep2, met, seeds, tuple(hypotheses), precision, sqrt_s, transfer))
    bounds = np.linspace(0, n, min(n, 4 * n_workers) + 1).astype(int)
    jobs = [
        (
            *({f: v[lo:hi] for f, v in part.items()} for part in (lep1, lep2, met)),
            seeds[lo:hi],
            tuple(hypotheses),
            precision,
            sqrt_s,
            transfer,
        )
        for lo, hi in itertools.pairwise(bounds)
        if hi > lo
    ]
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        return np.concatenate(list(pool.map(_integrate_block, jobs)), axis=0)


def _declared_record(events: Events, columns: InputColumns) -> ak.Array:
    """A plain record array of exactly the declared columns (the selection reads nothing else)."""
    return ak.zip(
        {name: ak.zip({f: events[name][f] for f in fields}) for name, fields in columns.items() if fields is not None},
        depth_limit=1,
    )


class MEMReconstruction:
    """The per-chunk MEM kernel: ``kernel(events) -> {"MEMReco": record}`` (see the module docstring).

    ``seconds`` accumulates, per method, the time spent in this process (eager and virtual events: the caller's
    chunks; in dask mode the kernel runs on the workers and only the graph-building placeholder counts here).
    """

    def __init__(
        self,
        methods: Sequence[str],
        columns: InputColumns,
        *,
        network: DeepMEMWrapper | None,
        hypotheses: Sequence[Hypothesis],
        signal: str,
        background: str,
        precision: float,
        max_integrated_events: int | None,
        seed: int,
        n_workers: int,
        use_sum_et: bool,
        sqrt_s: float,
        selection: DileptonSelection = DEFAULT_DILEPTON_SELECTION,
        seconds: MutableMapping[str, float] | None = None,
    ) -> None:
        self.methods = tuple(methods)
        self.columns = dict(columns)
        self.network = network
        self.hypotheses = tuple(hypotheses)
        self.signal, self.background = signal, background
        self.precision, self.max_integrated_events = precision, max_integrated_events
        self.seed, self.n_workers, self.use_sum_et, self.sqrt_s = seed, n_workers, use_sum_et, sqrt_s
        self.selection = selection
        self.seconds: MutableMapping[str, float] = {} if seconds is None else seconds

    def _add_discriminant(self, fields: dict[str, np.ndarray], method: str, hypotheses: Sequence[str]) -> None:
        if self.signal in hypotheses and self.background in hypotheses:
            fields[f"d_{method}"] = discriminant(
                fields[f"logw_{self.signal}_{method}"], fields[f"logw_{self.background}_{method}"]
            )

    def _integrated(self, sel: ak.Array, sel_index: np.ndarray, n: int) -> dict[str, np.ndarray]:
        k = len(sel_index) if self.max_integrated_events is None else min(len(sel_index), self.max_integrated_events)
        with timed(self.seconds, "integrated"):
            weights = (
                _integrate(
                    sel[:k],
                    self.hypotheses,
                    precision=self.precision,
                    seed=self.seed,
                    n_workers=self.n_workers,
                    use_sum_et=self.use_sum_et,
                    sqrt_s=self.sqrt_s,
                )
                if k
                else np.zeros((0, len(self.hypotheses), 2))
            )
        fields: dict[str, np.ndarray] = {}
        for j, hyp in enumerate(self.hypotheses):
            for suffix, column in (("integrated", 0), ("integrated_err", 1)):
                values = np.full(n, np.nan)
                values[sel_index[:k]] = weights[:, j, column]
                fields[f"logw_{hyp.name}_{suffix}"] = values
        self._add_discriminant(fields, "integrated", [h.name for h in self.hypotheses])
        done = np.zeros(n, bool)
        done[sel_index[:k]] = True
        fields["integrated"] = done
        return fields

    def _network(self, sel: ak.Array, sel_index: np.ndarray, n: int) -> dict[str, np.ndarray]:
        assert self.network is not None
        with timed(self.seconds, "network"):
            out = self.network(sel) if len(sel_index) else None  # no model load for an empty chunk or the placeholder
        fields: dict[str, np.ndarray] = {}
        for h in self.network.hypotheses:
            values = np.full(n, np.nan)
            if out is not None:
                values[sel_index] = to_numpy(out[f"logw_{h}"], np.float64)
            fields[f"logw_{h}_network"] = values
        self._add_discriminant(fields, "network", self.network.hypotheses)
        return fields

    def __call__(self, events: Events) -> ak.Array:
        candidates = dilepton_candidates(_declared_record(events, self.columns), self.selection)
        selected = to_numpy(candidates.selected, bool)
        sel_index = np.flatnonzero(selected)
        sel = candidates[selected]
        n = len(selected)
        fields: dict[str, np.ndarray] = {}
        if "integrated" in self.methods:
            fields.update(self._integrated(sel, sel_index, n))
        if "network" in self.methods:
            fields.update(self._network(sel, sel_index, n))
        fields["flavour"] = to_numpy(candidates.flavour, np.int64)
        fields["selected"] = selected
        return ak.zip({COLUMN: ak.zip(fields, depth_limit=1)}, depth_limit=1)


def mem_network(
    models: Mapping[str, Any] | None = None, device: str = "auto", *, required: bool = True
) -> DeepMEMWrapper | None:
    """The DeepMEM wrapper of ``models["network"]`` (shipped name, model directory or wrapper; default the shipped
    ``deepmem``). Without a shipped model and none given: None when not ``required``, else a ValueError."""
    models = dict(models or {})
    unknown = set(models) - {"network"}
    if unknown:
        raise ValueError(f"models= keys must be among ('network',), not {sorted(unknown)}")
    spec = models.get("network")
    if isinstance(spec, DeepMEMWrapper):
        return spec
    if spec is None:
        if DEFAULT_MEM_MODEL not in MEM_MODELS.names():
            if required:
                raise ValueError(f"no shipped DeepMEM model {DEFAULT_MEM_MODEL!r}; give one with models=")
            return None
        spec = DEFAULT_MEM_MODEL
    return MEM_MODELS.load(spec, device=device)


def _integration_met_resolution(use_sum_et: bool | None, network: DeepMEMWrapper | None, both_run: bool) -> bool:
    """Whether the integration takes each event's MET resolution (``reconstruct``'s ``use_sum_et``): by default as
    ``network``'s training tables were integrated (the network run, or the one that would run: the given or shipped
    model); a ValueError where the caller asks for the other one and both methods run."""
    if network is None:
        return bool(use_sum_et)
    if use_sum_et is None:
        return network.sum_et_input
    if use_sum_et != network.sum_et_input and both_run:
        trained = "each event's MET resolution (MET_sumEt)" if network.sum_et_input else "the default ΣE_T"
        raise ValueError(
            f"use_sum_et={use_sum_et} integrates another weight than the network learned (its tables were integrated "
            f"with {trained}); leave use_sum_et unset, or run one method"
        )
    return use_sum_et


def reconstruct(
    events: Events,
    *,
    methods: Sequence[str] | None = None,
    models: Mapping[str, Any] | None = None,
    device: str = "auto",
    on_invalid: str = "flag",
    hypotheses: Sequence[str | Hypothesis] | None = None,
    signal: str = "zprime",
    background: str = "dy_sm",
    precision: float = 0.01,
    max_integrated_events: int | None = 1000,
    seed: int = 0,
    n_workers: int = 1,
    use_sum_et: bool | None = None,
    sqrt_s: float = DEFAULT_SQRT_S,
    selection: DileptonSelection = DEFAULT_DILEPTON_SELECTION,
    timings: MutableMapping[str, float] | None = None,
) -> Any:
    """Return ``events`` with ``MEMReco`` appended (fields, units and inputs in the module docstring).

    Works on eager, virtual and dask-awkward NanoEvents (in dask mode nothing is computed: one ``map_partitions``
    reads only :func:`input_columns`). The caller's array is not changed.

    Args:
        methods: among ``integrated``, ``network``; default every method the file supports (:func:`supported_methods`;
            ``network`` only when a model is shipped or given). A method asked for whose inputs are missing raises.
        models: ``{"network": shipped name | model directory | DeepMEMWrapper}`` (default the shipped ``deepmem``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the network.
        on_invalid: ``"flag"``: an event with NaN/inf in an input gets NaN weights, ``selected`` False, ``flavour``
            −1 and ``valid`` False, the others are unaffected; ``"raise"``: raise ``NonFiniteInputError``.
        hypotheses: hypotheses to integrate (shipped names, YAML files or :class:`Hypothesis`; default the network's,
            else ``(background, signal)``). The network computes its own card's hypotheses.
        signal, background: hypothesis names of the discriminant d = P_S/(P_S + P_B).
        precision: target relative uncertainty of each integrated weight.
        max_integrated_events: integrate at most this many selected events per chunk (None: all); the others get NaN.
        seed: base seed of the per-event VEGAS streams (:func:`integration_seeds`).
        n_workers: integration processes per chunk (keep 1 under a futures/dask executor: their workers cannot fork).
        use_sum_et: integrate with the MET resolution from each event's ``MET_sumEt`` (read then) instead of the
            default ΣE_T. Default (None): as the network's training tables were integrated — with each event's
            for a model with a per-event MET width (``config.met_sum_et_resolution``, the shipped ``deepmem``;
            it reads ``MET_sumEt`` itself), else at the default ΣE_T — the given model's, else the shipped one's,
            also when only the integration runs, so that it gives the same weights alone or beside the network.
            Asking for the other one while both methods run is a ValueError: they would compute different weights.
        sqrt_s: pp centre-of-mass energy of the integration (GeV).
        selection: the dilepton selection cuts.
        timings: a dict that receives, per method, the seconds spent (eager and virtual events only).

    Raises:
        MissingBranchError: the file lacks a branch the methods need (e.g. ``Muon_charge``).
        ValueError: an unknown method, hypothesis or model, or invalid settings.
    """
    if max_integrated_events is not None and max_integrated_events < 0:
        raise ValueError("max_integrated_events must be ≥ 0 or None")
    if not 0 < precision < 1 or n_workers < 1 or seed < 0:
        raise ValueError("precision must be in (0, 1), n_workers ≥ 1 and seed ≥ 0")
    has_model = (models or {}).get("network") is not None or DEFAULT_MEM_MODEL in MEM_MODELS.names()
    chosen = choose_methods(methods, MEM_METHODS, default=default_methods(events, has_model))
    network = mem_network(models, device) if "network" in chosen else None
    reference = network if network is not None else mem_network(models, device, required=False)
    use_sum_et = _integration_met_resolution(use_sum_et, reference, network is not None and "integrated" in chosen)
    if hypotheses is None:
        hypotheses = network.hypotheses if network is not None else (background, signal)
    hyps = tuple(load_hypothesis(h) for h in hypotheses) if "integrated" in chosen else ()
    reads_sum_et = use_sum_et or (network is not None and network.sum_et_input)
    columns = input_columns(events, chosen, use_sum_et=reads_sum_et, selection=selection)
    kernel = MEMReconstruction(
        chosen,
        columns,
        network=network,
        hypotheses=hyps,
        signal=signal,
        background=background,
        precision=precision,
        max_integrated_events=max_integrated_events,
        seed=seed,
        n_workers=n_workers,
        use_sum_et=use_sum_et,
        sqrt_s=sqrt_s,
        selection=selection,
        seconds=timings,
    )
    return reconstruct_columns(events, kernel, columns, task="MEM", on_invalid=on_invalid)
