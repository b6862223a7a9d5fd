from datetime import UTC, datetime

import pytest

from providers.latency import chain, estimate

NOON = datetime(2026, 11, 25, 12, tzinfo=UTC)
THREE_AM = datetime(2026, 11, 25, 3, tzinfo=UTC)


@pytest.mark.parametrize(("model", "p50", "p95"), [("kling-v3", 38, 94), ("sora-2", 71, 187)])
def test_the_seed_points_are_reproduced(catalog, model, p50, p95):
    e = estimate(catalog.row(model).latency, 5, "1080p", NOON)
    assert (round(e.p50_s, 6), round(e.p95_s, 6)) == (p50, p95)


@pytest.mark.parametrize(("model", "p50"), [("kling-v3", 143), ("sora-2", 284)])
def test_the_30_second_median_is_reproduced(catalog, model, p50):
    assert round(estimate(catalog.row(model).latency, 30, "1080p", NOON).p50_s, 6) == p50


def test_sora_spike_widens_p95_between_two_and_four_utc(catalog):
    prior = catalog.row("sora-2").latency
    assert round(estimate(prior, 5, "1080p", THREE_AM).p95_s, 6) == 340
    assert estimate(prior, 5, "1080p", THREE_AM).p50_s == estimate(prior, 5, "1080p", NOON).p50_s
    assert round(estimate(prior, 5, "1080p", datetime(2026, 1, 1, 4, tzinfo=UTC)).p95_s) == 187


def test_resolution_scales_latency_by_the_documented_exponent(catalog):
    prior = catalog.row("kling-v3").latency
    assert estimate(prior, 5, "4k", NOON).p50_s == pytest.approx(76)
    assert estimate(prior, 5, "720p", NOON).p50_s == pytest.approx(38 * 2 / 3)


def test_quantiles_follow_the_lognormal(catalog):
    e = estimate(catalog.row("kling-v3").latency, 5, "1080p", NOON)
    assert e.quantile(1.6448536269514722) == pytest.approx(94)
    assert e.quantile(2.326) > e.p95_s


def test_chains_add_up_with_overhead(catalog):
    prior = catalog.row("sora-2").latency
    one = estimate(prior, 4, "1080p", NOON)
    total = chain([one, one], overhead_s=18.5)
    assert total.p50_s == pytest.approx(2 * one.p50_s + 18.5)
    assert total.p95_s == pytest.approx(2 * one.p95_s + 18.5)
