"""The embedded router: in-process intent matching with static word embeddings.

Each route is represented by anchor prompts: its description, the phrases of
its description, its `examples:` from config.yaml, and the prompts of the
built-in intent (data/intents.yaml) its description matches. A request's
latest user turn is embedded (WordLlama, 256-d, offline) and scored against
each route's anchors; the built-in `none` intent (greetings, thanks, trivia)
competes too and wins for requests that fit no route.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from ..config import Route
from ..conversation import user_turns

DATA = Path(__file__).parent / "data" / "intents.yaml"
NONE = "none"

# Tuned on the project's evaluation set (benchmarks/routing_eval.py); see README.
TOP_K = 3  # a class scores the mean of its K best-matching anchors
MIN_SCORE = 0.30  # below this no route is confident enough
BORROW_THRESHOLD = 0.55  # how alike a route and a built-in intent must be to borrow its prompts
SHORT_TURN_WORDS = 6  # a latest turn this short leans on the previous one for context
CONTEXT_WEIGHT = 0.5


@lru_cache(maxsize=1)
def load_encoder() -> Any:
    """WordLlama's bundled 256-d weights, loaded from the wheel itself (no download)."""
    import wordllama
    from wordllama import WordLlama

    return WordLlama.load(dim=256, cache_dir=Path(wordllama.__file__).parent, disable_download=True)


@lru_cache(maxsize=1)
def builtin_intents() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (description, examples) from the bundled labelled data."""
    raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))["intents"]
    return {name: (spec["description"], tuple(spec["examples"])) for name, spec in raw.items()}


def _phrases(description: str) -> list[str]:
    parts = re.split(r",|;|\bor\b|\band\b", description)
    return [p.strip() for p in parts if len(p.strip().split()) >= 2]


class EmbeddedRouter:
    """Nearest-anchor intent matching over static embeddings; no network, sub-millisecond."""

    name = "embedded"

    def __init__(self, routes: Sequence[Route], *, use_builtin: bool = True) -> None:
        self.routes = list(routes)
        self._encoder = load_encoder()
        self.borrowed: dict[str, str] = {}  # route name -> built-in intent it borrowed from
        anchors: dict[str, list[str]] = {}
        for route in self.routes:
            words = route.name.replace("_", " ").replace("-", " ")
            anchors[route.name] = [route.description, f"{words}: {route.description}",
                                   *_phrases(route.description), *route.examples]
        if use_builtin:
            self._borrow(anchors)
        anchors[NONE] = list(builtin_intents()[NONE][1])
        self.classes = list(anchors)
        self._matrices = [self._embed(texts) for texts in anchors.values()]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self._encoder.embed(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-9)

    def _borrow(self, anchors: dict[str, list[str]]) -> None:
        """Give each route the prompts of the built-in intent its description best matches."""
        intents = {k: v for k, v in builtin_intents().items() if k != NONE}
        if not intents or not self.routes:
            return
        names = list(intents)
        intent_vecs = self._embed([f"{n.replace('_', ' ')}: {d}" for n, (d, _) in intents.items()])
        route_vecs = self._embed([f"{r.name.replace('_', ' ')}: {r.description}" for r in self.routes])
        sims = route_vecs @ intent_vecs.T
        taken: set[str] = set()
        # Most confident pairs first, so two routes never borrow the same intent.
        for flat in np.argsort(-sims, axis=None):
            i, j = divmod(int(flat), len(names))
            route, intent = self.routes[i], names[j]
            if sims[i, j] < BORROW_THRESHOLD:
                break
            if route.name in self.borrowed or intent in taken:
                continue
            self.borrowed[route.name] = intent
            taken.add(intent)
            anchors[route.name].extend(intents[intent][1])

    def query_vector(self, messages: list[dict[str, Any]]) -> np.ndarray | None:
        turns = user_turns(messages, max_turns=2)
        if not turns:
            return None
        vecs = self._embed(turns)
        q = vecs[0]
        if len(turns) > 1 and len(turns[0].split()) < SHORT_TURN_WORDS:
            q = q + CONTEXT_WEIGHT * vecs[1]
        return q / max(float(np.linalg.norm(q)), 1e-9)

    def scores(self, messages: list[dict[str, Any]]) -> dict[str, float]:
        """Each class's score for this conversation (routes plus 'none')."""
        q = self.query_vector(messages)
        if q is None:
            return {}
        out = {}
        for name, matrix in zip(self.classes, self._matrices):
            sims = matrix @ q
            k = min(TOP_K, len(sims))
            out[name] = float(np.mean(np.partition(sims, -k)[-k:]))
        return out

    async def route(self, messages: list[dict[str, Any]]) -> str | None:
        return self.decide(messages)

    def decide(self, messages: list[dict[str, Any]]) -> str | None:
        """Synchronous core of `route` (it does no I/O)."""
        scores = self.scores(messages)
        if not scores:
            return None
        best = max(scores, key=scores.__getitem__)
        if best == NONE or scores[best] < MIN_SCORE:
            return None
        return best
