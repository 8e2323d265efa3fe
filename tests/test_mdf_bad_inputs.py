"""Malformed and hostile MDF files: each must raise a TorchMDFError whose message names the file
and the place of the problem (line/column for syntax errors, the MDF path otherwise); nothing in
a file is ever executed."""

from __future__ import annotations

import json

import pytest

import torchmdf.mdf as mdf
from torchmdf.errors import ExpressionError, TorchMDFError, UnknownKeyWarning, ValidationError


def _doc(nodes: dict, edges: dict | None = None, conditions: dict | None = None, fmt: str = "ModECI MDF v0.4") -> str:
    graph: dict = {"nodes": nodes}
    if edges is not None:
        graph["edges"] = edges
    if conditions is not None:
        graph["conditions"] = conditions
    return json.dumps({"m": {"format": fmt, "graphs": {"g": graph}}})


def _param(value, pid="p", node="A") -> str:
    return _doc({node: {"parameters": {pid: {"value": value}}}})


_PATH = "model 'm' > graph 'g'"
_A = f"{_PATH} > node 'A'"
_SRC = {"A": {"parameters": {"p": {"value": 1}}, "output_ports": {"out": {"value": "p"}}}}
_DST = {"B": {"input_ports": {"inp": {}}, "output_ports": {"out": {"value": "inp"}}}}


def _edge(s="A", r="B", sp="out", rp="inp") -> dict:
    return {"e": {"sender": s, "receiver": r, "sender_port": sp, "receiver_port": rp}}


_BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
"""

# (id, suffix, content, fragments the message must contain, expected class)
CASES = [
    ("json-syntax", ".json", '{"m": {"graphs": }}', ["invalid JSON", "line 1, column 18"], ValidationError),
    ("json-trailing-comma", ".json", '{"m": {"graphs": {},}}', ["invalid JSON", "line 1"], ValidationError),
    ("json-unclosed", ".json", '{"m": {\n  "graphs": {\n', ["invalid JSON", "line 3"], ValidationError),
    ("yaml-syntax", ".yaml", "m:\n  graphs: [\n    g\n  nodes: {", ["invalid YAML", "line"], ValidationError),
    ("yaml-tab", ".yaml", "m:\n\tgraphs: {}\n", ["invalid YAML", "line 2"], ValidationError),
    ("yaml-bad-mapping", ".yml", "m: {graphs: {g: {nodes: {A: [}}}}", ["invalid YAML", "column"], ValidationError),
    ("empty-json", ".json", "", ["empty"], ValidationError),
    ("empty-yaml", ".yaml", "", ["empty"], ValidationError),
    ("whitespace-json", ".json", "   \n\n", ["empty"], ValidationError),
    ("top-level-list", ".json", "[1, 2, 3]", ["at the top level", "a list"], ValidationError),
    ("top-level-number", ".yaml", "42\n", ["at the top level", "a int"], ValidationError),
    ("two-models", ".json", '{"m": {"graphs": {}}, "n": {"graphs": {}}}', ["exactly one model", "2 keys"],
     ValidationError),
    ("model-not-mapping", ".json", '{"m": 5}', ["model 'm'", "expected a mapping"], ValidationError),
    ("no-graphs", ".json", '{"m": {"format": "ModECI MDF v0.4"}}', ["model 'm'", "no graphs"], ValidationError),
    ("unknown-model-key", ".json", '{"m": {"grafs": {}}}', ["model 'm'", "unknown key 'grafs'"], ValidationError),
    ("unknown-node-key", ".json", _doc({"A": {"inputs": {}}}), [_A, "unknown key 'inputs'"], ValidationError),
    ("unknown-param-key", ".json", _doc({"A": {"parameters": {"p": {"valu": 1}}}}),
     [f"{_A} > parameter 'p'", "unknown key 'valu'"], ValidationError),
    ("graphs-not-mapping", ".json", '{"m": {"graphs": "g"}}', ["model 'm'", "graphs must be a mapping"],
     ValidationError),
    ("node-not-mapping", ".json", _doc({"A": 3}), [_A, "expected a mapping of fields, got int"], ValidationError),
    ("ports-not-mapping", ".json", _doc({"A": {"input_ports": 7}}), [_A, "input_ports must be a mapping"],
     ValidationError),
    ("bad-shape", ".json", _doc({"A": {"input_ports": {"x": {"shape": [1, "two"]}}}}),
     [f"{_A} > input port 'x'", "shape"], ValidationError),
    ("output-value-number", ".json", _doc({"A": {"output_ports": {"o": {"value": 5}}}}),
     [f"{_A} > output port 'o' > value", "expression string"], ValidationError),
    ("metadata-list", ".json", _doc({"A": {"metadata": [1, 2]}}), [_A, "metadata must be a mapping"],
     ValidationError),
    ("empty-node-id", ".json", _doc({"": {}}), [f"{_PATH} > node ''", "has no id"], ValidationError),
    ("yaml-bool-id", ".yaml", "m:\n  graphs:\n    g:\n      nodes:\n        on: {}\n",
     [f"{_PATH} > node True", "non-empty string"], ValidationError),
    ("duplicate-node-json", ".json",
     '{"m": {"graphs": {"g": {"nodes": {"A": {}, "A": {}}}}}}', [_PATH, "'A' given more than once"],
     ValidationError),
    ("duplicate-key-yaml", ".yaml", "m:\n  graphs:\n    g:\n      nodes:\n        A: {}\n        A: {}\n",
     [_PATH, "'A' given more than once"], ValidationError),
    ("duplicate-port-param", ".json",
     _doc({"A": {"input_ports": {"x": {}}, "parameters": {"x": {"value": 1}}}}),
     [_A, "duplicate id 'x'"], ValidationError),
    ("edge-unknown-node", ".json", _doc({**_SRC, **_DST}, _edge(r="C")),
     [f"{_PATH} > edge 'e'", "receiver node 'C' does not exist"], ValidationError),
    ("edge-unknown-port", ".json", _doc({**_SRC, **_DST}, _edge(sp="output")),
     [f"{_PATH} > edge 'e'", "no output port 'output'", "did you mean 'out'"], ValidationError),
    ("edge-missing-sender", ".json",
     _doc({**_SRC, **_DST}, {"e": {"receiver": "B", "sender_port": "out", "receiver_port": "inp"}}),
     [f"{_PATH} > edge 'e'", "missing 'sender'"], ValidationError),
    ("unknown-function", ".json",
     _doc({"A": {"parameters": {"f": {"function": "linearr", "args": {"variable0": 1}}}}}),
     [f"{_A} > parameter 'f' > function", "unknown function 'linearr'", "did you mean 'linear'"],
     ValidationError),
    ("wrong-arg-name", ".json", _doc({"A": {"parameters": {"f": {"function": "linear", "args": {
        "variable0": 1, "slop": 2, "intercept": 0}}}}}),
     [f"{_A} > parameter 'f' > args", "does not take the argument(s) 'slop'"], ValidationError),
    ("wrong-onnx-arg", ".json", _doc({"A": {"parameters": {"f": {"function": "onnx::Add", "args": {
        "A": 1, "C": 2}}}}}), [f"{_A} > parameter 'f' > args", "'C'"], ValidationError),
    ("unknown-onnx-op", ".json", _doc({"A": {"parameters": {"f": {"function": "onnx::Frobnicate", "args": {}}}}}),
     [f"{_A} > parameter 'f' > function", "onnx::Frobnicate"], ValidationError),
    ("unknown-name", ".json", _param("q + 1"), [f"{_A} > parameter 'p' > value", "unknown name 'q'"],
     ExpressionError),
    ("cycle-without-state", ".json",
     _doc({"A": {"input_ports": {"inp": {}}, "output_ports": {"out": {"value": "inp"}}}, **_DST},
          {**_edge(), "back": {"sender": "B", "receiver": "A", "sender_port": "out", "receiver_port": "inp"}}),
     [_PATH, "'A', 'B' form a cycle"], ValidationError),
    ("cycle-with-state-only", ".json",
     _doc({"A": {"input_ports": {"inp": {}}, "parameters": {"s": {"value": "s + inp"}},
                 "output_ports": {"out": {"value": "s"}}}, **_DST},
          {**_edge(), "back": {"sender": "B", "receiver": "A", "sender_port": "out", "receiver_port": "inp"}}),
     [_PATH, "form a cycle"], ValidationError),
    ("hostile-import", ".json", _param("__import__('os').system('echo hi')"),
     [f"{_A} > parameter 'p' > value", "'__import__'", "column 1"], ExpressionError),
    ("hostile-attribute", ".json", _param("p.__class__.__bases__"),
     [f"{_A} > parameter 'p' > value", "attribute access"], ExpressionError),
    ("hostile-lambda", ".yaml", "m:\n  graphs:\n    g:\n      nodes:\n        A:\n          output_ports:\n"
     "            o: {value: 'lambda: 1'}\n", [f"{_A} > output port 'o' > value", "lambda"], ExpressionError),
    ("hostile-comprehension", ".json", _param("[c for c in ().__class__.__subclasses__()]"),
     [f"{_A} > parameter 'p'", "comprehension"], ExpressionError),
    ("hostile-eval", ".json", _param("eval('1+1')"), [f"{_A} > parameter 'p'", "'eval'"], ExpressionError),
    ("string-literal", ".json", _param("'abc' + p"), [f"{_A} > parameter 'p'", "a string"], ExpressionError),
    ("deep-expression", ".json", _param("(" * 500 + "1" + ")" * 500), [f"{_A} > parameter 'p'", "nested"],
     ExpressionError),
    ("long-expression", ".json", _param("+".join(["1"] * 20000)), [f"{_A} > parameter 'p'", "characters long"],
     ExpressionError),
    ("deep-json", ".json", '{"m": ' + "[" * 100000 + "]" * 100000 + "}", ["nested too deeply"], ValidationError),
    ("yaml-billion-laughs", ".yaml", _BILLION_LAUGHS, ["aliases", "line"], ValidationError),
    ("not-utf8", ".json", b'{"m": {"graphs": {"\xff\xfe": {}}}}', ["not UTF-8"], ValidationError),
    ("time-derivative-no-initial", ".json", _doc({"A": {"parameters": {"p": {"time_derivative": "1"}}}}),
     [f"{_A} > parameter 'p'", "default_initial_value"], ValidationError),
    ("condition-unknown-node", ".json",
     _doc(_SRC, conditions={"node_specific": {"Z": {"type": "Always", "kwargs": {}}}}),
     [f"{_PATH} > conditions > node_specific 'Z'", "does not exist"], ValidationError),
    ("condition-unknown-type", ".json",
     _doc(_SRC, conditions={"termination": {"environment_state_update": {"type": "Sometimes"}}}),
     ["conditions > termination 'environment_state_update'", "unknown condition type 'Sometimes'"],
     ValidationError),
    ("condition-bad-kwargs", ".json",
     _doc(_SRC, conditions={"node_specific": {"A": {"type": "Always", "kwargs": [1]}}}),
     ["conditions > node_specific 'A'", "'kwargs' must be a mapping"], ValidationError),
    ("bad-reduce", ".json", _doc({"A": {"input_ports": {"x": {"reduce": "mean"}}}}),
     [f"{_A} > input port 'x'", "reduce"], ValidationError),
    ("string-default-value", ".json", _doc({"A": {"input_ports": {"x": {"default_value": "import os"}}}}),
     [f"{_A} > input port 'x' > default_value"], ValidationError),
    ("parameter-without-value", ".json", _doc({"A": {"parameters": {"p": {}}}}),
     [f"{_A} > parameter 'p'", "has no value"], ValidationError),
    ("function-dict-two-keys", ".json",
     _doc({"A": {"parameters": {"p": {"function": {"onnx::Add": {}, "onnx::Mul": {}}}}}}),
     [f"{_A} > parameter 'p' > function", "exactly one key"], ValidationError),
    ("edge-weight-string", ".json",
     _doc({**_SRC, **_DST}, {"e": {**_edge()["e"], "parameters": {"weight": "os.system"}}}),
     [f"{_PATH} > edge 'e' > parameters > weight"], ValidationError),
    ("nested-graph-bad", ".json", _doc({"L": {"nodes": {"X": {"output_ports": {"o": {"value": "zz"}}}}}}),
     [f"{_PATH} > graph 'L' > node 'X' > output port 'o'", "unknown name 'zz'"], ExpressionError),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_file(tmp_path, case):
    name, suffix, content, fragments, cls = case
    path = tmp_path / f"bad_{name}{suffix}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    strict = any("unknown key" in f for f in fragments)  # kept with a warning unless strict
    with pytest.raises(TorchMDFError) as info:
        mdf.load(path, strict=strict)
    err = info.value
    msg = str(err)
    assert isinstance(err, cls), (type(err), msg)
    assert path.name in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    for p in getattr(err, "problems", []):
        assert path.name in str(p)


def test_at_least_thirty_cases():
    assert len({c[0] for c in CASES}) >= 30


def test_parser_errors_keep_their_cause(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{")
    with pytest.raises(ValidationError) as info:
        mdf.load(p)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    y = tmp_path / "bad.yaml"
    y.write_text("a: [")
    with pytest.raises(ValidationError) as info:
        mdf.load(y)
    import yaml
    assert isinstance(info.value.__cause__, yaml.YAMLError)


def test_hostile_expressions_do_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.json"
    path.write_text(_param(f"__import__('os').system('touch {marker}')"))
    with pytest.raises(ExpressionError):
        mdf.load(path)
    assert not marker.exists()


def test_unknown_suffix_and_missing_file(tmp_path):
    p = tmp_path / "model.txt"
    p.write_text(_param(1))
    with pytest.raises(ValidationError, match="suffix") as info:
        mdf.load(p)
    assert "model.txt" in str(info.value)
    assert mdf.load(p, format="json").id == "m"
    with pytest.raises(TorchMDFError, match="missing.json"):
        mdf.load(tmp_path / "missing.json")
    with pytest.raises(TorchMDFError):
        mdf.load(12345)  # type: ignore[arg-type]


def test_many_problems_in_one_file_are_all_reported(tmp_path):
    path = tmp_path / "many.json"
    path.write_text(_doc({"A": {"parameters": {"p": {"value": "q"}, "f": {"function": "nope"}},
                                "output_ports": {"o": {"value": "lambda: 1"}}}}, _edge(r="Z")))
    with pytest.raises(ValidationError) as info:
        mdf.load(path)
    # unknown name q, unknown function nope, lambda, no port 'out' on A, no node 'Z'
    assert len(info.value.problems) == 5
    msg = str(info.value)
    assert "5 problems" in msg and msg.count("many.json") >= 6


def test_validate_false_skips_checks_but_not_structure(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(_param("q + 1"))
    assert mdf.load(path, validate=False).graphs[0].nodes[0].parameters[0].value == "q + 1"
    path.write_text(_doc({"A": {"bogus": 1}}))
    with pytest.raises(ValidationError, match="bogus"):
        mdf.load(path, validate=False, strict=True)
    with pytest.warns(UnknownKeyWarning, match="bogus"):
        assert mdf.load(path, validate=False).graphs[0].nodes[0].extra == {"bogus": 1}


@pytest.mark.parametrize("name", [c[0] for c in CASES if any("unknown key" in f for f in c[3])])
def test_unknown_keys_are_kept_with_a_warning(tmp_path, name):
    """modeci_mdf loads files with keys MDF does not define; so does torchmdf, keeping them
    (written back on save) and saying so; ``strict=True`` (see test_bad_file) refuses them."""
    _, suffix, content, fragments, _ = next(c for c in CASES if c[0] == name)
    key = next(f for f in fragments if "unknown key" in f).split("'")[1]
    path = tmp_path / f"m{suffix}"
    path.write_text(content)
    with pytest.warns(UnknownKeyWarning, match=f"'{key}'"):
        m = mdf.load(path, validate=False)  # "grafs": a model without graphs is still invalid
    assert any(f"unknown key '{key}'" in str(p) for p in mdf.validate(m, strict=True, lowering=False))
    assert not any("unknown key" in str(p) for p in mdf.validate(m, lowering=False))
    out = tmp_path / f"back{suffix}"
    mdf.save(m, out, validate=False)
    assert f"{key}" in out.read_text()
    with pytest.warns(UnknownKeyWarning):
        again = mdf.load(out, validate=False)
    assert again.to_dict() == m.to_dict()


@pytest.mark.parametrize("suffix, text, fragment", [
    (".json", _doc({"A": {"parameters": {"f": {"function": "linear", "args": {"variable0": 1, "slope": 1,
                                                                              "intercept": 0}}}}}).replace(
        '"intercept": 0', '"intercept": 0, "slope": 2'), "args: key(s) 'slope' given more than once"),
    (".yaml", "m:\n  graphs:\n    g:\n      nodes: {A: {}}\n      conditions:\n        node_specific:\n"
              "          A: {type: Always}\n          A: {type: Never}\n", "node_specific: key(s) 'A'"),
])
def test_duplicate_keys_anywhere_are_reported(tmp_path, suffix, text, fragment):
    path = tmp_path / f"dup{suffix}"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        mdf.load(path)
    assert fragment in str(info.value) and path.name in str(info.value)
