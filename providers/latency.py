"""Latency priors: the seed's few measurements, extrapolated by one written-down rule.

The seed gives, per model, p50 and p95 for a 5 s 1080p clip and p50 for a 30 s 1080p clip.
The rule (also what the sandbox's own latency knob is meant to match):

1. Median grows linearly with clip length through the two seed points:
   p50(d) = p50_5s + (d - 5) * (p50_30s - p50_5s) / 25, never below a tenth of p50_5s.
2. Latency is lognormal with one spread per model: sigma = ln(p95_5s / p50_5s) / 1.645, so
   p95(d) = p50(d) * p95_5s / p50_5s at every length.
3. Resolution scales both by (pixels / reference pixels) ** resolution_exponent (0.5 by
   default: a 4K clip takes twice as long as 1080p, 720p two thirds) — an assumption the
   catalog marks as such until the ledger has measurements.
4. Inside a model's spike window (Sora: 02:00–04:00 UTC) the spread widens so that the 5 s p95
   is the seed's spike figure; the median is unchanged.
5. A chain of generations (extensions, emulated storyboards) runs one after another: its p50
   is the sum of the steps' p50s, and its p95 the sum of their p95s (an upper bound).
"""

import math
from datetime import datetime

from pydantic import BaseModel

from models import Resolution
from providers.catalog import LatencyPrior

Z95 = 1.6448536269514722

PIXELS: dict[Resolution, int] = {"720p": 1280 * 720, "1080p": 1920 * 1080, "4k": 3840 * 2160}


class LatencyEstimate(BaseModel):
    """Expected latency of a job, in seconds."""

    p50_s: float
    p95_s: float
    sigma: float

    def quantile(self, z: float) -> float:
        """Any quantile of the lognormal, by its standard-normal z (p99: 2.326)."""
        return self.p50_s * math.exp(self.sigma * z)


def in_spike(prior: LatencyPrior, hour: int) -> bool:
    if prior.spike_start_hour is None or prior.spike_end_hour is None:
        return False
    return prior.spike_start_hour <= hour < prior.spike_end_hour


def estimate(
    prior: LatencyPrior, seconds: float, resolution: Resolution, at: datetime
) -> LatencyEstimate:
    """Latency of one generation of `seconds` at `resolution`, submitted at `at` (UTC)."""
    slope = (prior.p50_30s - prior.p50_5s) / 25.0
    p50 = max(prior.p50_5s + (seconds - 5.0) * slope, prior.p50_5s / 10.0)
    p50 *= (PIXELS[resolution] / PIXELS[prior.reference_resolution]) ** prior.resolution_exponent
    p95_ratio = prior.p95_5s / prior.p50_5s
    if in_spike(prior, at.hour) and prior.spike_p95_5s is not None:
        p95_ratio = prior.spike_p95_5s / prior.p50_5s
    return LatencyEstimate(p50_s=p50, p95_s=p50 * p95_ratio, sigma=math.log(p95_ratio) / Z95)


def chain(estimates: list[LatencyEstimate], overhead_s: float = 0.0) -> LatencyEstimate:
    """Steps run one after another, plus a fixed overhead (storyboard transitions)."""
    p50 = sum(e.p50_s for e in estimates) + overhead_s
    p95 = sum(e.p95_s for e in estimates) + overhead_s
    return LatencyEstimate(p50_s=p50, p95_s=p95, sigma=math.log(p95 / p50) / Z95)
