"""Prompt preparation for the chosen model: normalise, count, compress to its budget, turn camera
words into its control schema, add its negative prompt, and check its content policy — all
before anything is paid. Every change is recorded, so a person can see what was sent and why.

Token estimate (no tokenizer download at run time): ceil(max(words * 4/3, characters / 4)), the
usual English rule of thumb for BPE tokenizers; it errs long, which is the safe side for a budget.
Compression is deterministic: filler words go first, then clauses that are neither the subject
(the first clause), a camera clause nor a style clause, from the end; if still over budget the
remaining clauses are cut to their first words.
"""

import heapq
import math
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field

from models import ClipRequest, Endpoint, Scene, normalise_text
from providers.catalog import Catalog, ModelRow
from storage.prompt_refusals import RefusedPrompts, prompt_digest
from tasks.camera import find_move

RULES_FILE = Path(__file__).with_name("prompt_rules.toml")
FILLER = re.compile(r"\b(very|really|extremely|incredibly|super|quite|just|basically|literally|"
                    r"actually|somewhat|kind of|sort of|a bit|a little bit|absolutely|totally|"
                    r"truly|simply)\b\s*", re.I)
STYLE = re.compile(r"\b(cinematic|film|35mm|70mm|anamorphic|photoreal\w*|realistic|anime|"
                   r"watercolou?r|oil painting|noir|vintage|lighting|lit|golden hour|"
                   r"colou?r grad\w*|style|aesthetic|4k|8k|hdr|bokeh|shallow depth|"
                   r"documentary|pastel|neon)\b", re.I)
CAMERA = re.compile(r"\b(camera|shot|angle|pan|tilt|dolly|zoom|crane|orbit|tracking|"
                    r"close-up|wide|aerial|drone|pov|push|pull)\b", re.I)


class Change(BaseModel):
    kind: str = Field(description="What was done: filler, clause, truncate, camera, negative.")
    text: str = Field(description="The words concerned.")


class PolicyHit(BaseModel):
    category: str
    term: str


class PreparedPrompt(BaseModel):
    """What will be sent, and what changed on the way."""

    model: str
    prompt: str
    negative_prompt: str | None
    camera_control: dict | None
    tokens_before: int
    tokens_after: int
    budget: int | None
    changes: list[Change]
    policy_hits: list[PolicyHit]


def estimate_tokens(text: str) -> int:
    words = len(text.split())
    return math.ceil(max(words * 4 / 3, len(text) / 4)) if text else 0


def load_rules(path: Path | None = None) -> dict:
    return tomllib.loads((path or RULES_FILE).read_text(encoding="utf-8"))


def policy_hits(text: str, provider: str, rules: dict) -> list[PolicyHit]:
    """Every pattern of the provider's policy that the text matches."""
    hits = []
    for category, patterns in rules.get(provider, {}).get("policy", {}).items():
        for pattern in patterns:
            if match := re.search(pattern, text, re.I):
                hits.append(PolicyHit(category=category, term=match.group(0)))
    return hits


def policy_exclusions(text: str, catalog: Catalog, rules: dict | None = None
                      ) -> dict[str, str]:
    """Model id -> why its provider would refuse this text (for the router's `exclude`)."""
    rules = rules or load_rules()
    reasons = {}
    for row in catalog.models:
        if hits := policy_hits(text, row.provider, rules):
            terms = ", ".join(f"{h.category.replace('_', ' ')}: {h.term!r}" for h in hits)
            reasons[row.id] = f"its content policy would refuse this prompt ({terms})"
    return reasons


def prompt_words(request: ClipRequest) -> str:
    """Every word a provider's content policy reads: prompt, camera and scenes."""
    return " ".join([request.prompt, request.camera or "", *(s.prompt for s in request.scenes)])


def refused_exclusions(request: ClipRequest, store: RefusedPrompts, catalog: Catalog,
                       endpoints: dict[str, Endpoint]) -> dict[str, str]:
    """Model id -> why, for every model of a provider whose policy refused this very prompt
    before (for the router's `exclude`: routed around, not sent again)."""
    refused = store.refused_here(prompt_digest(prompt_words(request), request.image_sha256),
                                 endpoints)
    return {row.id: f"routed around: {refused[row.provider]}"
            for row in catalog.models if row.provider in refused}


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<=[.;,])\s+|\s+-\s+", text) if c.strip()]


