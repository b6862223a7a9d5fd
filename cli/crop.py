"""crop: pre-crop an image to 16:9, 9:16, 1:1 or auto, fitted to a model's input rules."""

import argparse
import json
import math
from pathlib import Path

from cli.context import load_context, output_path, require
from cli.errors import UserError
from models import RESOLUTIONS
from tasks.image_files import ImageError, prepare_image_file

HELP_EXAMPLES = """\
  reelflow crop examples/harbour-4x3.jpg --aspect auto --model kling-v3 -o /tmp/cropped.jpg
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the image to crop")
    parser.add_argument("--aspect", default="auto", help="16:9 | 9:16 | 1:1 | auto")
    parser.add_argument("--model", default="kling-v3", help="catalog model id whose rules apply")
    parser.add_argument("--resolution", default="1080p", help=" | ".join(RESOLUTIONS))
    parser.add_argument("--focus", help="X,Y fractions to keep inside the crop")
    parser.add_argument("-o", "--out", required=True, help="where to write the cropped JPEG")


def parse_focus(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
        require(math.isfinite(x) and math.isfinite(y), "focus", f"{text!r} is not X,Y",
                ["X,Y with each in 0..1"])
    except ValueError:
        raise UserError("focus", f"{text!r} is not X,Y", ["X,Y with each in 0..1"]) from None
    require(0 <= x <= 1 and 0 <= y <= 1, "focus", f"{text!r} is outside the image",
            ["X,Y with each in 0..1"])
    return x, y


def run(args: argparse.Namespace) -> int:
    catalog = load_context().catalog
    require(args.model in catalog.ids, "model", f"unknown model {args.model!r}", catalog.ids)
    row = catalog.row(args.model)
    allowed = [*row.image.aspect_ratios, "auto"]
    require(args.aspect in allowed, "aspect", f"{row.id} cannot take {args.aspect!r}", allowed)
    require(args.resolution in row.wire, "resolution", f"{args.resolution!r}", list(row.wire))
    out = output_path(args.out, "out")
    try:
        data, result = prepare_image_file(Path(args.image), row, aspect=args.aspect,
                                          resolution=args.resolution,
                                          focus=parse_focus(args.focus))
    except ImageError as err:
        raise UserError("image", str(err)) from None
    out.write_bytes(data)
    if args.json:
        print(json.dumps({"out": args.out, **result.model_dump(mode="json")}, indent=2))
    else:
        print(f"{args.out}: {result.reason}")
        print(f"  box {result.box} of {result.source_size[0]}x{result.source_size[1]}, "
              f"{result.bytes:,} bytes")
        for note in result.conversions:
            print(f"  {note}")
    return 0
