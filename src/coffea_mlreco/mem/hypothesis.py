"""MEM hypotheses for q q̄ → ℓ⁺ℓ⁻: s-channel mediators and their couplings, read from YAML (physics as data).

A hypothesis is a list of s-channel mediators between the quark line and the lepton line, with masses,
widths and couplings, plus the PDF set. The shipped hypotheses live in ``mem/hypotheses/``
(``dy_sm``, ``zprime``, ``zprime_sm``, ``scalar``); ``load_hypothesis`` also reads a user's file::

    name: sm_plus_resonances                # names the logw_<name> column
    description: SM γ*/Z with a Z′ and a scalar (every key below but name and mediators is optional)
    pdf: NNPDF31_lo_as_0118            # optional (default); an lhagrid1 set shipped with Pythia
    interference: true                  # optional (default true): sum amplitudes coherently
    electroweak: {alpha_em: 0.0078154, sin2_theta_w: 0.23122}   # optional; defaults from constants.py
    mediators:
      - {name: photon, type: photon}
      - {name: Z, type: z_boson}        # SM Z; mass/width default to constants.M_Z, W_Z
      - name: zprime
        type: vector
        mass: 200.0                     # GeV
        width: 6.0                      # GeV
        width_scheme: fixed             # fixed (default for vector/scalar) | running (default for z_boson)
        couplings: {preset: sequential, scale: 1.0}          # the SM Z couplings × scale, or explicitly:
        # couplings: {up: {vector: 0.2, axial: 0.3}, down: {left: -0.4, right: 0.08}, lepton: {...}}
      - {name: S, type: scalar, mass: 200.0, width: 2.0, couplings: {up: 0.1, down: 0.1, lepton: 0.1}}

Conventions
    Vector mediator V: vertex −i γ^μ (g_V − g_A γ⁵) = −i γ^μ (g_L P_L + g_R P_R) with g_L = g_V + g_A,
    g_R = g_V − g_A (dimensionless; the photon has g_L = g_R = e Q_f, the SM Z
    g_L = e (T3 − Q s²_W)/(s_W c_W), g_R = −e Q s²_W/(s_W c_W)). Couplings are given per fermion class:
    ``up`` (u, c), ``down`` (d, s, b), ``lepton`` (e, μ; lepton universality), always for the particle
    (the quark and the ℓ⁻). Propagator 1/(ŝ − M² + i M Γ) (``fixed``) or 1/(ŝ − M² + i ŝ Γ/M)
    (``running``, Pythia's choice for the Z); the photon 1/ŝ.
    Scalar mediator S: vertex −i y_f (pure scalar; a pseudoscalar gives the same |M|² for massless
    fermions), propagator as for a vector (``fixed`` by default). For massless fermions the scalar flips helicity, so
    it never interferes with the vectors; scalars interfere among themselves.
    ``interference: false`` adds the mediators' squared amplitudes instead (e.g. signal-only shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from coffea_mlreco.core.constants import ALPHA_EM_MZ, FERMION_CHARGE, FERMION_WEAK_ISOSPIN, M_Z, SIN2_THETA_W, W_Z

__all__ = [
    "FERMIONS",
    "Hypothesis",
    "Mediator",
    "hypothesis_from_dict",
    "load_hypothesis",
    "shipped_hypotheses",
    "standard_model_z_couplings",
]

FERMIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 11, 13)
"""PDG ids (particles) indexing a mediator's coupling tuples: d u s c b e μ."""

_CLASS = {1: "down", 2: "up", 3: "down", 4: "up", 5: "down", 11: "lepton", 13: "lepton"}
_TYPES = ("photon", "z_boson", "vector", "scalar")
_WIDTH_SCHEMES = ("fixed", "running")


@dataclass(frozen=True)
class Mediator:
    """One s-channel mediator.

    Attributes:
        name: label.
        spin: 1 (vector) or 0 (scalar).
        mass, width: GeV (0, 0 for the photon).
        width_scheme: ``"fixed"`` or ``"running"`` (see the module docstring).
        g_left, g_right: couplings to the fermions of :data:`FERMIONS` (dimensionless); for a scalar,
            ``g_left`` holds the Yukawa couplings y_f and ``g_right`` is zero.
    """

    name: str
    spin: int
    mass: float
    width: float
    width_scheme: str
    g_left: tuple[float, ...]
    g_right: tuple[float, ...]

    def coupling(self, pdg_id: int) -> tuple[float, float]:
        """(g_L, g_R) of the fermion ``|pdg_id|`` (for a scalar: (y, 0))."""
        i = FERMIONS.index(abs(pdg_id))
        return self.g_left[i], self.g_right[i]