def compress(text: str, budget: int) -> tuple[str, list[Change]]:
    """Fit `text` into `budget` tokens, keeping subject, camera and style clauses. Linear in
    the prompt's length: the joined text's word and character counts are kept as running
    totals instead of being recounted after every cut."""
    changes: list[Change] = []
    if estimate_tokens(text) <= budget:
        return text, changes
    for match in FILLER.finditer(text):
        changes.append(Change(kind="filler", text=match.group(0).strip()))
    text = normalise_text(FILLER.sub("", text))
    clauses = [c.split() for c in _clauses(text)]
    keep = [i == 0 or bool(STYLE.search(" ".join(c)) or CAMERA.search(" ".join(c)))
            for i, c in enumerate(clauses)]
    words = sum(len(c) for c in clauses)
    chars = sum(len(w) for c in clauses for w in c) + max(0, words - 1)

    def fits() -> bool:
        return (math.ceil(max(words * 4 / 3, chars / 4)) if words else 0) <= budget

    for i in range(len(clauses) - 1, 0, -1):
        if fits():
            break
        if not keep[i]:
            changes.append(Change(kind="clause", text=" ".join(clauses[i])))
            words -= len(clauses[i])
            chars -= sum(len(w) for w in clauses[i]) + len(clauses[i])
            clauses.pop(i)
            keep.pop(i)
    longest = [(-len(c), i) for i, c in enumerate(clauses)]  # the first longest clause first
    heapq.heapify(longest)
    while longest and not fits():
        size, i = heapq.heappop(longest)
        if -size <= 3:
            break
        cut = clauses[i].pop()
        changes.append(Change(kind="truncate", text=cut))
        words, chars = words - 1, chars - len(cut) - 1
        heapq.heappush(longest, (size + 1, i))
    return " ".join(" ".join(c) for c in clauses).strip(" ,;"), changes


def prepare_prompt_text(prompt: str, row: ModelRow, *, camera: str | None = None,
                        negative_prompt: str | None = None, rules: dict | None = None
                        ) -> PreparedPrompt:
    """The prompt as `row`'s model should receive it."""
    rules = rules or load_rules()
    text = normalise_text(prompt)
    before = estimate_tokens(text)
    changes: list[Change] = []
    control = None
    move = find_move(camera or "") or find_move(text)
    if move is not None and row.camera_control:
        control = move.control
        if move.phrase.lower() in text.lower():
            stripped = re.sub(re.escape(move.phrase), "", text, count=1, flags=re.I)
            stripped = re.sub(r"\s*([,;])(?:\s*[,;])+", r"\1", normalise_text(stripped))
            text = stripped.strip(" ,;.") or text
        changes.append(Change(kind="camera", text=f"{move.phrase!r} -> {control}"))
    elif camera and camera.lower() not in text.lower():
        text = f"{text.rstrip('.')}. Camera: {normalise_text(camera)}."
        changes.append(Change(kind="camera", text=f"kept in words: {camera}"))
    budget = row.prompt_token_budget or None
    if budget:
        text, compressed = compress(text, budget)
        changes += compressed
    negative = negative_prompt or rules.get(row.provider, {}).get("negative_prompt") or None
    if negative and row.protocol == "openai_videos":
        text = f"{text.rstrip('.')}. Avoid: {negative}."
        changes.append(Change(kind="negative", text=f"no negative_prompt field; in words: "
                                                    f"{negative}"))
        negative = None
    elif negative and not negative_prompt:
        changes.append(Change(kind="negative", text=f"model default: {negative}"))
    hits = policy_hits(f"{text} {camera or ''}", row.provider, rules)
    return PreparedPrompt(model=row.id, prompt=text, negative_prompt=negative,
                          camera_control=control, tokens_before=before,
                          tokens_after=estimate_tokens(text), budget=budget,
                          changes=changes, policy_hits=hits)


def storyboard_anchors(scenes: list[Scene]) -> list[str]:
    """Scene prompts with the first scene's subject and any style carried to later scenes."""
    if not scenes:
        return []
    subject = _clauses(scenes[0].prompt)[0].rstrip(".,;")
    styles: list[str] = []
    for scene in scenes:
        for clause in _clauses(scene.prompt):
            if STYLE.search(clause) and clause.rstrip(".,;") not in styles:
                styles.append(clause.rstrip(".,;"))
    anchored = [scenes[0].prompt]
    for scene in scenes[1:]:
        extra = [f"same subject as before: {subject}"]
        extra += [s for s in styles if s.lower() not in scene.prompt.lower()]
        anchored.append(f"{scene.prompt.rstrip('.')}. " + "; ".join(extra) + ".")
    return anchored
