"""The ONNX backend (onnx-ir): every zoo model is written as a file that onnx.checker's full
check accepts and onnxruntime runs to torch's outputs; ``aten::`` fallbacks are written in a
declared custom domain and read back; attribute types follow the ONNX schemas; the fixtures
that once gave files onnxruntime refused now convert or get a located error."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import torchmdf  # noqa: E402
from torchmdf.backends.onnx import ATEN_DOMAIN, ATEN_SCHEMA_PREFIX, emit_onnx  # noqa: E402
from torchmdf.errors import ConversionError  # noqa: E402
from torchmdf.ir import Graph, TensorType  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import zoo  # noqa: E402

EXAMPLES = Path("/work/shared/mdf-examples")
if not EXAMPLES.is_dir():
    EXAMPLES = Path(__file__).parent / "fixtures" / "mdf_corpus"

HEAVY = {"gpt2", "gpt2_sdpa", "llama_sdpa", "llama_eager", "bart_sdpa", "vit_sdpa"}
"""Zoo models that take more than a few seconds here (marked slow)."""


def _params(entries):
    return [pytest.param(e.name, marks=[pytest.mark.slow] if e.name in HEAVY else []) for e in entries]


def flat(x):
    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return [np.asarray(x.detach() if isinstance(x, torch.Tensor) else x)]
    return [a for item in x for a in flat(item)]


def assert_close(got, expected, rtol=1e-4, atol=1e-5):
    got, expected = flat(got), flat(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


def run_ort(proto, inputs):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: np.asarray(a) for i, a in zip(sess.get_inputs(), inputs)})


@pytest.mark.parametrize("name", _params([e for e in zoo.ZOO if "state" not in e.tags]))
def test_zoo_model_is_checked_and_runs_in_onnxruntime_as_torch(name):
    e = zoo.get(name)
    model, args = e.make_model(), e.make_inputs()
    with torch.no_grad():
        ref = model(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = torchmdf.compile(model, target="onnx", example_inputs=args)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.producer_name == "torchmdf"
    if any(o.domain == ATEN_DOMAIN for o in proto.opset_import):  # onnxruntime has no kernels: read it back
        assert name in ATEN_LEFT, "a zoo model newly needs aten:: fallbacks"
        with torch.no_grad():
            assert_close(torchmdf.compile(proto, target="fx")(*args), ref, rtol=1e-3, atol=1e-4)
        return
    assert_close(run_ort(proto, [a.numpy() for a in args]), ref, rtol=1e-3, atol=1e-4)


ATEN_LEFT: set[str] = set()
"""Zoo models with an op the canonicalizer leaves aten:: (none since slice_scatter became ScatterND)."""


def test_stateful_zoo_model_is_refused_with_a_reason():
    e = zoo.get("running_stats")
    with pytest.raises(ConversionError, match="has state"):
        torchmdf.compile(e.make_model(), target="onnx", example_inputs=e.make_inputs())


def test_aten_fallbacks_are_a_declared_domain_that_reads_back():
    """With no canonicalization every op stays aten::; the file is complete (checker, full
    check), declares the domain and each op's torch schema, onnxruntime refuses it (no
    kernels) and the ONNX frontend reads it back to the same numbers."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(approximate="tanh"), torch.nn.Softmax(-1)).eval()
    x = torch.randn(3, 4)
    proto = torchmdf.compile(model, target="onnx", example_inputs=(x,), passes=[])
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[ATEN_DOMAIN] == 1
    ops = {n.op_type for n in proto.graph.node if n.domain == ATEN_DOMAIN}
    assert "gelu" in ops
    schemas = {p.key[len(ATEN_SCHEMA_PREFIX):]: p.value for p in proto.metadata_props
               if p.key.startswith(ATEN_SCHEMA_PREFIX)}
    assert set(schemas) == ops and schemas["gelu"].startswith("aten::gelu(")
    gelu = next(n for n in proto.graph.node if n.op_type == "gelu")
    assert {a.name: a.s for a in gelu.attribute} == {"approximate": b'"tanh"'}
    with pytest.raises(Exception, match="pkg.torchmdf.aten"):
        run_ort(proto, [x.numpy()])
    gm = torchmdf.compile(proto, target="fx")
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))


def test_dtype_attributes_of_aten_fallbacks_read_back():
    g = Graph("g")
    x = g.add_input("x", TensorType(torch.float32, (2, 3)))
    n = g.create_node("aten::_to_copy", [x], {"dtype": torch.float64})
    g.outputs = [n.output]
    proto = emit_onnx(g)
    node = next(n for n in proto.graph.node if n.domain == ATEN_DOMAIN)
    assert node.attribute[0].s == b'{"dtype": "float64"}'
    gm = torchmdf.compile(proto, target="fx")
    assert gm(torch.ones(2, 3)).dtype == torch.float64


