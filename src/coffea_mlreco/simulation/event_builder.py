"""One chunk of simulated events, end to end: Pythia → pileup → detector → objects → NanoAOD columns.

`simulate_chunk` returns the chunk as a dict of NanoAOD branch groups (awkward arrays) ready for
`nanoaod_writer`. Everything random comes from Pythia (re-seeded per chunk) and one numpy generator
seeded with (seed, chunk index): a chunk is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coffea_mlreco.core.timing import timed
from coffea_mlreco.simulation.detector import DEFAULT_DETECTOR, DetectorParameters, jet_response_correction
from coffea_mlreco.simulation.element_targets import element_branches
from coffea_mlreco.simulation.elements import VisibleParticles, detector_elements, element_collections, genpart_link
from coffea_mlreco.simulation.gen_record import GenTruth, gen_truth, heavy_flavour
from coffea_mlreco.simulation.objects import (
    RHO_ETA_EDGES,
    Collection,
    btag_discriminant,
    candidate_pt_resolution,
    cluster_jets,
    event_index,
    hadron_flavour,
    isolation,
    missing_momentum,
    nearest_match,
    pileup_density,
)
from coffea_mlreco.simulation.pfcands import pf_from_elements
from coffea_mlreco.simulation.pileup import PileupLibrary, PileupParticles, no_pileup, overlay
from coffea_mlreco.simulation.pythia_source import ParticleRecord, pythia_events

__all__ = ["STAGES", "ChunkSpec", "simulate_chunk"]

STAGES = ("pythia", "truth", "overlay", "detector", "clustering", "objects")
"""The stages of `simulate_chunk` whose wall time can be recorded (benchmarks/generation_throughput.py)."""


_NEUTRINOS = (12, 14, 16)


@dataclass(frozen=True)
class ChunkSpec:
    """What to simulate in one chunk (picklable; workers receive it)."""

    process: str
    n_events: int
    seed: int
    index: int
    pileup: float
    sqrt_s: float
    first_event: int
    elements: bool = False
    """Also write the detector elements and their truth targets (``PFTrack``, ``PFCluster``, ``PFTarget``)."""


def _visible_particles(record: ParticleRecord, pu: PileupParticles, hs_z: np.ndarray) -> VisibleParticles:
    n = record.counts.size
    visible = (record.status > 0) & ~np.isin(np.abs(record.pdg_id), _NEUTRINOS)
    idx = np.flatnonzero(visible)
    pt = np.hypot(record.px[idx], record.py[idx])
    idx, pt = idx[pt > 0], pt[pt > 0]
    event = event_index(record.counts)[idx]
    return VisibleParticles(
        n_events=n,
        event=np.concatenate([event, pu.event]),
        vertex=np.concatenate([np.zeros(idx.size, np.int64), pu.vertex]),
        pt=np.concatenate([pt, pu.pt]),
        eta=np.concatenate([np.arcsinh(record.pz[idx] / pt), pu.eta]),
        phi=np.concatenate([np.arctan2(record.py[idx], record.px[idx]), pu.phi]),
        mass=np.concatenate([record.mass[idx], pu.mass]),
        pdg_id=np.concatenate([record.pdg_id[idx], pu.pdg_id]),
        charge=np.concatenate([record.charge[idx], pu.charge]).astype(np.int32),
        z=np.concatenate([hs_z[event], pu.z]),
        gen_index=np.concatenate([idx, np.full(pu.pt.size, -1, np.int64)]),
    )


def _leptons(
    pf: Collection,
    pf_gen: np.ndarray,
    gen: GenTruth,
    rho: np.ndarray,
    rng: np.random.Generator,
    det: DetectorParameters,
) -> dict[str, Collection]:
    n = pf.counts.size
    c = pf.columns
    ev = event_index(pf.counts)
    out = {}
    for name, pdg, pt_min, eta_max, eff, cone_name, cone in (
        (
            "Electron",
            11,
            det.electron_object_pt_min,
            det.tracker_eta_max,
            det.electron_id_eff,
            "pfRelIso03_all",
            det.electron_iso_cone,
        ),
        ("Muon", 13, det.muon_object_pt_min, det.muon_eta_max, det.muon_id_eff, "pfRelIso04_all", det.muon_iso_cone),
    ):
        sel = (
            (np.abs(c["pdgId"]) == pdg)
            & (c["pt"] > pt_min)
            & (np.abs(c["eta"]) < eta_max)
            & (rng.random(c["pt"].size) < eff)
        )
        lep = Collection(
            np.bincount(ev[sel], minlength=n).astype(np.int64),
            {k: c[k][sel] for k in ("pt", "eta", "phi", "mass", "charge", "pdgId", "dz")},
        )
        lep.columns[cone_name] = isolation(lep, pf, rho, cone)
        lep.columns["genPartIdx"] = genpart_link(pf_gen[sel], gen.genpart_source, gen.genpart_counts, ev[sel])
        out[name] = lep
    return out


def _taus(
    gen: GenTruth, jets: Collection, jet_tau_match: np.ndarray, rng: np.random.Generator, det: DetectorParameters
) -> tuple[Collection, np.ndarray]:
    """Hadronic taus: genuine ones from GenVisTau (efficiency, smearing) plus jets faking taus.

    Also returns, per reconstructed tau (in output order), the flat Pythia index of its generator tau
    (−1 for a jet faking a tau), which links the tau to its decay products.
    """
    v = gen.visible_tau
    v_event = event_index(gen.visible_tau_counts)
    mode = v["status"]
    reco_mode = np.where(mode == 2, 1, mode)
    genuine = (
        (v["pt"] > det.tau_pt_min)
        & (np.abs(v["eta"]) < det.tracker_eta_max)
        & (mode != 15)
        & (rng.random(mode.size) < det.tau_id_eff)
    )
    pt = v["pt"] * (1.0 + det.tau_pt_res * rng.standard_normal(mode.size))
    j = jets.columns
    j_event = event_index(jets.counts)
    fake = (
        (jet_tau_match < 0)
        & (j["pt"] > det.tau_fake_jet_pt_min)
        & (np.abs(j["eta"]) < det.tracker_eta_max)
        & (rng.random(j["pt"].size) < det.tau_fake_rate)
    )
    n_fake = int(fake.sum())
    cols = {
        "pt": np.concatenate([pt[genuine], j["pt"][fake] * rng.uniform(*det.tau_fake_pt_fraction, n_fake)]),
        "eta": np.concatenate([v["eta"][genuine], j["eta"][fake]]),
        "phi": np.concatenate([v["phi"][genuine], j["phi"][fake]]),
        "mass": np.concatenate([v["mass"][genuine], rng.uniform(*det.tau_fake_mass_range, n_fake)]),
        "charge": np.concatenate([v["charge"][genuine], rng.choice([-1, 1], n_fake)]).astype(np.int32),
        "decayMode": np.concatenate([reco_mode[genuine], rng.choice(det.tau_fake_decay_modes, n_fake)]).astype(
            np.int32
        ),
        "genPartIdx": np.concatenate([v["genPartIdxMother"][genuine], np.full(n_fake, -1)]).astype(np.int32),
    }
    source = np.concatenate([gen.visible_tau_source[genuine], np.full(n_fake, -1, np.int64)])
    event = np.concatenate([v_event[genuine], j_event[fake]])
    order = np.lexsort((-cols["pt"], event))
    taus = Collection(
        np.bincount(event, minlength=gen.genmet_pt.size).astype(np.int64), {k: x[order] for k, x in cols.items()}
    )
    return taus, source[order]


def _tau_products(
    taus: Collection, tau_source: np.ndarray, pf: Collection, pf_gen: np.ndarray, gen: GenTruth
) -> Collection:
    """``TauProd``: the PF candidates that come from each reconstructed hadronic tau's decay.

    A candidate belongs to tau k of its event when its generator particle descends from the generator tau
    behind that reconstructed tau (truth link; it stands in for the tau's signal-cone constituents, which
    NanoAOD's ``TauProd`` also lists). ``tauIdx`` indexes the event's ``Tau`` list; within a tau the
    products are ordered by decreasing pT. Fake taus have no products.
    """
    n = taus.counts.size
    tau_event = event_index(taus.counts)
    tau_local = np.arange(tau_source.size) - np.concatenate([[0], np.cumsum(taus.counts)[:-1]])[tau_event]
    genuine = np.flatnonzero(tau_source >= 0)
    by_source = np.argsort(tau_source[genuine])
    sources = tau_source[genuine][by_source]
    anc = np.where(pf_gen >= 0, gen.tau_ancestor[np.maximum(pf_gen, 0)], -1)
    pos = np.clip(np.searchsorted(sources, anc), 0, max(sources.size - 1, 0))
    linked = (anc >= 0) & (sources.size > 0) & (sources[pos] == anc) if sources.size else np.zeros(anc.size, bool)
    which = genuine[by_source][pos[linked]]  # flat index of the reconstructed tau of each linked candidate
    c = pf.columns
    cand_event = event_index(pf.counts)[linked]
    cols = {
        "pt": c["pt"][linked],
        "eta": c["eta"][linked],
        "phi": c["phi"][linked],
        "pdgId": c["pdgId"][linked].astype(np.int32),
        "charge": c["charge"][linked].astype(np.int32),
        "tauIdx": tau_local[which].astype(np.int32),
    }
    order = np.lexsort((-cols["pt"], cols["tauIdx"], cand_event))
    return Collection(np.bincount(cand_event, minlength=n).astype(np.int64), {k: x[order] for k, x in cols.items()})


def simulate_chunk(
    spec: ChunkSpec,
    library: PileupLibrary | None,
    det: DetectorParameters = DEFAULT_DETECTOR,
    timings: dict[str, float] | None = None,
) -> dict[str, object]:
    """Simulate one chunk; returns flat event-level arrays and jagged `Collection`s keyed by NanoAOD name.

    If ``timings`` is given, the wall time of each of `STAGES` is added to it (seconds).
    """
    rng = np.random.default_rng([spec.seed, spec.index, 104729])
    n = spec.n_events
    with timed(timings, "pythia"):
        record = pythia_events(spec.process, n, seed=spec.seed * 100_003 + spec.index, sqrt_s=spec.sqrt_s)
    with timed(timings, "truth"):
        gen = gen_truth(record)
    hs_z = rng.normal(0.0, det.beamspot_sigma_z, n)
    pv_z = hs_z + rng.normal(0.0, det.pv_res_z, n)
    if spec.pileup > 0 and library is None:
        raise ValueError("pileup > 0 needs a minimum-bias library")
    with timed(timings, "overlay"):
        pu = overlay(library, n, spec.pileup, det.beamspot_sigma_z, rng) if library is not None else no_pileup(n)
        particles = _visible_particles(record, pu, hs_z)
    with timed(timings, "detector"):
        collections = element_collections(detector_elements(particles, pu.vertex_z, pv_z, rng, det))
        pf_all = pf_from_elements(collections, det)
    pf = Collection(pf_all.counts, pf_all.columns)
    assert pf_all.gen_index is not None  # pf_from_elements fills it
    with timed(timings, "clustering"):
        chunk, jets, rho_all, jet_tau = _jets(n, particles, pf, gen, rng, det)
    with timed(timings, "objects"):
        chunk.update(_event_objects(n, particles, pf, pf_all.gen_index, gen, jets, jet_tau, rho_all, rng, det))
    chunk.update(
        {
            "run": np.ones(n, np.int32),
            "luminosityBlock": np.full(n, spec.index + 1, np.int32),
            "event": np.arange(spec.first_event + 1, spec.first_event + n + 1, dtype=np.int64),
            "Pileup_nPU": pu.n_pileup.astype(np.int32),
            "Pileup_nTrueInt": np.full(n, spec.pileup, np.float32),
            "PV_x": np.zeros(n),
            "PV_y": np.zeros(n),
            "PV_z": pv_z,
            "GenVtx_z": hs_z,
            "GenMET_pt": gen.genmet_pt,
            "GenMET_phi": gen.genmet_phi,
            "GenPart": Collection(gen.genpart_counts, gen.genpart),
        }
    )
    if spec.elements:
        with timed(timings, "detector"):
            chunk.update(element_branches(collections, pf_all, particles, gen))
    return chunk


def _jets(
    n: int,
    particles: VisibleParticles,
    pf: Collection,
    gen: GenTruth,
    rng: np.random.Generator,
    det: DetectorParameters,
) -> tuple[dict[str, object], Collection, np.ndarray, np.ndarray]:
    """Pileup densities, jets and generator jets of a chunk as branches, and the jets, the per-event pileup density
    ρ (GeV per unit area) and, per jet, its matched visible tau or −1."""
    pf_event = event_index(pf.counts)

    # pileup density from charged-hadron-subtracted candidates (for jets) and from all (for isolation)
    chs = pf.columns["fromPV"] > 0
    rho_ring, _ = pileup_density(
        pf_event[chs], pf.columns["pt"][chs], pf.columns["eta"][chs], pf.columns["phi"][chs], n
    )
    _, rho_all = pileup_density(pf_event, pf.columns["pt"], pf.columns["eta"], pf.columns["phi"], n)

    # jets: anti-kT on CHS candidates, offset-corrected
    c = pf.columns
    raw = cluster_jets(
        np.bincount(pf_event[chs], minlength=n),
        c["pt"][chs],
        c["eta"][chs],
        c["phi"][chs],
        c["mass"][chs],
        det.jet_radius,
        pt_min=det.jet_raw_pt_min,
    )
    area = np.pi * det.jet_radius**2
    ring = np.clip(np.searchsorted(RHO_ETA_EDGES, raw.columns["eta"], side="right") - 1, 0, RHO_ETA_EDGES.size - 2)
    raw_event = event_index(raw.counts)
    offset = rho_ring[raw_event, ring] * area
    scale = np.clip(1.0 - offset / raw.columns["pt"], 0.0, None)
    scale = scale * jet_response_correction(raw.columns["pt"] * scale, det)
    keep = (raw.columns["pt"] * scale > det.jet_pt_min) & (np.abs(raw.columns["eta"]) < det.jet_eta_max)
    jets = raw.select(keep, raw_event, n)
    jets.columns["pt"] = jets.columns["pt"] * scale[keep]
    jets.columns["mass"] = jets.columns["mass"] * scale[keep]
    jets.columns["rawFactor"] = 1.0 - 1.0 / np.maximum(scale[keep], 1e-6)
    jets.columns["area"] = np.full(int(keep.sum()), area)
    order = np.lexsort((-jets.columns["pt"], event_index(jets.counts)))
    jets.columns = {k: v[order] for k, v in jets.columns.items()}

    # generator jets: visible hard-scatter particles
    hs = particles.vertex == 0
    genjets = cluster_jets(
        np.bincount(particles.event[hs], minlength=n),
        particles.pt[hs],
        particles.eta[hs],
        particles.phi[hs],
        particles.mass[hs],
        det.jet_radius,
        pt_min=det.genjet_pt_min,
    )
    gp = gen.genpart
    gp_event = event_index(gen.genpart_counts)
    hf_code = heavy_flavour(gp["pdgId"])
    hadrons = Collection(
        gen.genpart_counts, {"pt": gp["pt"], "eta": gp["eta"], "phi": gp["phi"], "flavour": hf_code}
    ).select(hf_code > 0, gp_event, n)
    jets.columns["hadronFlavour"] = hadron_flavour(jets, hadrons, det.jet_radius)
    genjets.columns["hadronFlavour"] = hadron_flavour(genjets, hadrons, det.jet_radius)
    jets.columns["genJetIdx"] = nearest_match(jets, genjets, det.jet_genjet_match_dr)
    jets.columns["btagDeepFlavB"] = btag_discriminant(jets.columns["hadronFlavour"], jets.columns["eta"], rng, det)
    jets.columns["jetId"] = np.full(jets.columns["pt"].size, 6, np.int32)
    vis_taus = Collection(gen.visible_tau_counts, gen.visible_tau)
    jet_tau = nearest_match(jets, vis_taus, det.tau_jet_match_dr)

    branches: dict[str, object] = {
        "Rho_fixedGridRhoFastjetAll": rho_all,
        "GenVisTau": vis_taus,
        "GenJet": genjets,
        "Jet": jets,
        "PFCands": pf,
    }
    return branches, jets, rho_all, jet_tau


def _event_objects(
    n: int,
    particles: VisibleParticles,
    pf: Collection,
    pf_gen: np.ndarray,
    gen: GenTruth,
    jets: Collection,
    jet_tau: np.ndarray,
    rho_all: np.ndarray,
    rng: np.random.Generator,
    det: DetectorParameters,
) -> dict[str, object]:
    """Leptons, taus, MET and the vertex counts of a chunk."""
    c = pf.columns
    leptons = _leptons(pf, pf_gen, gen, rho_all, rng, det)
    taus, tau_source = _taus(gen, jets, jet_tau, rng, det)
    met = missing_momentum(
        pf.counts, c["pt"], c["phi"], candidate_pt_resolution(c["pt"], c["eta"], c["pdgId"], det), det
    )

    # reconstructed vertices: the PV plus pileup vertices with enough tracks in acceptance (detector.py)
    tracks = (particles.charge != 0) & (np.abs(particles.eta) < det.tracker_eta_max) & (particles.pt > det.track_pt_min)
    per_vertex = np.unique(
        particles.event[tracks & (particles.vertex > 0)] * 100_000 + particles.vertex[tracks & (particles.vertex > 0)],
        return_counts=True,
    )
    vtx_event = per_vertex[0] // 100_000
    npvs = 1 + np.bincount(vtx_event[per_vertex[1] >= det.vertex_min_tracks], minlength=n)
    npvs_good = 1 + np.bincount(vtx_event[per_vertex[1] >= det.vertex_good_min_tracks], minlength=n)

    return {
        "PV_npvs": npvs.astype(np.int32),
        "PV_npvsGood": npvs_good.astype(np.int32),
        **{f"MET_{k}": v for k, v in met.items()},
        "Electron": leptons["Electron"],
        "Muon": leptons["Muon"],
        "Tau": taus,
        "TauProd": _tau_products(taus, tau_source, pf, pf_gen, gen),
    }
