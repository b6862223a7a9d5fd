"""prompt: show how a prompt is prepared for a model (budget, camera control, policy)."""

import argparse

from cli.context import load_context, require
from cli.errors import UserError
from models import normalise_text
from tasks.prompt_text import prepare_prompt_text

HELP_EXAMPLES = """\
  reelflow prompt "A fox in snow, slow push in" --model kling-v3
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the prompt")
    parser.add_argument("--model", required=True, help="catalog model id")
    parser.add_argument("--camera", help="camera move in words")
    parser.add_argument("--negative-prompt", help="what to avoid")


def run(args: argparse.Namespace) -> int:
    catalog = load_context().catalog
    require(args.model in catalog.ids, "model", f"unknown model {args.model!r}", catalog.ids)
    if not normalise_text(args.text):
        raise UserError("text", "the prompt is empty")
    prepared = prepare_prompt_text(args.text, catalog.row(args.model), camera=args.camera,
                                   negative_prompt=args.negative_prompt)
    if args.json:
        print(prepared.model_dump_json(indent=2))
        return 0
    budget = f" (budget {prepared.budget})" if prepared.budget else ""
    print(f"{prepared.model}: {prepared.tokens_before} -> {prepared.tokens_after} "
          f"tokens{budget}")
    print(f"  prompt: {prepared.prompt}")
    if prepared.negative_prompt:
        print(f"  negative: {prepared.negative_prompt}")
    if prepared.camera_control:
        print(f"  camera_control: {prepared.camera_control}")
    for change in prepared.changes:
        print(f"  {change.kind}: {change.text}")
    for hit in prepared.policy_hits:
        print(f"  POLICY: {hit.category.replace('_', ' ')}: {hit.term!r} — this model's "
              "provider would refuse it")
    return 0