def test_opset_follows_the_ops():
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3), torch.nn.GroupNorm(2, 4)).eval()
    x = torch.randn(1, 4, 6, 6)
    proto = torchmdf.compile(model, target="onnx", example_inputs=(x,))
    assert proto.opset_import[0].version == 21  # GroupNormalization as the impl computes it
    assert_close(run_ort(proto, [x.numpy()]), model(x))
    plain = torchmdf.compile(torch.nn.Linear(3, 2), target="onnx", example_inputs=(torch.randn(1, 3),))
    assert plain.opset_import[0].version == 18


def test_constant_of_shape_value_is_a_one_element_tensor_of_its_dtype():
    g = Graph("g")
    shape = g.add_constant(torch.tensor([2, 3]))
    n = g.create_node("onnx::ConstantOfShape", [shape], {"value": [0]})
    g.outputs = [n.output]
    proto = emit_onnx(g)
    (value,) = proto.graph.node[0].attribute
    assert value.type == onnx.AttributeProto.TENSOR and list(value.t.dims) == [1]
    assert value.t.data_type == onnx.TensorProto.INT64
    (out,) = run_ort(proto, [])
    assert out.dtype == np.int64 and out.shape == (2, 3)


def test_mixed_dtype_inputs_of_one_type_constraint_get_a_cast():
    """An MDF file's float64 literal as Pad's constant_value of float32 data: torch promotes,
    ONNX wants one type; the writer casts."""
    g = Graph("g")
    x = g.add_input("x", TensorType(torch.float32, (2, 2)))
    pads = g.add_constant(torch.tensor([1, 1, 1, 1]))
    value = g.add_constant(torch.tensor(2.5, dtype=torch.float64))
    n = g.create_node("onnx::Pad", [x, pads, value])
    g.outputs = [n.output]
    proto = emit_onnx(g)
    assert [n.op_type for n in proto.graph.node] == ["Cast", "Pad"]
    xs = np.ones((2, 2), np.float32)
    (out,) = run_ort(proto, [xs])
    np.testing.assert_array_equal(out, np.pad(xs, 1, constant_values=2.5))


def test_mdf_inception_file_runs_in_onnxruntime():
    """inception.json's ConstantOfShape (value [0]: int64) once made a file the checker refused."""
    path = EXAMPLES / "PyTorch" / "inception.json"
    if not path.is_file():
        pytest.skip("inception.json fixture not present")
    from torchmdf.verify import verify_mdf_file

    result = verify_mdf_file(str(path))
    ort_path = next(p for p in result.paths if p.name == "onnxruntime")
    assert ort_path.skipped is None and ort_path.failed is None and ort_path.ok, result.table()


def test_a_graph_without_outputs_is_a_located_error_not_an_empty_file():
    """ParametersFunctions.json has no output ports: the empty ONNX graph written for it was
    refused by onnxruntime."""
    path = EXAMPLES / "MDF" / "ParametersFunctions.json"
    if not path.is_file():
        pytest.skip("ParametersFunctions.json fixture not present")
    with pytest.raises(ConversionError, match="has no outputs"):
        torchmdf.compile(str(path), target="onnx")
    from torchmdf.verify import verify_mdf_file

    ort_path = next(p for p in verify_mdf_file(str(path)).paths if p.name == "onnxruntime")
    assert ort_path.skipped and "no outputs" in ort_path.skipped


def test_loop_carried_values_keep_their_own_dtypes():
    """A Loop's carried values are heterogeneous (type "V"): no Cast between them."""
    g = Graph("g")
    n0 = g.add_input("n", TensorType(torch.int64, ()))
    x0 = g.add_input("x", TensorType(torch.float32, (2,)))
    loop = g.create_node("onnx::Loop", [g.add_constant(torch.tensor(3)), None, n0, x0], num_outputs=2)
    body = loop.add_region("body")
    body.add_input("i", TensorType(torch.int64, ()))
    body.add_input("c", TensorType(torch.bool, ()))
    n, x = body.add_input("n_in", TensorType(torch.int64, ())), body.add_input("x_in", TensorType(torch.float32, (2,)))
    one = body.add_constant(torch.tensor(1))
    body.outputs = [body.add_constant(torch.tensor(True)), body.create_node("onnx::Add", [n, one]).output,
                    body.create_node("onnx::Add", [x, x]).output]
    g.outputs = list(loop.outputs)
    proto = emit_onnx(g)
    assert "Cast" not in [nd.op_type for nd in proto.graph.node]
    n_out, x_out = run_ort(proto, [np.array(2), np.ones(2, np.float32)])
    assert n_out == 5 and n_out.dtype == np.int64
    np.testing.assert_array_equal(x_out, np.full(2, 8.0, np.float32))
