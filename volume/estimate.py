"""The one result type of every estimator."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Estimate:
    """log_p: natural log of the probability; ci: 95% interval in log space; n_evals: network
    evaluations spent; method: how. bound='upper' when only an upper bound is known (then
    log_p is that bound and ci = (-inf, log_p)); bound='lower' likewise for lower bounds."""

    log_p: float
    ci: tuple[float, float]
    n_evals: int
    method: str
    bound: str | None = None
    reliable: bool = True

    def __post_init__(self):
        if math.isnan(self.log_p) or any(math.isnan(c) for c in self.ci):
            raise ValueError(f"an Estimate may not hold NaN: {self}")

    @property
    def log10_p(self) -> float:
        return self.log_p / math.log(10)

    def to_dict(self) -> dict:
        """JSON-safe: infinite interval ends become None."""
        out = asdict(self)
        out["ci"] = [c if math.isfinite(c) else None for c in self.ci]
        return out

    def __str__(self) -> str:
        lo, hi = self.ci
        kind = (f" ({self.bound} bound)" if self.bound else "") + ("" if self.reliable else " [UNRELIABLE]")
        return (f"log P = {self.log_p:.4g}{kind}, 95% CI [{lo:.4g}, {hi:.4g}] "
                f"(log10 P = {self.log10_p:.3g}; {self.n_evals:,} evals, {self.method})")
