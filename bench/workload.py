"""A month of requests shaped like the seed's use cases, seeded and reproducible (issue 23).

The mix is fixed and was frozen before the first measurement: 40% UGC shorts (text, 9:16, 5 or
10 s, 720p or 1080p), 25% e-commerce product videos (image-to-video from product photos of
4:3, 3:2, 2:3, 1:1 or 16:9, drawn at run time with Pillow), 15% storyboards (3 scenes of 5 s
at 1080p), 15% iterative edits (an approved 5 s clip extended 1 to 3 times by 5 s), 5% prompts
a provider's content policy refuses (brand parody, stylised violence: every one of them names
gore or a beheading, which the sandbox's seed-default world refuses on Kling, fal and
AtlasCloud — sandbox/knobs.py `policy_patterns`).

Every prompt of a request's step starts with its tag, `r00042s1` (request 42, step 1), so a
provider job — whoever sent it, whatever the prompt became on the way — is traced to the step
it was paid for. Counts per kind are the shares rounded, the rest going to UGC; the seed shuffles
which request is which and draws every choice inside a kind.

`python -m bench.workload --clips 20 --seed 1` prints the requests as JSON lines.
"""

import argparse
import random
import re
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw
from pydantic import BaseModel, Field

Kind = Literal["ugc", "product", "storyboard", "edit", "refused"]
MIX: dict[Kind, float] = {"ugc": 0.40, "product": 0.25, "storyboard": 0.15, "edit": 0.15,
                          "refused": 0.05}
PHOTO_SIZES = {"4:3": (1024, 768), "3:2": (1200, 800), "2:3": (800, 1200),
               "1:1": (1000, 1000), "16:9": (1280, 720)}
EDIT_S = 5
TAG = re.compile(r"\b(r\d{5})s(\d)(?:p\d)?\b")  # request, step, part (see naive.py)

_SUBJECTS = ["a skateboarder", "a street dancer", "a barista", "a surfer", "a chef",
             "a cyclist", "a golden retriever", "a street musician", "a climber", "a painter"]
_PLACES = ["on a rooftop at sunset", "in a neon-lit alley", "on a beach at dawn",
           "in a busy market", "in a snowy park", "in a sunlit kitchen", "on a city bridge"]
_PRODUCTS = ["a ceramic mug", "a leather wallet", "a pair of sneakers", "a wristwatch",
             "a glass perfume bottle", "a desk lamp", "a backpack", "a bluetooth speaker"]
_STORIES = ["a detective follows a clue", "two friends build a raft", "a robot learns to paint",
            "a lighthouse keeper meets a storm", "a girl finds a map in the attic"]
_EDITS = ["the camera drifts closer", "the light turns golden", "a second person walks in",
          "rain starts to fall", "the subject turns and smiles", "confetti falls"]
_REFUSED = ["brand parody: a cola mascot's beheading in a cartoon ad",
            "stylised violence: an anime sword duel, gore everywhere",
            "brand parody: a sneaker ad ending in gore", "a comic-book beheading, ink style"]


class Request(BaseModel):
    """One request of the month: a clip, or a chain of edits of one clip."""

    id: str = Field(description="r00042: the tag every prompt of it starts with.")
    kind: Kind
    prompt: str = Field(description="The clip's prompt (a storyboard's title).")
    seconds: int = Field(description="Seconds of the first clip (a storyboard: the sum).")
    resolution: Literal["720p", "1080p"]
    aspect: Literal["9:16", "16:9", "auto"] = Field(
        description="auto: the product photo's nearest supported ratio.")
    photo_ratio: str | None = Field(default=None, description="A product photo's ratio.")
    scenes: list[str] = Field(default_factory=list, description="Storyboard scene prompts.")
    edits: list[str] = Field(default_factory=list, description="Each extension's prompt.")

    def step_tag(self, step: int) -> str:
        return f"{self.id}s{step}"

    def lengths(self) -> list[int]:
        """Seconds of each deliverable: the clip, then the clip after each edit."""
        return [self.seconds + EDIT_S * k for k in range(len(self.edits) + 1)]

    def photo(self, folder: Path) -> Path:
        return folder / f"{self.id}.jpg"


def month(clips: int, seed: int) -> list[Request]:
    """`clips` requests in the fixed mix, the same for the same seed."""
    rng = random.Random(f"reelflow-cost-workload:{seed}")
    counts = {kind: round(share * clips) for kind, share in MIX.items()}
    counts["ugc"] += clips - sum(counts.values())
    kinds = [kind for kind, n in counts.items() for _ in range(n)]
    rng.shuffle(kinds)
    return [_request(f"r{i:05d}", kind, rng) for i, kind in enumerate(kinds)]


def _request(rid: str, kind: Kind, rng: random.Random) -> Request:
    tag = f"{rid}s0"
    if kind == "ugc":
        return Request(id=rid, kind=kind, seconds=rng.choice([5, 10]), aspect="9:16",
                       resolution=rng.choice(["720p", "1080p"]),
                       prompt=f"{tag} {rng.choice(_SUBJECTS)} {rng.choice(_PLACES)}")
    if kind == "product":
        return Request(id=rid, kind=kind, seconds=5, resolution="1080p", aspect="auto",
                       photo_ratio=rng.choice(list(PHOTO_SIZES)),
                       prompt=f"{tag} {rng.choice(_PRODUCTS)} turning slowly on a plinth")
    if kind == "storyboard":
        story = rng.choice(_STORIES)
        return Request(id=rid, kind=kind, seconds=15, resolution="1080p", aspect="16:9",
                       prompt=f"{tag} {story}",
                       scenes=[f"{tag} scene {n + 1} of 3: {story}, {part}" for n, part in
                               enumerate(["the beginning", "the turn", "the ending"])])
    if kind == "edit":
        edits = rng.sample(_EDITS, rng.randint(1, 3))
        return Request(id=rid, kind=kind, seconds=5, resolution="1080p", aspect="16:9",
                       prompt=f"{tag} {rng.choice(_SUBJECTS)} {rng.choice(_PLACES)}",
                       edits=[f"{rid}s{k + 1} {text}" for k, text in enumerate(edits)])
    return Request(id=rid, kind=kind, seconds=5, resolution="720p", aspect="16:9",
                   prompt=f"{tag} {rng.choice(_REFUSED)}")


def draw_photos(requests: list[Request], folder: Path, seed: int) -> None:
    """A product photo per product request, at its ratio: a plinth and an object in seeded
    colours, as a shop's photo of its product would be framed."""
    folder.mkdir(parents=True, exist_ok=True)
    for request in requests:
        if request.photo_ratio is None:
            continue
        rng = random.Random(f"{seed}:{request.id}")
        width, height = PHOTO_SIZES[request.photo_ratio]
        image = Image.new("RGB", (width, height), tuple(rng.randrange(150, 250) for _ in "rgb"))
        draw = ImageDraw.Draw(image)
        draw.rectangle([width * 0.2, height * 0.75, width * 0.8, height * 0.85],
                       fill=tuple(rng.randrange(60, 140) for _ in "rgb"))
        draw.ellipse([width * 0.35, height * 0.3, width * 0.65, height * 0.75],
                     fill=tuple(rng.randrange(0, 255) for _ in "rgb"))
        image.save(request.photo(folder), quality=90)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for request in month(args.clips, args.seed):
        print(request.model_dump_json())


if __name__ == "__main__":
    main()
