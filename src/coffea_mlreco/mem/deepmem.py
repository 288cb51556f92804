"""DeepMEM: a residual MLP that regresses Matrix-Element-Method weights, −log10 P(x|α), one per hypothesis α.

After the DeepMEM seed (CHEP 2023: MoMEMta Drell-Yan weights reproduced with 1.2 % MAPE from 14 inputs).

Inputs, ``features [B, 14]`` in the order of :data:`INPUT_NAMES` (GeV, rad): the two leptons' pT, η, φ, the two
leading jets' pT, η, φ (an absent jet is pT = η = φ = 0, as the seed did), MET magnitude and φ. Build them
with :func:`deepmem_features`. With ``flavour_input`` (default off) a 15th column, :data:`FLAVOUR_NAME`, is 1 for an
e⁺e⁻ and 0 for a μ⁺μ⁻ pair: the MEM weight depends on the flavour through the lepton transfer functions (electron
and muon p_T resolutions differ by up to a factor 2, which changes weights near the Z or Z′ peak by 5–20 %), and
the 14 kinematic inputs alone cannot tell it. Inside the model (so the exported/ONNX model does the same):

1. φ relative to lepton 1 (``phi_relative``, default on): every φ becomes φ − φ_ℓ1 wrapped to [−π, π), and
   φ_ℓ1 itself 0; absent jets and zero MET keep φ = 0. The MEM weight is invariant under a global rotation
   about the beam axis, and with this transform so is the network — it never has to learn the symmetry.
2. ``log_pt`` (default on): pT → log(max(pT, 1 GeV)); invariant masses and the parton momentum fractions are
   products of momenta, which become sums.
3. ``dilepton_features`` (default on): log m_ℓℓ, y_ℓℓ and log pT_ℓℓ of the (massless) lepton pair are appended;
   the Drell-Yan weight is dominated by the resonance in m_ℓℓ and by x₁,₂ = m_ℓℓ e^(±y_ℓℓ)/√s.
Two optional transforms (default off; used by the shipped model):

- ``mirror``: the weight is invariant under the reflection φ → −φ of every object (the matrix element, the PDFs and
  the transfer functions depend on azimuthal differences only through cos Δφ and on the MET through its length),
  so after step 1 every relative φ is negated when lepton 2's is negative: lepton 2 then always sits at
  Δφ ∈ [0, π]. Back-to-back Drell-Yan leptons (Δφ ≈ ±π, the densest region) no longer straddle the ±π wrap.
- ``eta_flip``: the weight is also invariant under η → −η of every object (swapping the beams: x₁ ↔ x₂ and
  cos θ* → −cos θ* leave the sum over both beam orientations unchanged; the transfer functions depend on |η|), so
  every η (and the dilepton rapidity) is negated when the lepton pair has p_z < 0: the network sees y_ℓℓ ≥ 0 only.
- ``met_components``: MET_x′, MET_y′ (GeV, linear) in the lepton-1 frame are appended: the MET transfer function is a
  Gaussian in the MET vector, so log P is close to a quadratic in these two numbers.
- ``met_sigma`` (GeV; needs ``met_components``): the network predicts −log10 P minus the fixed MET term
  log10(e)·MET²/(2σ²) + log10(2πσ²) of an isotropic Gaussian MET transfer function of width σ per component, which
  is added back to the output. With σ the resolution the weights were integrated with (6.55 GeV: the simulation's
  recoil term at the default ΣE_T, :mod:`coffea_mlreco.mem.transfer_functions`) this removes almost all of the MET
  dependence (2 units of log10 P at MET = 20 GeV) from what the network has to learn; the rest is the lepton
  resolutions' share of the recoil balance.
- ``muon_resolution`` = (a, b, k, η_k) and ``electron_resolution`` = (S, C, N) (with ``met_sigma`` or
  ``met_sum_et_resolution``, and ``flavour_input``): that share too. A lepton's true p_T can absorb MET along its
  direction n̂ within its resolution σ_ℓ = p_T r(p_T, η) (muons r = k(η)√((a p_T)² + b²), k for |η| > η_k; electrons
  r = √(S²/E + C² + N²/E²), E = p_T cosh η: :mod:`coffea_mlreco.mem.transfer_functions`), so integrating the lepton
  transfer functions against the MET one gives, to first order, a Gaussian in the MET vector with covariance
  Σ = σ² 1 + σ_ℓ1² n̂₁n̂₁ᵀ + σ_ℓ2² n̂₂n̂₂ᵀ; the term taken out is then ½ log10(e) METᵀΣ⁻¹MET + log10(2π√det Σ).
  For a 400 GeV muon (σ_ℓ ≈ 24 GeV) the isotropic term overestimates −log10 P by several units.
  With these parameters the network also gets log r₁, log r₂ and log σ_m (σ_m = ½ m_ℓℓ √(r₁² + r₂²), the
  dilepton mass resolution) as inputs: the width of a resonance peak as the measurement sees it (Breit–Wigner ⊗
  resolution) changes with them, by a factor 2 at the muon endcap boundary.
- ``met_sum_et_resolution`` = (σ₀, k) (instead of ``met_sigma``; needs ``met_components``): the MET term's width per
  event, σ_u = √(σ₀² + k² ΣE_T) with ΣE_T (GeV) the event's ``MET_sumEt`` — the recoil resolution of
  :class:`coffea_mlreco.mem.transfer_functions.MetResolution` that ``coffea-mlreco mem-weights --use-sum-et``
  integrates with. The model then reads ΣE_T as one more raw input, :data:`SUM_ET_NAME` (after the flavour), and
  the network sees log σ_u in its place. At pileup the MET resolution grows with ΣE_T (σ_u ≈ 7 GeV at PU 0,
  ≈ 26 GeV at PU 60 in the simulation), and a MEM integrated with the PU 0 width gives a MET of 50 GeV a weight
  10⁻¹¹ of what the detector makes of it; with the event's own width the function to learn stays the same at
  every pileup.

4. standardisation with the training set's mean and standard deviation (buffers ``in_mean``/``in_std``, saved
   with the weights).

Network: ``Linear(F → hidden)``, ``blocks`` residual blocks ``h + Linear(act(Linear(LN(h))))`` (pre-norm; the
LayerNorm is optional), ``act(LN(h))``, ``Linear(hidden → H)``; the output is de-standardised with the training
targets' mean and standard deviation (buffers ``out_mean``/``out_std``). ``forward`` returns named outputs,
``neg_log10_weight_<hypothesis>`` [B], each −log10 P; :meth:`DeepMEM.neg_log10_weight` returns them stacked
[B, H].
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from coffea_mlreco.core.columns import to_numpy

__all__ = [
    "ACTIVATIONS",
    "FLAVOUR_NAME",
    "INPUT_NAMES",
    "SUM_ET_NAME",
    "DeepMEM",
    "DeepMEMConfig",
    "deepmem_features",
    "input_names",
    "output_name",
]

INPUT_NAMES: tuple[str, ...] = (
    "lep1_pt",
    "lep1_eta",
    "lep1_phi",
    "lep2_pt",
    "lep2_eta",
    "lep2_phi",
    "jet1_pt",
    "jet1_eta",
    "jet1_phi",
    "jet2_pt",
    "jet2_eta",
    "jet2_phi",
    "met_pt",
    "met_phi",
)
"""The 14 DeepMEM inputs, in column order (GeV, rad)."""
FLAVOUR_NAME = "lep_is_electron"
"""The optional 15th input (``flavour_input``): 1.0 for an e⁺e⁻ pair, 0.0 for μ⁺μ⁻."""
SUM_ET_NAME = "met_sumEt"
"""The optional last input (``met_sum_et_resolution``): the event's ΣE_T (GeV, ``MET_sumEt``)."""

