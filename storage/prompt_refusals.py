"""Prompts a provider's content policy refused: what the clip asked for (its words, and its
image's digest when it had one), the provider whose policy answered, where and when. Kept in
the journal's store of what is learned, like storage/capabilities.py, so every worker sees it:
one fact per (endpoint, provider, prompt), keyed by the prompt first. The router reads them to route
the same prompt around that provider on the next request, before anything is paid; with no
provider left the plan says so. `reelflow capabilities --forget` clears them (after the
provider changed its policy, or the prompt was reworded and a copy kept the old words)."""

import hashlib

from pydantic import Field

from models import Endpoint, normalise_text
from storage.capabilities import EndpointRefusal, seen_here
from storage.learned import Learned, parsed

KIND = "refused_prompts"


def prompt_digest(words: str, image_digest: str | None = None) -> str:
    """The same prompt whatever its case and spacing; with its image, when it has one."""
    text = normalise_text(words).casefold()
    return hashlib.sha256("\n".join((text, image_digest or "")).encode()).hexdigest()


class PromptRefusal(EndpointRefusal):
    """One provider's content policy refusing one prompt (sent to `model`)."""

    provider: str = Field(description="The catalog's provider (account) whose policy refused.")
    prompt: str = Field(description="prompt_digest of what was asked.")
    excerpt: str = Field(description="The prompt's first words, for a person reading the list.")

    def says(self) -> str:
        return f"{self.provider}'s content policy refused this prompt on {self.model} " \
               f"({self.message})"

    def when(self) -> str:
        return (f"{self.provider}'s content policy refused this prompt on "
                f"{self.learned_at:%Y-%m-%d %H:%M} UTC")


class RefusedPrompts:
    def __init__(self, store: Learned):
        self.store = store

    def learn(self, refusal: PromptRefusal) -> None:
        # keyed by the prompt first, so a plan reads only its own prompt's refusals
        where = hashlib.sha256("\n".join((refusal.base_url, refusal.provider)).encode())
        self.store.put(f"{refusal.prompt[:24]}-{where.hexdigest()[:12]}",
                       refusal.model_dump_json(indent=2))

    def refusals(self, prompt: str | None = None) -> list[PromptRefusal]:
        """Every refusal learned (of `prompt`, when given), oldest first; an unreadable one is
        skipped (the provider refuses again, and it is learned again)."""
        found = parsed(PromptRefusal, self.store.texts(f"{prompt[:24]}-" if prompt else ""))
        return sorted(found, key=lambda r: r.learned_at)

    def refused_here(self, prompt: str, endpoints: dict[str, Endpoint]) -> dict[str, str]:
        """provider -> why, for this prompt's refusals by the endpoints in use."""
        return {r.provider: r.when() for r in self.refusals(prompt)
                if r.prompt == prompt and seen_here(r.protocol, r.kind, r.base_url, endpoints)}

    def forget(self) -> int:
        return self.store.forget()
