"""The tier that pays at the month's volume: billed seconds this calendar month, per account,
read from the ledger, priced on every tier of the key's provider with its minimum."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from analytics.month_volume import advice_for, month_of, read_month
from analytics.synthetic import charge_rows, clip_rows, write
from providers.catalog import load_catalog
from providers.pricebook import tier_advice

NOW = datetime.now(UTC)
MONTH_START = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def kling_month(root, clips: int, seconds: int = 5) -> None:
    """`clips` Kling Standard clips this month, 900 last month (not counted), and a failure
    (20% billed: not a second at full price)."""
    write(root,
          clip_rows(n=clips, provider="kling", model="kling-v3", tier="standard",
                    seconds_asked=seconds, seconds_billed=seconds, cost="0.14",
                    start=MONTH_START + timedelta(hours=1), run="now"),
          clip_rows(n=900, provider="kling", model="kling-v3", tier="standard",
                    seconds_asked=5, seconds_billed=5, cost="0.14", prefix="old-",
                    start=MONTH_START - timedelta(days=3), run="old"),
          charge_rows(n=1, provider="kling", model="kling-v3", tier="standard", kind="fail",
                      charge="failed_generation", cost="0.028",
                      start=MONTH_START + timedelta(hours=2)))


def test_pro_pays_from_the_billed_seconds_at_which_its_minimum_is_covered(catalog):
    kling = catalog.row("kling-v3")
    below = tier_advice(kling, "standard", {"1080p": Decimal(17_575)}, 2000, "test")
    assert below.recommended == "standard"
    assert {t.tier: t.break_even_s for t in below.tiers}["pro"] == 17_858  # $500 / $0.028
    assert "stay on kling standard" in below.says() and "17,858 billed s" in below.says()
    above = tier_advice(kling, "standard", {"1080p": Decimal(20_000)}, 4000, "test")
    assert above.recommended == "pro"
    assert [(t.tier, t.effective_usd) for t in above.tiers][:2] == [
        ("pro", Decimal(500)), ("standard", Decimal("560.000"))]
    assert "switching is the account holder's decision" in above.says()
    # 4K seconds: only Master makes them, its $2,000 minimum counted
    four_k = tier_advice(kling, "standard", {"4k": Decimal(100)}, 10, "test")
    assert [t.tier for t in four_k.tiers] == ["master"]


def test_the_month_is_this_calendar_month_s_full_price_seconds_per_account(tmp_path, catalog):
    kling_month(tmp_path / "ledger", clips=40, seconds=9)
    month = read_month(tmp_path / "ledger", None, NOW)
    assert list(month) == ["kling:standard"]
    assert month["kling:standard"].seconds == {"1080p": Decimal(360)}
    assert month["kling:standard"].clips == 40
    assert month_of([], NOW) == {}
    (advice,) = advice_for(catalog, {"kling": "standard"}, month)
    assert advice.billed_seconds == 360 and advice.recommended == "standard"
    assert advice_for(catalog, {"kling": "pro"}, month) == []  # nothing billed on Pro yet


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REELFLOW_SANDBOX", "http://127.0.0.1:9")
    monkeypatch.setenv("REELFLOW_SUBSCRIPTIONS", "kling:standard,sora:api")
    return tmp_path / "home"


def test_reelflow_plan_recommends_the_tier_that_pays_at_the_ledger_s_month(home, capsys):
    from cli.main import main

    prompt = ["--prompt", "A fox", "--duration", "5", "--resolution", "1080p"]
    assert main(["plan", *prompt, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tier_advice"] is None  # no volume yet
    kling_month(home / "ledger", clips=3700)  # 18,500 s: past Pro's 17,858
    assert main(["plan", *prompt, "--json"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["tier"] == "standard"  # the key holds Standard: recommended, not chosen
    advice = decision["tier_advice"]
    assert (advice["recommended"], advice["billed_seconds"], advice["clips"]) == (
        "pro", "18500.0", 3700)
    assert "tier: pro pays at 18,500 billed s" in advice["says"]
    assert main(["plan", *prompt, "--volume", "100"]) == 0  # --volume is the month's word
    assert "tier: stay on kling standard at 500 billed s" in capsys.readouterr().out
    assert main(["prices"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("tier: pro pays at 18,500")
