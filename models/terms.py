"""The shared vocabulary: modes, resolutions, aspect ratios, policies and money.

Every folder spells these the same way, so a value that passes here passes everywhere.
"""

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import PlainSerializer

Mode = Literal["text", "image", "extend", "storyboard"]
Resolution = Literal["720p", "1080p", "4k"]
AspectRatio = Literal["16:9", "9:16", "1:1", "auto"]
Policy = Literal["cheapest", "fastest", "best_quality"]
DowngradePolicy = Literal["accept", "regenerate", "fail"]
EndpointKind = Literal["sandbox", "real"]
Protocol = Literal["openai_videos", "fal_queue", "kling_native", "atlascloud"]

RESOLUTIONS: tuple[Resolution, ...] = ("720p", "1080p", "4k")
ASPECT_RATIOS: tuple[AspectRatio, ...] = ("16:9", "9:16", "1:1", "auto")
POLICIES: tuple[Policy, ...] = ("cheapest", "fastest", "best_quality")
# The plan each subscription key holds when REELFLOW_SUBSCRIPTIONS is not set (DESIGN.md §3).
DEFAULT_SUBSCRIPTIONS = "kling:standard,sora:api"
PROTOCOLS: tuple[Protocol, ...] = ("openai_videos", "fal_queue", "kling_native", "atlascloud")

# Money is exact: Decimal inside, a plain JSON number outside (machines read --json output).
USD = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]

CENT = Decimal("0.01")


def cents(amount: Decimal) -> Decimal:
    """Round to the cent the way an invoice does (half up)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def resolution_rank(resolution: Resolution) -> int:
    """Order resolutions so that 'at most 1080p' is a comparison."""
    return RESOLUTIONS.index(resolution)


def usd_text(amount: Decimal | float | None) -> str:
    """$1,234.56 for a person (half up, as an invoice rounds: a float by its shortest repr,
    so 0.425 reads $0.43 as the plan's Decimal does); an em dash where there is no figure."""
    if amount is None:
        return "—"
    return f"${cents(Decimal(str(amount)) if isinstance(amount, float) else amount):,.2f}"