@dataclass(frozen=True)
class Hypothesis:
    """A hypothesis for q q̄ → ℓ⁺ℓ⁻ at LO: mediators, interference, PDF set and electroweak inputs.

    Attributes:
        name, description: labels (``name`` names the ``logw_<name>`` column).
        mediators: the s-channel mediators.
        interference: sum the amplitudes of same-spin mediators coherently (else their squares).
        pdf: name of the lhagrid1 PDF set (:func:`coffea_mlreco.mem.pdf.load_pdf`).
        alpha_em: α_EM used in all electroweak couplings (fixed, no running).
        sin2_theta_w: sin²θ_W used in the SM Z couplings.
        source: the file it was read from.
    """

    name: str
    description: str
    mediators: tuple[Mediator, ...]
    interference: bool = True
    pdf: str = "NNPDF31_lo_as_0118"
    alpha_em: float = ALPHA_EM_MZ
    sin2_theta_w: float = SIN2_THETA_W
    source: str = ""

    @property
    def resonances(self) -> tuple[tuple[float, float], ...]:
        """(mass, width) in GeV of the massive mediators (used to place integration points)."""
        return tuple((m.mass, m.width) for m in self.mediators if m.mass > 0)


def standard_model_z_couplings(alpha_em: float, sin2_theta_w: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Tree-level (g_L, g_R) of the SM Z to :data:`FERMIONS`: e (T3 − Q s²)/(s c) and −e Q s²/(s c)."""
    e = math.sqrt(4 * math.pi * alpha_em)
    norm = e / math.sqrt(sin2_theta_w * (1 - sin2_theta_w))
    left = tuple(norm * (FERMION_WEAK_ISOSPIN[f] - FERMION_CHARGE[f] * sin2_theta_w) for f in FERMIONS)
    right = tuple(norm * (-FERMION_CHARGE[f] * sin2_theta_w) for f in FERMIONS)
    return left, right


def _fail(source: str, message: str) -> ValueError:
    return ValueError(f"{source}: {message}")


def _check_keys(spec: dict[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise _fail(source, f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _number(value: Any, where: str, source: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, f"{where} must be a finite number, not {value!r}")
    if positive and value <= 0:
        raise _fail(source, f"{where} must be positive, not {value!r}")
    return float(value)


def _vector_couplings(
    spec: Any, where: str, source: str, sm: tuple[tuple[float, ...], tuple[float, ...]]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if not isinstance(spec, dict):
        raise _fail(source, f"{where}: couplings must be a mapping")
    if "preset" in spec:
        _check_keys(spec, {"preset", "scale"}, where, source)
        if spec["preset"] != "sequential":
            raise _fail(source, f"{where}: unknown preset {spec['preset']!r}; known: 'sequential'")
        scale = _number(spec.get("scale", 1.0), f"{where}.scale", source)
        return tuple(scale * g for g in sm[0]), tuple(scale * g for g in sm[1])
    _check_keys(spec, {"up", "down", "lepton"}, where, source)
    by_class: dict[str, tuple[float, float]] = {}
    for cls in ("up", "down", "lepton"):
        c = spec.get(cls)
        if not isinstance(c, dict):
            raise _fail(source, f"{where}.{cls} must be {{vector, axial}} or {{left, right}}")
        if set(c) == {"vector", "axial"}:
            gv, ga = (_number(c[k], f"{where}.{cls}.{k}", source) for k in ("vector", "axial"))
            by_class[cls] = (gv + ga, gv - ga)
        elif set(c) == {"left", "right"}:
            by_class[cls] = (
                _number(c["left"], f"{where}.{cls}.left", source),
                _number(c["right"], f"{where}.{cls}.right", source),
            )
        else:
            raise _fail(
                source, f"{where}.{cls} must have exactly {{vector, axial}} or {{left, right}}, not {sorted(c)}"
            )
    return (tuple(by_class[_CLASS[f]][0] for f in FERMIONS), tuple(by_class[_CLASS[f]][1] for f in FERMIONS))


def _mediator(spec: Any, alpha_em: float, sin2_theta_w: float, source: str) -> Mediator:
    if not isinstance(spec, dict) or "name" not in spec or "type" not in spec:
        raise _fail(source, f"each mediator needs a name and a type, not {spec!r}")
    name, kind = str(spec["name"]), spec["type"]
    where = f"mediator {name!r}"
    if kind not in _TYPES:
        raise _fail(source, f"{where}: unknown type {kind!r}; known: {', '.join(_TYPES)}")
    sm = standard_model_z_couplings(alpha_em, sin2_theta_w)
    if kind == "photon":
        _check_keys(spec, {"name", "type"}, where, source)
        e = math.sqrt(4 * math.pi * alpha_em)
        g = tuple(e * FERMION_CHARGE[f] for f in FERMIONS)
        return Mediator(name, 1, 0.0, 0.0, "fixed", g, g)
    keys = {"name", "type", "mass", "width", "width_scheme"} | ({"couplings"} if kind != "z_boson" else set())
    _check_keys(spec, keys, where, source)
    default_scheme = "running" if kind == "z_boson" else "fixed"
    scheme = spec.get("width_scheme", default_scheme)
    if scheme not in _WIDTH_SCHEMES:
        raise _fail(source, f"{where}: width_scheme must be one of {_WIDTH_SCHEMES}, not {scheme!r}")
    if kind == "z_boson":
        mass = _number(spec.get("mass", M_Z), f"{where}.mass", source, positive=True)
        width = _number(spec.get("width", W_Z), f"{where}.width", source, positive=True)
        return Mediator(name, 1, mass, width, scheme, *sm)
    for required in ("mass", "width", "couplings"):
        if required not in spec:
            raise _fail(source, f"{where}: '{required}' is required for a {kind} mediator")
    mass = _number(spec["mass"], f"{where}.mass", source, positive=True)
    width = _number(spec["width"], f"{where}.width", source, positive=True)
    if kind == "vector":
        return Mediator(name, 1, mass, width, scheme, *_vector_couplings(spec["couplings"], where, source, sm))
    couplings = spec["couplings"]
    if not isinstance(couplings, dict):
        raise _fail(source, f"{where}: couplings must be {{up, down, lepton}} Yukawa couplings")
    _check_keys(couplings, {"up", "down", "lepton"}, f"{where}.couplings", source)
    if set(couplings) != {"up", "down", "lepton"}:
        raise _fail(source, f"{where}: couplings need all of up, down, lepton")
    y = {cls: _number(couplings[cls], f"{where}.couplings.{cls}", source) for cls in ("up", "down", "lepton")}
    return Mediator(name, 0, mass, width, scheme, tuple(y[_CLASS[f]] for f in FERMIONS), (0.0,) * len(FERMIONS))


def _hypothesis_dir() -> Path:
    return Path(str(resources.files(__package__).joinpath("hypotheses")))


def shipped_hypotheses() -> list[str]:
    """Names of the hypotheses shipped with the package."""
    return sorted(p.stem for p in _hypothesis_dir().glob("*.yaml"))


def hypothesis_from_dict(spec: Any, source: str = "<dict>") -> Hypothesis:
    """Validate a hypothesis given as a mapping (the YAML's content). Unknown keys and values are errors."""
    if not isinstance(spec, dict):
        raise _fail(source, "a hypothesis must be a mapping")
    _check_keys(spec, {"name", "description", "pdf", "interference", "electroweak", "mediators"}, "hypothesis", source)
    if "name" not in spec or not str(spec["name"]).isidentifier():
        raise _fail(source, "'name' is required and must be an identifier (it names the logw_<name> column)")
    ew = spec.get("electroweak") or {}
    if not isinstance(ew, dict):
        raise _fail(source, "electroweak must be a mapping")
    _check_keys(ew, {"alpha_em", "sin2_theta_w"}, "electroweak", source)
    alpha_em = _number(ew.get("alpha_em", ALPHA_EM_MZ), "electroweak.alpha_em", source, positive=True)
    sin2 = _number(ew.get("sin2_theta_w", SIN2_THETA_W), "electroweak.sin2_theta_w", source, positive=True)
    interference = spec.get("interference", True)
    if not isinstance(interference, bool):
        raise _fail(source, f"interference must be true or false, not {interference!r}")
    mediators = spec.get("mediators")
    if not isinstance(mediators, list) or not mediators:
        raise _fail(source, "'mediators' must be a non-empty list")
    parsed = tuple(_mediator(m, alpha_em, sin2, source) for m in mediators)
    if len({m.name for m in parsed}) != len(parsed):
        raise _fail(source, "mediator names must be unique")
    return Hypothesis(
        str(spec["name"]),
        str(spec.get("description", "")),
        parsed,
        interference,
        str(spec.get("pdf", "NNPDF31_lo_as_0118")),
        alpha_em,
        sin2,
        source,
    )


def load_hypothesis(name_or_path: str | Path | Hypothesis) -> Hypothesis:
    """A shipped hypothesis by name (``"dy_sm"``), a YAML file of the same form, or a :class:`Hypothesis`.

    Raises:
        ValueError: unknown name, or a file that is not a valid hypothesis (the message says what).
    """
    if isinstance(name_or_path, Hypothesis):
        return name_or_path
    path = Path(name_or_path)
    if not path.suffix:
        path = _hypothesis_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            raise ValueError(
                f"no shipped MEM hypothesis {str(name_or_path)!r}; shipped: {', '.join(shipped_hypotheses())}"
            )
    return hypothesis_from_dict(yaml.safe_load(path.read_text()), str(path))
