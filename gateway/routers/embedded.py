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

# Chosen by measurement on the project's evaluation set (benchmarks/routing_eval.py); see README.
TOP_K = 2  # a class's nearest-anchor score is the mean of its K best-matching anchors
CENTROID_WEIGHT = 0.5  # blended with its similarity to the mean of all its anchors
MIN_SCORE = 0.10  # below this nothing matches (empty or unreadable text)
BORROW_THRESHOLD = 0.55  # how alike a route and a built-in intent must be to borrow its prompts
SHORT_TURN_WORDS = 6  # a latest turn this short leans on the previous one for context
CONTEXT_WEIGHT = 0.5
MAX_TOKENS = 256  # tokens of a message that are read: bounded work for any message size


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


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.dot(v, v)) ** 0.5, 1e-9)


def _phrases(description: str) -> list[str]:
    parts = re.split(r",|;|\bor\b|\band\b", description)
    return [p.strip() for p in parts if len(p.strip().split()) >= 2]


class EmbeddedRouter:
    """Nearest-anchor intent matching over static embeddings; no network, sub-millisecond."""

    name = "embedded"

    def __init__(self, routes: Sequence[Route], *, use_builtin: bool = True) -> None:
        self.routes = list(routes)
        self._encoder = load_encoder()
        self._table = np.asarray(self._encoder.embedding, dtype=np.float32)
        tokenizer = self._encoder.tokenizer
        # encode_batch_fast skips computing character offsets we never read (tokenizers >= 0.20)
        self._encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
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
        matrices = [self._embed(texts) for texts in anchors.values()]
        self._centroids = np.stack([_unit(m.mean(axis=0)) for m in matrices])
        # One [classes, anchors, dims] block so scoring is a single matrix product;
        # classes with fewer anchors are padded, and the padding scores -inf.
        width = max(len(m) for m in matrices)
        self._anchors = np.zeros((len(matrices), width, self._table.shape[1]), dtype=np.float32)
        self._padding = np.zeros((len(matrices), width), dtype=np.float32)
        for i, m in enumerate(matrices):
            self._anchors[i, : len(m)] = m
            self._padding[i, len(m):] = -np.inf
        self._k = min(TOP_K, min(len(m) for m in matrices))

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors: the mean of each text's token embeddings (lower-cased, first MAX_TOKENS)."""
        return np.stack([self._embed_one(t) for t in texts])

    def _embed_one(self, text: str) -> np.ndarray:
        ids = self._encode([text.lower()], add_special_tokens=False)[0].ids[:MAX_TOKENS]
        if not ids:
            return np.zeros(self._table.shape[1], dtype=np.float32)
        return _unit(self._table.take(ids, axis=0).sum(axis=0))  # the sum points where the mean does

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
        latest = self._embed_one(turns[0])
        if len(turns) > 1 and len(turns[0].split()) < SHORT_TURN_WORDS:
            return _unit(latest + CONTEXT_WEIGHT * self._embed_one(turns[1]))
        return latest

    def scores(self, messages: list[dict[str, Any]]) -> dict[str, float]:
        """Each class's score for this conversation (routes plus 'none')."""
        q = self.query_vector(messages)
        if q is None:
            return {}
        sims = self._anchors @ q + self._padding  # [classes, anchors]
        nearest = np.partition(sims, -self._k, axis=1)[:, -self._k:].mean(axis=1)
        blended = (1 - CENTROID_WEIGHT) * nearest + CENTROID_WEIGHT * (self._centroids @ q)
        return dict(zip(self.classes, blended.tolist()))

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
