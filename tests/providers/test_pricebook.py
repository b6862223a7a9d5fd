from decimal import Decimal

import pytest

from providers.pricebook import (
    break_even_volume,
    clip_cost,
    cost_at_scale,
    failed_charge,
    monthly,
    requeue_charge,
    storage_charge,
)

SEED_TABLE = {
    # (model, tier): seed-metered cost at 100, 1,000, 10,000, 100,000 five-second 1080p clips
    ("kling-v3", "standard"): ["14.00", "140.00", "1400.00", "14000.00"],
    ("kling-v3", "pro"): ["11.00", "110.00", "1100.00", "11000.00"],
    ("sora-2", "api"): ["35.50", "355.00", "3550.00", "35500.00"],
    ("sora-2", "enterprise"): ["24.00", "240.00", "2400.00", "24000.00"],
}


def test_the_seed_cost_at_scale_table_comes_out_to_the_cent(catalog):
    rows = {(r.model, r.tier, r.volume): r for r in cost_at_scale(catalog)}
    for (model, tier), expected in SEED_TABLE.items():
        for volume, amount in zip((100, 1_000, 10_000, 100_000), expected, strict=True):
            assert rows[(model, tier, volume)].seed_metered_usd == Decimal(amount)
    assert rows[("kling-v3", "standard", 1000)].seed_metered_usd == Decimal("140.00")
    assert rows[("sora-2", "api", 1000)].seed_metered_usd == Decimal("355.00")


def test_minimums_show_in_the_effective_cost_not_a_footnote(catalog):
    rows = {(r.model, r.tier, r.volume): r for r in cost_at_scale(catalog)}
    pro_1000 = rows[("kling-v3", "pro", 1000)]
    assert (pro_1000.seed_metered_usd, pro_1000.effective_usd) == (Decimal(110), Decimal(500))
    assert rows[("kling-v3", "pro", 10000)].effective_usd == Decimal(1100)
    assert rows[("sora-2", "enterprise", 100000)].effective_usd == Decimal(24000)


def test_the_wire_bills_sora_five_seconds_as_eight(catalog):
    row = next(r for r in cost_at_scale(catalog) if (r.model, r.tier, r.volume) ==
               ("sora-2", "api", 1000))
    assert row.wire_billed_seconds == 8
    assert row.wire_effective_usd == Decimal("568.00")


def test_free_tier_is_left_out_where_its_credits_cannot_cover_the_volume(catalog):
    free = [r for r in cost_at_scale(catalog, 5, "720p") if r.tier == "free"]
    assert free == []  # 100 clips x 5 s is 500 s, beyond 66 credits


def test_failed_generation_costs_kling_20_percent_and_sora_nothing(catalog):
    kling, sora = catalog.row("kling-v3"), catalog.row("sora-2")
    assert failed_charge(kling, kling.tier_named("standard"), "1080p", 5) == Decimal("0.028")
    assert failed_charge(sora, sora.tier_named("api"), "1080p", 8) == 0


def test_requeue_is_charged_again_in_full(catalog):
    kling = catalog.row("kling-v3")
    tier = kling.tier_named("standard")
    assert requeue_charge(kling, tier, "1080p", 5) == clip_cost(tier, "1080p", 5)


def test_storage_is_free_for_seven_days_then_per_gb_day(catalog):
    kling = catalog.row("kling-v3")
    assert storage_charge(kling, 2.0, 7) == 0
    assert storage_charge(kling, 2.0, 10) == Decimal("0.024")


def test_an_extension_bills_only_the_seconds_it_adds(catalog):
    tier = catalog.row("kling-v3").tier_named("standard")
    assert clip_cost(tier, "1080p", 5) == Decimal("0.140")


def test_4k_uses_the_resolution_price(catalog):
    assert clip_cost(catalog.row("kling-v3").tier_named("master"), "4k", 10) == Decimal("0.341")
    assert clip_cost(catalog.row("sora-2").tier_named("api"), "4k", 4) == Decimal("0.56")


def test_monthly_cost_applies_the_minimum(catalog):
    pro = catalog.row("kling-v3").tier_named("pro")
    month = monthly(pro, Decimal("0.11"), 1000)
    assert (month.metered_usd, month.effective_usd, month.per_clip_usd) == (
        Decimal(110), Decimal(500), Decimal("0.5"))


@pytest.mark.parametrize(
    ("per_clip", "minimum", "rival", "rival_min", "expected"),
    [
        ("0.11", "500", "0.14", "0", 3572),     # Kling Pro against Standard
        ("0.155", "2000", "0.14", "0", None),   # Master never beats Standard at 1080p
        ("0.14", "0", "0.11", "500", 1),        # Standard beats Pro from the first clip
        ("0.24", "10000", "0.355", "0", 28170),  # Sora Enterprise against API (5 s)
        ("0.10", "0", "0.10", "0", None),       # equal is not cheaper
    ],
)
def test_break_even_volume(per_clip, minimum, rival, rival_min, expected):
    result = break_even_volume(Decimal(per_clip), Decimal(minimum), Decimal(rival),
                               Decimal(rival_min))
    assert result == expected
    if result is not None:
        def cost(c, m, v):
            return max(Decimal(m), Decimal(c) * v)
        assert cost(per_clip, minimum, result) < cost(rival, rival_min, result)
        assert result == 1 or cost(per_clip, minimum, result - 1) >= cost(rival, rival_min,
                                                                          result - 1)
