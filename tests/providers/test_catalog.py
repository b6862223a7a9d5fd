from datetime import date
from decimal import Decimal

import pytest

from providers.catalog import DEFAULT_CATALOG, CatalogError, load_catalog


def broken(tmp_path, old: str, new: str, count: int = 1):
    text = DEFAULT_CATALOG.read_text()
    assert old in text, old
    path = tmp_path / "catalog.toml"
    path.write_text(text.replace(old, new, count))
    return path


def test_the_shipped_catalog_holds_kling_sora_and_the_atlascloud_models(catalog):
    assert catalog.ids == ["kling-v3", "kling-v3-fal", "sora-2", "wan-2.6", "seedance-2",
                           "kling-v3-atlas"]
    assert {catalog.row(i).protocol for i in ("wan-2.6", "seedance-2", "kling-v3-atlas")} == {
        "atlascloud"}
    kling = catalog.row("kling-v3")
    assert [t.name for t in kling.tier] == ["free", "standard", "pro", "master"]
    assert [t.name for t in catalog.row("sora-2").tier] == ["api", "enterprise"]


def test_seed_figures_are_in_the_rows(catalog):
    kling, sora = catalog.row("kling-v3"), catalog.row("sora-2")
    assert kling.tier_named("standard").price_per_second == Decimal("0.028")
    assert kling.tier_named("pro").monthly_minimum_usd == 500
    assert kling.tier_named("master").price("4k") == Decimal("0.0341")
    assert kling.charges.failed_fraction == Decimal("0.2")
    assert sora.charges.failed_fraction == 0
    assert sora.tier_named("api").price("4k") == Decimal("0.14")
    assert sora.sunset == date(2026, 9, 24)
    assert (kling.latency.p50_5s, kling.latency.p95_5s, kling.latency.p50_30s) == (38, 94, 143)
    assert sora.latency.spike_p95_5s == 340
    assert (kling.max_clip_seconds, sora.max_clip_seconds) == (180, 60)
    assert sora.quality.vbench_overall == 87.4


def test_fal_prices_are_fal_s_own_with_and_without_audio(catalog):
    """fal's Kling v3 standard page: $0.084/s with audio off, $0.126/s on; the pro app (1080p)
    was not read, so its figures are marked assumed."""
    row = catalog.row("kling-v3-fal")
    tier = row.tier_named("standard")
    assert row.audio == "optional"
    assert (tier.price("720p"), tier.price("720p", audio=True)) == (Decimal("0.084"),
                                                                     Decimal("0.126"))
    assert "price_per_second" not in tier.assumed
    assert {"resolution_prices", "audio_prices"} <= set(tier.assumed)
    assert catalog.row("sora-2").audio == "always"


def test_every_section_names_its_source_and_date(catalog):
    for row in catalog.models:
        sections = [row, row.image, row.charges, row.latency, row.quality, *row.tier]
        for section in sections:
            assert section.source.strip() and section.as_of.year >= 2026


def test_sora_wire_spells_only_its_own_durations_and_sizes(catalog):
    sora = catalog.row("sora-2")
    assert sora.wire_durations == (4, 8, 12)
    assert sora.wire["720p"].sizes == {"16:9": "1280x720", "9:16": "720x1280"}
    assert "1:1" not in sora.aspect_ratios


def test_unknown_key_names_file_row_and_field(tmp_path):
    path = broken(tmp_path, 'name = "Sora 2"', 'name = "Sora 2"\ncolour = "red"')
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert str(path) in message
    assert "row 3 (id 'sora-2')" in message
    assert "field colour: unknown key" in message


def test_missing_price_names_the_tier_field(tmp_path):
    path = broken(tmp_path, "price_per_second = 0.022\n", "")
    with pytest.raises(CatalogError, match=r"row 1 \(id 'kling-v3'\), field tier\.2\."
                                            r"price_per_second: missing"):
        load_catalog(path)


def test_a_tier_without_a_concurrency_limit_is_refused(tmp_path):
    path = broken(tmp_path, "concurrency = 5\n", "")
    with pytest.raises(CatalogError, match=r"id 'sora-2'.*tier\.0\.concurrency: missing"):
        load_catalog(path)


def test_zero_concurrency_is_refused(tmp_path):
    path = broken(tmp_path, "concurrency = 10\n", "concurrency = 0\n")
    with pytest.raises(CatalogError, match=r"tier\.1\.concurrency"):
        load_catalog(path)


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text("[[model]\nid = 1")
    with pytest.raises(CatalogError, match=f"{path}: not valid TOML"):
        load_catalog(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogError, match="catalog file not found"):
        load_catalog(tmp_path / "nope.toml")


def test_repeated_model_ids_are_refused(tmp_path):
    path = broken(tmp_path, 'id = "kling-v3-fal"', 'id = "kling-v3"')
    with pytest.raises(CatalogError, match="model ids repeat: kling-v3"):
        load_catalog(path)


def test_extend_mode_without_extension_seconds_is_refused(tmp_path):
    path = broken(tmp_path, "extension_seconds = [5]", "extension_seconds = []")
    with pytest.raises(CatalogError, match="mode 'extend' and extension_seconds go together"):
        load_catalog(path)


def test_assumed_must_name_real_fields(tmp_path):
    path = broken(tmp_path, 'assumed = ["credits_per_second"]', 'assumed = ["credit_rate"]')
    with pytest.raises(CatalogError, match="assumed names unknown fields: credit_rate"):
        load_catalog(path)


def test_a_tier_above_the_wire_resolutions_is_refused(tmp_path):
    path = broken(tmp_path, 'max_resolution = "1080p"\nconcurrency = 10\nmonthly_minimum_usd = 0\n'
                  'source = "fal model page',
                  'max_resolution = "4k"\nconcurrency = 10\nmonthly_minimum_usd = 0\n'
                  'source = "fal model page')
    with pytest.raises(CatalogError, match="tier standard: max_resolution has no wire spelling"):
        load_catalog(path)


def test_unknown_protocol_lists_the_known_ones(tmp_path):
    path = broken(tmp_path, 'protocol = "fal_queue"', 'protocol = "carrier_pigeon"')
    with pytest.raises(CatalogError, match=r"row 2.*field protocol: .*'fal_queue'"):
        load_catalog(path)
