"""The true parameters behind a simulated dataset, in the book's notation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lmmsim.design import INTERCEPT, Design
from lmmsim.frozen import freeze, thaw


@dataclass(frozen=True)
class Truth:
    """True β, variance components and σ_ε of a simulation.

    Parameters
    ----------
    beta : mapping of str to float
        Fixed effects by column name of X.
    sd : mapping of str to mapping of str to float
        For each grouping factor, the SD of each random-effect term (σ_u).
    corr : mapping of str to matrix
        For each grouping factor, the correlation matrix of its terms (ρ).
    sigma_e : float
        Residual SD σ_ε.
    phi : float
        Lag-1 autocorrelation φ of the residuals within a unit (0: independent).
    provenance : mapping
        Where the truth came from (scenario, parameters, seed); informational.
    """

    beta: Mapping[str, float]
    sd: Mapping[str, Mapping[str, float]]
    corr: Mapping[str, tuple[tuple[float, ...], ...]]
    sigma_e: float
    provenance: Mapping[str, Any] = field(default_factory=dict)
    phi: float = 0.0

    def __post_init__(self) -> None:
        for name in ("beta", "sd", "corr", "provenance"):
            object.__setattr__(self, name, freeze(getattr(self, name)))
        object.__setattr__(self, "sigma_e", float(self.sigma_e))
        object.__setattr__(self, "phi", float(self.phi))

    @classmethod
    def from_design(cls, design: Design, provenance: Mapping[str, Any] | None = None) -> Truth:
        """The truth a design encodes."""
        return cls(
            beta=design.beta,
            sd={r.factor: r.sd for r in design.random},
            corr={r.factor: r.corr for r in design.random},
            sigma_e=design.sigma_e,
            provenance=provenance or {},
            phi=design.residual.phi if design.residual is not None else 0.0,
        )

    @property
    def icc(self) -> dict[str, float]:
        """Intraclass correlation of each grouping factor, its share of the variance.

        ICC_k = σ²_k / (Σ_j σ²_j + σ_ε²) with σ_k the SD of factor k's random intercept
        (with slope covariates at zero). For nested factors, observations in the same
        innermost group correlate by the sum of the ICCs of that group and its parents.
        """
        variances = {k: sd.get(INTERCEPT, 0.0) ** 2 for k, sd in self.sd.items()}
        total = sum(variances.values()) + self.sigma_e**2
        return {k: (v / total if total > 0 else 0.0) for k, v in variances.items()}

    def parameters(self) -> dict[str, float]:
        """Every parameter by the name fits use: β by column name, ``sd(term|factor)``,
        ``cor(term1,term2|factor)`` and ``sd(residual)``."""
        out = dict(self.beta)
        for factor, sds in self.sd.items():
            terms = list(sds)
            out.update({f"sd({t}|{factor})": v for t, v in sds.items()})
            for i in range(len(terms)):
                for j in range(i + 1, len(terms)):
                    out[f"cor({terms[i]},{terms[j]}|{factor})"] = self.corr[factor][i][j]
        out["sd(residual)"] = self.sigma_e
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``icc`` is included for readers and ignored on reading;
        ``phi`` only when the residuals are autocorrelated."""
        out = {
            "beta": thaw(self.beta),
            "sd": thaw(self.sd),
            "corr": thaw(self.corr),
            "sigma_e": self.sigma_e,
            "icc": self.icc,
            "provenance": thaw(self.provenance),
        }
        if self.phi != 0:
            out["phi"] = self.phi
        return out

    def to_json(self) -> str:
        """Serialise; floats are written with the shortest repr that reads back exactly."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Truth:
        """Inverse of :meth:`to_dict`."""
        missing = {"beta", "sd", "corr", "sigma_e"} - set(data)
        if missing:
            raise ValueError(f"truth: missing keys {sorted(missing)}")
        return cls(
            beta=data["beta"],
            sd=data["sd"],
            corr={k: tuple(tuple(row) for row in v) for k, v in data["corr"].items()},
            sigma_e=data["sigma_e"],
            provenance=data.get("provenance", {}),
            phi=data.get("phi", 0.0),
        )

    @classmethod
    def from_json(cls, text: str) -> Truth:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
