"""The MDF object model and file I/O: every example loads, saves and reloads to the same content;
models built in code; values (numbers, expressions, arrays); atomic save."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pytest
import torch
import yaml

import torchmdf
import torchmdf.mdf as mdf
from torchmdf.errors import TorchMDFError, ValidationError
from torchmdf.mdf import (
    Condition,
    ConditionSet,
    Edge,
    Function,
    Graph,
    InputPort,
    Model,
    Node,
    OutputPort,
    Parameter,
    ParameterCondition,
)

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "mdf-examples"


def _example_files() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".json", ".yaml", ".yml")
                  and p.name != "expected.json")


needs_examples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"{EXAMPLES} not present")
example_params = pytest.mark.parametrize(
    "path", _example_files() or [None], ids=lambda p: str(p.relative_to(EXAMPLES)) if p else "none")


def _read_raw(path: Path):
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _canon(obj, key=None):
    """The content of an MDF document up to what the format leaves open: numbers compare as
    floats, empty collections equal absent ones, and the pre-v0.4 spellings the loader reads
    (string shapes, condition ``args``, ``function: {name: args}``) are written the v0.4 way."""
    if isinstance(obj, dict):
        d = dict(obj)
        if "type" in d and "args" in d and set(d) <= {"type", "args", "metadata", "notes"}:
            d["kwargs"] = d.pop("args")  # pre-v0.4 condition
        if isinstance(d.get("function"), dict) and len(d["function"]) == 1:
            (name, args), = d["function"].items()
            d["function"], d["args"] = name, args
        out = {}
        for k, v in d.items():
            if k == "shape" and isinstance(v, str) and v.strip()[:1] in ("(", "["):
                v = [int(x) for x in v.strip("()[] ").split(",") if x.strip()]
            c = _canon(v, k)
            if c == {} or c == []:
                continue
            out[k] = c
        return out
    if isinstance(obj, (list, tuple)):
        return [_canon(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, float)):
        return float(obj)
    raise AssertionError(f"unexpected {type(obj)}")


@needs_examples
@example_params
def test_every_example_loads_and_validates(path):
    model = mdf.load(path)
    assert isinstance(model, Model)
    assert model.graphs and all(isinstance(g, Graph) for g in model.graphs)
    assert mdf.validate(model, lowering=False) == []
    assert model.source == str(path)
    # "valid" also means "compiles": every file modeci_mdf runs lowers; those it cannot run
    # (expected.json's anchor_fails) get located problems, never an exception
    lowered = mdf.validate(model)
    rel = path.relative_to(EXAMPLES).as_posix()
    anchor_fails = json.loads((EXAMPLES / "expected.json").read_text()).get("anchor_fails", {})
    if rel in anchor_fails:
        assert all(p.location and path.name in p.location for p in lowered), lowered
    else:
        assert lowered == [], lowered


@needs_examples
@example_params
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_example_round_trip(path, fmt, tmp_path):
    original = _canon(_read_raw(path))
    model = mdf.load(path)
    assert _canon(model.to_dict()) == original
    out = tmp_path / f"copy.{fmt}"
    mdf.save(model, out)
    again = mdf.load(out)
    assert _canon(again.to_dict()) == original
    assert _canon(_read_raw(out)) == original
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left behind


@needs_examples
def test_example_details():
    abcd = mdf.load(EXAMPLES / "MDF" / "ABCD.json")
    g = abcd.graphs[0]
    a = g.get_node("A")
    assert isinstance(a, Node) and a.get_parameter("slope").value == 1.1
    assert a.get_parameter("linear_func").function == "linear"
    assert a.get_parameter("linear_func").args == {"variable0": "input_port1", "slope": "slope",
                                                   "intercept": "intercept"}
    assert g.get_node("C").get_input_port("input_port1").shape == (1,)
    assert a.metadata == {"color": ".8 0 0"}
    assert [e.id for e in g.edges][0] == "edge_input0_A"
    assert [(n.id, p.id) for n, p in g.free_input_ports()] == []

    arrays = mdf.load(EXAMPLES / "MDF" / "Arrays.json")
    node = arrays.graphs[0].get_node("input_node")
    level = node.get_parameter("input_level").value
    assert isinstance(level, torch.Tensor) and level.dtype == torch.float64
    assert level.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    weight = arrays.graphs[0].edges[0].weight
    assert isinstance(weight, torch.Tensor) and weight.dtype == torch.int64

    fn = mdf.load(EXAMPLES / "MDF" / "FN.mdf.json")
    assert fn.graphs[0].notes.startswith("FitzHugh Nagumo")
    assert fn.graphs[0].nodes[0].get_parameter("V").is_stateful()
    assert not fn.graphs[0].nodes[0].get_parameter("a_v").is_stateful()

    rlc = mdf.load(EXAMPLES / "MDF" / "SwitchedRLC_Circuit.json")
    assert rlc.metadata == {"preferred_duration": 2, "preferred_dt": 0.001}
    vs = rlc.graphs[0].nodes[0].get_parameter("Vs")
    assert [(c.id, c.test, c.value) for c in vs.conditions] == [("off", "time<0.5", "0"), ("on", "time>=0.5", 0.1)]

    cond = mdf.load(EXAMPLES / "MDF" / "abc_conditions.json").graphs[0].conditions
    assert cond.node_specific["B"].type == "EveryNCalls"
    assert cond.node_specific["B"].kwargs == {"dependencies": "A", "n": 2}
    term = cond.termination["environment_state_update"]
    assert term.type == "And" and all(isinstance(c, Condition) for c in term.kwargs["dependencies"])

    pnl = mdf.load(EXAMPLES / "PsyNeuLink" / "model_ABCD.json").graphs[0]
    assert pnl.get_node("C").input_ports[0].shape == (1, 1)          # "(1, 1)" read as a shape
    assert pnl.conditions.node_specific["D"].kwargs["args"][0].type == "EveryNCalls"  # "args"

    ddm = mdf.load(EXAMPLES / "PyTorch" / "ddm.json")
    g = ddm.graphs[0]
    loop = g.get_node("LoopSubgraphLoop_11_12")
    assert isinstance(loop, Graph) and len(loop.nodes) == 12 and len(loop.edges) == 11
    assert g.get_endpoint("Loop_11_12") is loop
    assert g.get_node("Constant_6").get_parameter("value").value == 9223372036854775807
    assert ddm.onnx_opset_version == 9


@needs_examples
def test_large_example_keeps_arrays_as_tensors():
    model = mdf.load(EXAMPLES / "PyTorch" / "mlp_pure_mdf.json")
    weights = [p.value for n in model.graphs[0].nodes for p in n.parameters if p.id == "weight"]
    assert weights and all(isinstance(w, torch.Tensor) and w.dtype == torch.float64 for w in weights)


# --------------------------------------------------------------------------- built in code

def _small_model() -> Model:
    return Model(id="m", graphs=[Graph(id="g", nodes=[
        Node(id="src", parameters=[Parameter(id="level", value=torch.tensor([[1.0, 2.0], [3.0, 4.0]]))],
             output_ports=[OutputPort(id="out", value="level")]),
        Node(id="dst", input_ports=[InputPort(id="inp", shape=(2, 2))],
             parameters=[Parameter(id="slope", value=0.5),
                         Parameter(id="lin", function="linear",
                                   args={"variable0": "inp", "slope": "slope", "intercept": 0}),
                         Parameter(id="count", value="count + 1"),
                         Parameter(id="s", default_initial_value=0, time_derivative="-s + 1")],
             functions=[Function(id="f", value="A + B", args={"A": 1, "B": "slope"})],
             output_ports=[OutputPort(id="out", value="lin + f")]),
    ], edges=[Edge(id="e", sender="src", receiver="dst", sender_port="out", receiver_port="inp",
                   parameters={"weight": 2.0})],
        conditions=ConditionSet(node_specific={"dst": Condition("EveryNCalls", dependencies="src", n=1)}))])


def test_construct_in_code_and_round_trip(tmp_path):
    m = _small_model()
    assert m.format == "ModECI MDF v0.4" and m.generating_application.startswith("Python torchmdf")
    assert mdf.validate(m) == []
    g = m.get_graph("g")
    assert g.get_node("dst").get_parameter("count").is_stateful()
    assert g.get_node("dst").get_parameter("s").is_stateful()
    assert not g.get_node("dst").get_parameter("slope").is_stateful()
    assert g.get_edge("e").weight == 2.0
    assert g.get_node("dst").names() == ["inp", "slope", "lin", "count", "s", "f"]
    for fmt in ("json", "yaml"):
        path = tmp_path / f"m.{fmt}"
        mdf.save(m, path)
        back = mdf.load(path)
        assert back.to_dict() == json.loads(json.dumps(m.to_dict()))
        lvl = back.graphs[0].get_node("src").get_parameter("level").value
        assert isinstance(lvl, torch.Tensor) and lvl.dtype == torch.float64
        c = back.graphs[0].conditions.node_specific["dst"]
        assert (c.type, c.kwargs) == ("EveryNCalls", {"dependencies": "src", "n": 1})


def test_dumps_loads_and_file_objects():
    m = _small_model()
    for fmt in ("json", "yaml"):
        text = mdf.dumps(m, fmt)
        assert mdf.loads(text, fmt).to_dict() == m.to_dict()
    buf = io.StringIO(mdf.dumps(m, "json"))
    assert mdf.load(buf).graphs[0].id == "g"
    assert mdf.load(io.StringIO(mdf.dumps(m, "yaml")), format="yaml").id == "m"


def test_sub_object_dicts():
    p = Parameter.from_dict({"value": [1, 2], "metadata": {"k": 1}}, id="p")
    assert isinstance(p.value, torch.Tensor) and p.value.dtype == torch.int64
    assert p.to_dict() == {"metadata": {"k": 1}, "value": [1, 2]}
    n = Node.from_dict({"id": "A", "parameters": {"x": {"value": 1}}})
    assert n.id == "A" and n.get_parameter("x").value == 1
    g = Graph.from_dict({"nodes": {"A": {}}}, id="g")
    assert isinstance(g.nodes[0], Node)
    c = Condition.from_dict({"type": "Always", "kwargs": {}})
    assert c.type == "Always" and c.to_dict() == {"type": "Always", "kwargs": {}}
    m = Model.from_dict({"m": {"graphs": {"g": {"nodes": {"A": {}}}}}})
    assert m.id == "m" and m.format is None and "format" not in m.to_dict()["m"]
    with pytest.raises(ValidationError, match="unknown key 'bogus'"):
        Node.from_dict({"bogus": 1}, id="A", location="somewhere", strict=True)
    with pytest.warns(torchmdf.UnknownKeyWarning, match="bogus"):
        assert Node.from_dict({"bogus": 1}, id="A").extra == {"bogus": 1}
    f = Function.from_dict({"function": {"onnx::Relu": {"X": "x"}}}, id="f")
    assert (f.function, f.args) == ("onnx::Relu", {"X": "x"})
    pc = ParameterCondition.from_dict({"id": "c", "test": "t > 0", "value": [0.5]})
    assert isinstance(pc.value, torch.Tensor)


def test_values_keep_their_kind():
    m = mdf.loads(json.dumps({"m": {"graphs": {"g": {"nodes": {"A": {"parameters": {
        "i": {"value": 3}, "f": {"value": 2.5}, "b": {"value": True}, "s": {"value": "i + f"},
        "ints": {"value": [[1, 2], [3, 4]]}, "floats": {"value": [1, 2.5]}, "bools": {"value": [True, False]},
        "names": {"value": ["a", "b"]}, "ragged": {"value": [[1], [2, 3]]}, "empty": {"value": []},
        "d": {"value": {"k": [1, 2]}},
    }}}}}}}))
    ps = {p.id: p.value for p in m.graphs[0].nodes[0].parameters}
    assert type(ps["i"]) is int and type(ps["f"]) is float and ps["b"] is True and ps["s"] == "i + f"
    assert ps["ints"].dtype == torch.int64 and ps["ints"].shape == (2, 2)
    assert ps["floats"].dtype == torch.float64
    assert ps["bools"].dtype == torch.bool
    assert ps["names"] == ["a", "b"] and ps["ragged"] == [[1], [2, 3]]
    assert isinstance(ps["empty"], torch.Tensor) and ps["empty"].numel() == 0
    assert ps["d"] == {"k": [1, 2]}


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_floats_are_saved_losslessly(tmp_path, fmt):
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(50, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-30, 30, (50,), generator=gen)
    scalars = [0.1 + 0.2, 1e-310, 5e-324, 1.7976931348623157e308, -0.0, 1 / 3]
    m = Model(id="m", graphs=[Graph(id="g", nodes=[Node(id="A", parameters=[
        Parameter(id="arr", value=values), Parameter(id="nan", value=torch.tensor([math.nan, math.inf, -math.inf])),
        *[Parameter(id=f"s{i}", value=v) for i, v in enumerate(scalars)]])])])
    path = tmp_path / f"m.{fmt}"
    mdf.save(m, path)
    back = mdf.load(path).graphs[0].nodes[0]
    assert torch.equal(back.get_parameter("arr").value, values)
    nan = back.get_parameter("nan").value
    assert math.isnan(nan[0]) and nan[1] == math.inf and nan[2] == -math.inf
    for i, v in enumerate(scalars):
        got = back.get_parameter(f"s{i}").value
        assert got == v and math.copysign(1, got) == math.copysign(1, v)


# ------------------------------------------------------------------------------ atomic save

class _Opaque:
    pass


def _unserialisable_model() -> Model:
    m = _small_model()
    m.graphs[0].nodes[0].parameters.append(Parameter(id="bad", value=_Opaque()))
    return m


def test_failed_save_creates_nothing(tmp_path):
    target = tmp_path / "new.json"
    with pytest.raises(ValidationError) as info:
        mdf.save(_unserialisable_model(), target)
    assert "parameter 'bad'" in str(info.value)
    with pytest.raises(ValidationError, match="_Opaque"):
        mdf.save(_unserialisable_model(), target, validate=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_failed_save_leaves_existing_file_untouched(tmp_path, suffix):
    target = tmp_path / f"model{suffix}"
    mdf.save(_small_model(), target)
    before = target.read_bytes()
    stat = os.stat(target)
    with pytest.raises(TorchMDFError):
        mdf.save(_unserialisable_model(), target, validate=False)
    assert target.read_bytes() == before
    assert os.stat(target).st_mtime_ns == stat.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_save_replaces_atomically_and_keeps_mode(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    mdf.save(_small_model(), target)
    assert mdf.load(target).id == "m"
    assert os.stat(target).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_save_errors_are_located(tmp_path):
    with pytest.raises(ValidationError, match="suffix"):
        mdf.save(_small_model(), tmp_path / "m.txt")
    with pytest.raises(TorchMDFError, match="no_such_dir"):
        mdf.save(_small_model(), tmp_path / "no_such_dir" / "m.json")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValidationError, match="complex"):
        m = _small_model()
        m.graphs[0].nodes[0].parameters[0].value = torch.zeros(2, dtype=torch.complex64)
        mdf.save(m, tmp_path / "c.json")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_bytes(tmp_path):
    from torchmdf.mdf.io import atomic_write_bytes

    target = tmp_path / "blob.onnx"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    (tmp_path / "adir").mkdir()
    with pytest.raises(TorchMDFError, match="adir"):
        atomic_write_bytes(tmp_path / "adir", b"x")  # replacing a directory fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "blob.onnx"]