_PT = (0, 3, 6, 9, 12)
_ETA = (1, 4, 7, 10)
_PHI_OWNER = {5: 3, 8: 6, 11: 9, 13: 12}  # φ column → its object's pT column (lepton 1 is the reference)
_N_DILEPTON = 3
_N_MET = 2
_N_RESOLUTION = 3

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
_HYPOTHESIS = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def output_name(hypothesis: str) -> str:
    """Name of the model output that holds −log10 P for ``hypothesis``."""
    return f"neg_log10_weight_{hypothesis}"


@dataclass(frozen=True)
class DeepMEMConfig:
    """Architecture of a :class:`DeepMEM` (what its model card's ``config`` holds).

    Args:
        hypotheses: names of the MEM hypotheses, one output each (identifiers, e.g. ``("dy", "zprime")``).
        hidden: width of the residual stream.
        blocks: number of residual blocks.
        activation: one of :data:`ACTIVATIONS`.
        layer_norm: pre-norm LayerNorm in each block and before the output layer.
        phi_relative, log_pt, dilepton_features: the input transforms of the module docstring.
        flavour_input: expect the 15th input column :data:`FLAVOUR_NAME` (passed through unchanged).
        mirror, met_components: the optional transforms of the module docstring (both need ``phi_relative``).
        eta_flip: the η reflection of the module docstring.
        met_sigma: width (GeV) of the analytic MET term taken out of the regression (None: none; needs
            ``met_components``).
        met_sum_et_resolution: (σ₀ in GeV, k in GeV^½) of a per-event width σ_u = √(σ₀² + k² ΣE_T) of that term
            instead (module docstring; needs ``met_components``, excludes ``met_sigma``; the model then reads the
            :data:`SUM_ET_NAME` input).
        muon_resolution, electron_resolution: lepton resolution parameters of that term (module docstring; both
            or neither; need ``met_sigma`` or ``met_sum_et_resolution``, and ``flavour_input``).
    """

    hypotheses: tuple[str, ...] = ("dy",)
    hidden: int = 256
    blocks: int = 4
    activation: str = "silu"
    layer_norm: bool = True
    phi_relative: bool = True
    log_pt: bool = True
    dilepton_features: bool = True
    flavour_input: bool = False
    mirror: bool = False
    eta_flip: bool = False
    met_components: bool = False
    met_sigma: float | None = None
    met_sum_et_resolution: tuple[float, ...] | None = None
    muon_resolution: tuple[float, ...] | None = None
    electron_resolution: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        hyps = (self.hypotheses,) if isinstance(self.hypotheses, str) else tuple(self.hypotheses)
        object.__setattr__(self, "hypotheses", hyps)
        if not hyps:
            raise ValueError("DeepMEM needs at least one hypothesis")
        bad = [h for h in hyps if not isinstance(h, str) or not _HYPOTHESIS.match(h)]
        if bad:
            raise ValueError(f"hypothesis names must be identifiers (letter, then letters/digits/_): {bad}")
        if len(set(hyps)) != len(hyps):
            raise ValueError(f"hypothesis names repeat: {list(hyps)}")
        if self.hidden < 1 or self.blocks < 0:
            raise ValueError(f"hidden must be ≥ 1 and blocks ≥ 0, got hidden={self.hidden}, blocks={self.blocks}")
        if (self.mirror or self.met_components) and not self.phi_relative:
            raise ValueError("mirror and met_components need phi_relative")
        if self.met_sigma is not None and not (
            self.met_components and math.isfinite(self.met_sigma) and self.met_sigma > 0
        ):
            raise ValueError("met_sigma must be a positive number of GeV and needs met_components")
        if self.met_sum_et_resolution is not None and (self.met_sigma is not None or not self.met_components):
            raise ValueError("met_sum_et_resolution needs met_components and excludes met_sigma (one MET width)")
        for name, size in (("met_sum_et_resolution", 2), ("muon_resolution", 4), ("electron_resolution", 3)):
            value = getattr(self, name)
            if value is not None:
                value = tuple(float(v) for v in value)
                if len(value) != size or not all(math.isfinite(v) and v >= 0 for v in value):
                    raise ValueError(f"{name} must be {size} non-negative numbers, got {value}")
                object.__setattr__(self, name, value)
        if (self.muon_resolution is None) != (self.electron_resolution is None):
            raise ValueError("give both muon_resolution and electron_resolution, or neither")
        if self.met_sum_et_resolution is not None and self.met_sum_et_resolution[0] <= 0:
            raise ValueError("met_sum_et_resolution: σ₀ must be positive (a width of 0 at ΣE_T = 0)")
        if self.muon_resolution is not None and (not self.per_event_met_sigma and self.met_sigma is None):
            raise ValueError("the lepton resolutions of the MET term need met_sigma or met_sum_et_resolution")
        if self.muon_resolution is not None and not self.flavour_input:
            raise ValueError("the lepton resolutions of the MET term need flavour_input")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATIONS)}")

    @property
    def per_event_met_sigma(self) -> bool:
        """Whether the MET term's width comes from each event's ΣE_T (``met_sum_et_resolution``)."""
        return self.met_sum_et_resolution is not None

    @property
    def n_inputs(self) -> int:
        """Columns of the raw ``features`` input: 14, plus one each for ``flavour_input`` and ΣE_T."""
        return len(INPUT_NAMES) + int(self.flavour_input) + int(self.per_event_met_sigma)

    @property
    def n_features(self) -> int:
        """Width of the network input after the transforms."""
        return (
            self.n_inputs
            + (_N_DILEPTON if self.dilepton_features else 0)
            + (_N_MET if self.met_components else 0)
            + (_N_RESOLUTION if self.muon_resolution is not None else 0)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready keyword arguments of :class:`DeepMEM`."""
        out = asdict(self)
        out["hypotheses"] = list(self.hypotheses)
        for name in ("met_sum_et_resolution", "muon_resolution", "electron_resolution"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out


def input_names(flavour_input: bool = False, sum_et: bool = False) -> tuple[str, ...]:
    """Column names of the raw ``features`` input of a model with or without ``flavour_input`` and the ΣE_T input
    (``met_sum_et_resolution``)."""
    return (*INPUT_NAMES, *((FLAVOUR_NAME,) if flavour_input else ()), *((SUM_ET_NAME,) if sum_et else ()))


def _wrap(phi: torch.Tensor) -> torch.Tensor:
    """Angle to [−π, π)."""
    return torch.remainder(phi + math.pi, 2 * math.pi) - math.pi


class _Block(nn.Module):
    def __init__(self, width: int, activation: str, layer_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if layer_norm else nn.Identity()
        self.fc1 = nn.Linear(width, width)
        self.act = ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(width, width)
        nn.init.zeros_(self.fc2.weight)  # every block starts as the identity
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.act(self.fc1(self.norm(h))))


class DeepMEM(nn.Module):
    """Residual MLP ``features [B, 14 (15 with flavour_input)] → −log10 P [B, H]``.

    Keyword arguments are :class:`DeepMEMConfig`'s."""

    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_mean: torch.Tensor
    out_std: torch.Tensor

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = DeepMEMConfig(**config)
        cfg = self.config
        self.hypotheses = cfg.hypotheses
        n_out = len(cfg.hypotheses)
        self.register_buffer("in_mean", torch.zeros(cfg.n_features))
        self.register_buffer("in_std", torch.ones(cfg.n_features))
        self.register_buffer("out_mean", torch.zeros(n_out))
        self.register_buffer("out_std", torch.ones(n_out))
        self.embed = nn.Linear(cfg.n_features, cfg.hidden)
        self.blocks = nn.Sequential(*(_Block(cfg.hidden, cfg.activation, cfg.layer_norm) for _ in range(cfg.blocks)))
        self.norm = nn.LayerNorm(cfg.hidden) if cfg.layer_norm else nn.Identity()
        self.act = ACTIVATIONS[cfg.activation]()
        self.head = nn.Linear(cfg.hidden, n_out)

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        """Raw inputs [B, 14–16] → network inputs [B, F] before standardisation (steps 1–3 of the module docstring;
        the ΣE_T column becomes log σ_u)."""
        names = input_names(self.config.flavour_input, self.config.per_event_met_sigma)
        if features.dim() != 2 or features.shape[1] != len(names):
            raise ValueError(
                f"DeepMEM expects features [B, {len(names)}] ({', '.join(names)}), got shape {tuple(features.shape)}"
            )
        cols = list(features.unbind(1))
        if self.config.met_sum_et_resolution is not None:
            sigma0, k = self.config.met_sum_et_resolution
            cols[-1] = 0.5 * torch.log(sigma0 * sigma0 + k * k * cols[-1].float().clamp(min=0.0))
        if self.config.eta_flip:
            pz = cols[0] * (torch.exp(cols[1]) - torch.exp(-cols[1])) + cols[3] * (
                torch.exp(cols[4]) - torch.exp(-cols[4])
            )
            sign = torch.where(pz < 0, -torch.ones_like(pz), torch.ones_like(pz))
            for c in _ETA:
                cols[c] = cols[c] * sign
        if self.config.dilepton_features:
            extra = _dilepton(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])
        if self.config.phi_relative:
            ref = cols[2]
            for c, owner in _PHI_OWNER.items():
                rel = _wrap(cols[c] - ref)
                cols[c] = rel if c == 5 else torch.where(cols[owner] > 0, rel, torch.zeros_like(rel))
            cols[2] = torch.zeros_like(ref)
            if self.config.mirror:
                sign = torch.where(cols[5] < 0, -torch.ones_like(ref), torch.ones_like(ref))
                for c in _PHI_OWNER:
                    cols[c] = cols[c] * sign
            if self.config.met_components:
                extra_met = [cols[12] * torch.cos(cols[13]), cols[12] * torch.sin(cols[13])]
        if self.config.log_pt:
            for c in _PT:
                cols[c] = torch.log(cols[c].clamp(min=1.0))
        if self.config.dilepton_features:
            cols += extra
        if self.config.met_components:
            cols += extra_met
        if self.config.muon_resolution is not None:
            cols += self._resolution_features(features)
        return torch.stack(cols, dim=1)

    def _resolution_features(self, features: torch.Tensor) -> list[torch.Tensor]:
        """log r₁, log r₂ and log σ_m (GeV) from the raw features [B, 15] (module docstring)."""
        f = features.float()
        is_e = f[:, len(INPUT_NAMES)] > 0.5
        pt1, pt2 = f[:, 0].clamp(min=1.0), f[:, 3].clamp(min=1.0)
        r1 = self._lepton_sigma(pt1, f[:, 1], is_e, log=False) / pt1
        r2 = self._lepton_sigma(pt2, f[:, 4], is_e, log=False) / pt2
        mass = torch.exp(_dilepton(f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4], f[:, 5])[0])
        return [torch.log(r1), torch.log(r2), torch.log(0.5 * mass * torch.sqrt(r1 * r1 + r2 * r2))]

    @torch.no_grad()
    def set_standardisation(self, features: torch.Tensor, neg_log10_weight: torch.Tensor) -> None:
        """Fit the input and output standardisation on the training set: features [N, 14|15], targets [N, H]."""
        x = self.transform(features.to(self.in_mean))
        y = neg_log10_weight.to(self.out_mean)
        if y.dim() != 2 or y.shape != (len(x), len(self.hypotheses)):
            raise ValueError(f"targets must be [N, H] = [{len(x)}, {len(self.hypotheses)}], got {tuple(y.shape)}")
        y = y - self.met_term(x)
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp(min=1e-3))  # a constant column (e.g. the relative φ of lepton 1) → 0
        self.out_mean.copy_(y.mean(0))
        self.out_std.copy_(y.std(0).clamp(min=1e-3))

    def network(self, transformed: torch.Tensor) -> torch.Tensor:
        """Inputs already through :meth:`transform`, [B, F] → −log10 P [B, H] (standardise, blocks, de-standardise).

        Training calls this on inputs transformed once (the transform has no parameters)."""
        x = (transformed - self.in_mean) / self.in_std
        h = self.blocks(self.embed(x))
        return self.head(self.act(self.norm(h))).float() * self.out_std + self.out_mean + self.met_term(transformed)

    def met_term(self, transformed: torch.Tensor) -> torch.Tensor:
        """The analytic MET part of −log10 P, [B, 1] (0 without a MET width; module docstring)."""
        cfg = self.config
        if cfg.met_sigma is None and not cfg.per_event_met_sigma:
            return torch.zeros_like(transformed[:, :1])
        t = transformed.float()
        met = cfg.n_inputs + (_N_DILEPTON if cfg.dilepton_features else 0)  # the met_components columns
        mx, my = t[:, met], t[:, met + 1]  # lepton 1 along x
        var: torch.Tensor | float
        if cfg.per_event_met_sigma:
            var = torch.exp(2 * t[:, cfg.n_inputs - 1])  # the transform put log σ_u in the last raw column
        else:
            assert cfg.met_sigma is not None
            var = cfg.met_sigma * cfg.met_sigma
        if cfg.muon_resolution is None or cfg.electron_resolution is None:
            if isinstance(var, torch.Tensor):
                chi2 = (mx * mx + my * my) / var
                return (0.5 * math.log10(math.e) * chi2 + torch.log10(2 * math.pi * var))[:, None]
            return ((mx * mx + my * my) * (math.log10(math.e) / (2 * var)) + math.log10(2 * math.pi * var))[:, None]
        is_e = t[:, len(INPUT_NAMES)] > 0.5
        s1 = self._lepton_sigma(t[:, 0], t[:, 1], is_e)
        s2 = self._lepton_sigma(t[:, 3], t[:, 4], is_e)
        c, s = torch.cos(t[:, 5]), torch.sin(t[:, 5])  # lepton 2's direction in that frame
        sxx = var + s1 * s1 + s2 * s2 * c * c
        syy = var + s2 * s2 * s * s
        sxy = s2 * s2 * c * s
        det = sxx * syy - sxy * sxy
        chi2 = (syy * mx * mx - 2 * sxy * mx * my + sxx * my * my) / det
        return (0.5 * math.log10(math.e) * chi2 + math.log10(2 * math.pi) + 0.5 * torch.log10(det))[:, None]

    def _lepton_sigma(
        self, pt_col: torch.Tensor, eta: torch.Tensor, is_electron: torch.Tensor, log: bool = True
    ) -> torch.Tensor:
        """σ(p_T) in GeV of the leptons; ``pt_col`` is log p_T when ``log`` and the model has ``log_pt``."""
        pt = torch.exp(pt_col) if (log and self.config.log_pt) else pt_col
        a, b, k, eta_k = self.config.muon_resolution  # type: ignore[misc]
        stochastic, constant, noise = self.config.electron_resolution  # type: ignore[misc]
        muon = torch.where(eta.abs() > eta_k, k * torch.ones_like(pt), torch.ones_like(pt)) * torch.sqrt(
            (a * pt) ** 2 + b * b
        )
        energy = (pt * 0.5 * (torch.exp(eta) + torch.exp(-eta))).clamp(min=1e-6)
        electron = torch.sqrt(stochastic**2 / energy + constant**2 + (noise / energy) ** 2)
        return pt * torch.where(is_electron, electron, muon)

    def neg_log10_weight(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, 14|15] (GeV, rad; :func:`input_names`) → −log10 P [B, H] (hypotheses in config order)."""
        return self.network(self.transform(features))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """features [B, 14|15] → ``{neg_log10_weight_<hypothesis>: [B]}`` (see :func:`output_name`)."""
        out = self.neg_log10_weight(features)
        return {output_name(h): out[:, k] for k, h in enumerate(self.hypotheses)}


def _dilepton(
    pt1: torch.Tensor, eta1: torch.Tensor, phi1: torch.Tensor, pt2: torch.Tensor, eta2: torch.Tensor, phi2: torch.Tensor
) -> list[torch.Tensor]:
    """log m_ℓℓ, y_ℓℓ, log pT_ℓℓ (GeV) of two massless leptons (exp instead of sinh/cosh: ONNX-friendly)."""
    px = pt1 * torch.cos(phi1) + pt2 * torch.cos(phi2)
    py = pt1 * torch.sin(phi1) + pt2 * torch.sin(phi2)
    e1p, e1m, e2p, e2m = torch.exp(eta1), torch.exp(-eta1), torch.exp(eta2), torch.exp(-eta2)
    plus = pt1 * e1p + pt2 * e2p  # E + pz of the pair
    minus = pt1 * e1m + pt2 * e2m  # E − pz
    cosh_deta = 0.5 * (e1p * e2m + e1m * e2p)
    m2 = 2 * pt1 * pt2 * (cosh_deta - torch.cos(phi1 - phi2))
    return [
        0.5 * torch.log(m2.clamp(min=1e-6)),
        0.5 * torch.log(plus.clamp(min=1e-6) / minus.clamp(min=1e-6)),
        0.5 * torch.log((px * px + py * py).clamp(min=1e-6)),
    ]


# ---- feature construction (numpy) ------------------------------------------------------------------------
def _column(record: Mapping[str, Any], field: str, what: str) -> np.ndarray:
    try:
        value = record[field]
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{what} has no field {field!r}") from err
    try:
        return np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):  # awkward or ragged input
        import awkward as ak

        return to_numpy(ak.Array(value), np.float64)


def _leading_two_jets(jets: Mapping[str, Any], n: int) -> np.ndarray:
    """[N, 2, 3] (pT, η, φ) of the two highest-pT jets; absent ones all zero."""
    try:
        pt, eta, phi = (np.asarray(jets[f], dtype=np.float64) for f in ("pt", "eta", "phi"))
        jagged = False
    except (ValueError, TypeError):
        jagged = True
    except KeyError as err:
        raise ValueError(f"jets has no field {err}") from err
    if jagged:  # awkward N * var * float: pad the two leading jets, missing → 0
        import awkward as ak

        arr = {f: ak.Array(jets[f]) for f in ("pt", "eta", "phi")}
        order = ak.argsort(arr["pt"], axis=1, ascending=False)[:, :2]
        pt, eta, phi = (
            np.asarray(
                ak.to_numpy(ak.fill_none(ak.pad_none(arr[f][order], 2, axis=1, clip=True), 0.0)), dtype=np.float64
            )
            for f in ("pt", "eta", "phi")
        )
    if pt.ndim == 1:
        pt, eta, phi = pt[:, None], eta[:, None], phi[:, None]
    if not (pt.ndim == 2 and pt.shape == eta.shape == phi.shape and pt.shape[0] == n):
        raise ValueError(
            f"jets pt/eta/phi must be [N, k] with N = {n} (k ≥ 0 jets, padded), "
            f"got {pt.shape}, {eta.shape}, {phi.shape}"
        )
    present = np.isfinite(pt) & (pt > 0)
    if (~np.isfinite(eta[present])).any() or (~np.isfinite(phi[present])).any():
        raise ValueError("jets: a jet with pT > 0 has a non-finite η or φ")
    key = np.where(present, pt, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")[:, :2]
    out = np.zeros((n, 2, 3))
    for k in range(min(2, pt.shape[1])):
        idx = order[:, k]
        take = present[np.arange(n), idx]
        for j, col in enumerate((pt, eta, phi)):
            out[:, k, j] = np.where(take, col[np.arange(n), idx], 0.0)
    return out


def deepmem_features(
    lep1: Mapping[str, Any],
    lep2: Mapping[str, Any],
    jets: Mapping[str, Any],
    met: Mapping[str, Any],
    *,
    flavour: bool = False,
    sum_et: bool = False,
) -> np.ndarray:
    """The 14 DeepMEM inputs [N, 14] (float32, columns :data:`INPUT_NAMES`; GeV, rad) of N events.

    With ``flavour`` a column :data:`FLAVOUR_NAME` (1.0 e⁺e⁻, 0.0 μ⁺μ⁻) is appended, read from ``lep1``'s
    ``pdgId`` (±11 or ±13), for models with ``flavour_input``; with ``sum_et`` then a column :data:`SUM_ET_NAME`,
    ``met``'s ``sumEt`` (GeV), for models with ``met_sum_et_resolution`` (:func:`input_names` gives the order).

    Args:
        lep1, lep2: ``pt``, ``eta``, ``phi`` arrays [N] of the two leptons (records, dicts or awkward records;
            the order is the caller's convention, e.g. leading first).
        jets: ``pt``, ``eta``, ``phi`` of the jets, either padded numpy arrays [N, k] (absent: pT ≤ 0 or NaN)
            or awkward ``N * var`` arrays; the two highest-pT jets are taken, a missing one is pT = η = φ = 0.
        met: ``pt`` and ``phi`` [N] of the missing transverse momentum.

    φ is passed through as given: the rotation relative to lepton 1 is done by the model (``phi_relative``).

    Raises:
        ValueError: a field is missing, the arrays disagree on N or are not 1-D, a lepton or MET value is not
            finite, a lepton pT is not positive, or a present jet has a non-finite η/φ; with ``flavour``, a
            ``pdgId`` that is not ±11 or ±13; with ``sum_et``, a missing, negative or non-finite ``met.sumEt``.
    """
    columns: list[np.ndarray] = []
    for what, rec in (("lep1", lep1), ("lep2", lep2)):
        columns += [_column(rec, f, what) for f in ("pt", "eta", "phi")]
    met_fields = ("pt", "phi", "sumEt") if sum_et else ("pt", "phi")
    met_cols = [_column(met, f, "met") for f in met_fields]
    n = len(columns[0]) if columns[0].ndim == 1 else -1
    for name, col in zip(
        ("lep1_pt", "lep1_eta", "lep1_phi", "lep2_pt", "lep2_eta", "lep2_phi", *(f"met_{f}" for f in met_fields)),
        columns + met_cols,
        strict=True,
    ):
        if col.ndim != 1 or len(col) != n:
            raise ValueError(f"{name} must be a 1-D array of the same length as lep1_pt ({n}), got shape {col.shape}")
        if not np.isfinite(col).all():
            raise ValueError(f"{name} has {int((~np.isfinite(col)).sum())} non-finite value(s) (NaN/inf)")
    if (columns[0] <= 0).any() or (columns[3] <= 0).any():
        raise ValueError("lepton pT must be positive")
    if (met_cols[0] < 0).any():
        raise ValueError("met_pt must be ≥ 0")
    if sum_et and (met_cols[2] < 0).any():
        raise ValueError("met_sumEt must be ≥ 0")
    lead = _leading_two_jets(jets, n)
    out = np.empty((n, len(input_names(flavour, sum_et))), dtype=np.float32)
    out[:, 0:6] = np.stack(columns, axis=1)
    out[:, 6:9] = lead[:, 0]
    out[:, 9:12] = lead[:, 1]
    out[:, 12] = met_cols[0]
    out[:, 13] = met_cols[1]
    if flavour:
        pdg = np.abs(_column(lep1, "pdgId", "lep1"))
        if pdg.shape != (n,) or not np.isin(pdg, (11, 13)).all():
            raise ValueError("lep1.pdgId must be ±11 or ±13 for every event (the flavour input)")
        out[:, 14] = pdg == 11
    if sum_et:
        out[:, -1] = met_cols[2]
    return out
