"""The hostile-file corpus: every class of attack on a model file found so far (issue 9),
written into a folder per case.  ``build(root)`` writes the files (big ones are generated)
and returns the cases; ``tests/hostile_worker.py`` runs them; ``tests/test_hostile_files.py``
asserts.

A case: ``name``, ``file`` (in its folder), ``action`` (load, validate, fx, run, simulate,
cli), ``expect`` ("error": a TorchMDFError that names the file; "ok"; "any": either),
``bound`` (seconds the action may take), and optional ``limits`` (torchmdf.limits set in the
child), ``steps``, ``argv``.  ``root/outside/secret.txt`` holds a canary that no case may
read, and ``evilmod.py`` beside some files writes ``IMPORTED`` if it is ever imported.
"""

from __future__ import annotations

import json
import os

CANARY = "CANARY-3f9c1e-not-for-model-files"
SECRET = os.path.join("..", "outside", "secret.txt")


def _model(nodes: dict, edges: dict | None = None, conditions: dict | None = None,
           metadata: dict | None = None) -> dict:
    g: dict = {"nodes": nodes}
    if edges:
        g["edges"] = edges
    if conditions:
        g["conditions"] = conditions
    m: dict = {"format": "ModECI MDF v0.4", "graphs": {"g": g}}
    if metadata:
        m["metadata"] = metadata
    return {"m": m}


def _param_node(params: dict, out: str = "x", ports: dict | None = None) -> dict:
    n: dict = {"parameters": params, "output_ports": {"o": {"value": out}}}
    if ports:
        n["input_ports"] = ports
    return n


def _fn(name: str, **args) -> dict:
    return {"function": name, "args": args}


def _wide(n: int) -> dict:
    nodes = {"src": {"input_ports": {"i": {"default_value": [1.0, -2.0]}}, "output_ports": {"o": {"value": "i"}}}}
    edges = {}
    for k in range(n):
        nodes[f"n{k}"] = {"input_ports": {"i": {}}, "parameters": {"y": {"value": "i * 2 + 1"}},
                          "output_ports": {"o": {"value": "y"}}}
        edges[f"e{k}"] = {"sender": "src", "receiver": f"n{k}", "sender_port": "o", "receiver_port": "i"}
    return _model(nodes, edges)


def _chain(n: int) -> dict:
    nodes = {"n0": {"input_ports": {"i": {"default_value": [1.0, -2.0]}}, "parameters": {"y": {"value": "i * 0.5"}},
                    "output_ports": {"o": {"value": "y"}}}}
    edges = {}
    for k in range(1, n):
        nodes[f"n{k}"] = {"input_ports": {"i": {}}, "parameters": {"y": {"value": "i * 0.5 + 1"}},
                          "output_ports": {"o": {"value": "y"}}}
        edges[f"e{k}"] = {"sender": f"n{k - 1}", "receiver": f"n{k}", "sender_port": "o", "receiver_port": "i"}
    return _model(nodes, edges)


def _nested_graphs(depth: int) -> dict:
    g: dict = {"nodes": {"A": _param_node({"x": {"value": 1.0}})}}
    for i in range(depth):
        g = {"nodes": {"A": _param_node({"x": {"value": 1.0}}), f"inner{i}": g}}
    return {"m": {"format": "ModECI MDF v0.4", "graphs": {"g": g}}}


def _nested_conditions(depth: int) -> dict:
    c: dict = {"type": "Always"}
    for _ in range(depth):
        c = {"type": "Not", "kwargs": {"condition": c}}
    return _model({"A": _param_node({"x": {"value": 1.0}})}, conditions={"node_specific": {"A": c}})


def _yaml_one_param(value_text: str) -> str:
    return ("m:\n  format: ModECI MDF v0.4\n  graphs:\n    g:\n      nodes:\n        A:\n"
            "          parameters:\n            x:\n              value: " + value_text + "\n"
            "          output_ports:\n            o:\n              value: x\n")


_EVILMOD = ("import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('imported')\n"
            "class Thing:\n    pass\n")


def _cases() -> list[tuple[dict, dict]]:
    """(case, {file name: content}) pairs; content is str, bytes, a dict (JSON) or a callable
    ``f(folder)`` that makes the file itself (symlinks, FIFOs)."""
    P = _param_node
    out: list[tuple[dict, dict]] = []

    def add(name: str, action: str, expect: str, content: object, file: str = "model.json",
            extra: dict | None = None, **kw) -> None:
        case = {"name": name, "file": file, "action": action, "expect": expect, "bound": kw.pop("bound", 30)}
        case.update(kw)
        files = {file: content}
        files.update(extra or {})
        out.append((case, files))

    # -- 1. a closed set of what a file can call ------------------------------------------------
    for act in ("validate", "run"):
        add(f"aten_from_file_{act}", act, "error", _model({"A": P({"x": _fn(
            "aten::from_file", filename=SECRET, size=100)})}))
    add("aten_from_file_port_id", "run", "error", _model({"A": P(
        {"x": {"function": "aten::from_file", "args": {"filename": "/etc/passwd"}}},
        ports={"/etc/passwd": {"default_value": 1.0}})}))
    add("aten_copy_inplace", "run", "error", _model({"A": P(
        {"a": {"value": [1.0]}, "x": _fn("aten::copy_", self="a", src="a")})}))
    for op in ("aten::as_strided", "aten::_reshape_alias", "aten::as_strided_scatter"):
        add(f"{op[6:]}_heap_read", "run", "error", _model({"A": P(
            {"a": {"value": [1.0, 2.0]}, "x": _fn(op, self="a", size=[100000], stride=[100000])})}))
    add("aten_empty_uninitialized", "run", "error", _model({"A": P({"x": _fn("aten::empty.memory_format",
                                                                            size=[1000])})}))
    add("aten_set_storage", "run", "error", _model({"A": P({"a": {"value": [1.0]}, "x": _fn("aten::set_", self="a")})}))
    add("aten_add_out", "run", "error", _model({"A": P({"a": {"value": [1.0]}, "x": _fn("aten::add.out", self="a",
                                                                                     other="a", out="a")})}))
    add("aten_random", "validate", "error", _model({"A": P({"x": _fn("aten::rand", size=[3])})}))
    add("aten_device_ignored", "run", "ok", _model({"A": P({"x": _fn("aten::ones", size=[2],
                                                                  device={"device": "cuda:7"})})}))
    add("aten_bad_memory_format", "run", "error", _model({"A": P(
        {"a": {"value": [[1.0]]}, "x": _fn("aten::clone", self="a", memory_format={"memory_format": "load"})})}))
    add("aten_bad_dtype", "run", "error", _model({"A": P(
        {"a": {"value": [1.0]}, "x": _fn("aten::_to_copy", self="a", dtype={"dtype": "load"})})}))
    add("onnx_cast_unknown_type_validate", "validate", "error", _model({"A": P(
        {"a": {"value": [1.0]}, "x": _fn("onnx::Cast", input="a", to=99999)})}))
    add("onnx_cast_unknown_type_run", "run", "error", _model({"A": P(
        {"a": {"value": [1.0]}, "x": _fn("onnx::Cast", input="a", to=99999)})}))
    add("unknown_namespace", "validate", "error", _model({"A": P({"x": _fn("os::system", command="id")})}))
    # metadata never reaches an importer or pytree's deserializer
    spec = json.dumps([1, {"type": "evilmod.Thing", "context": "null", "children_spec": []}])
    for act in ("load", "run"):
        add(f"treespec_import_{act}", act, "error", _model(
            {"A": P({"x": {"value": [1.0]}})}, metadata={"torchmdf": {"pytorch_out_spec": spec}}),
            extra={"evilmod.py": _EVILMOD})
    add("treespec_namedtuple", "run", "error", _model({"A": P({"x": {"value": [1.0]}})}, metadata={"torchmdf": {
        "pytorch_out_spec": json.dumps([1, {"type": "collections.namedtuple", "context": "[\"evilmod.Thing\"]",
                                            "children_spec": []}])}}), extra={"evilmod.py": _EVILMOD})
    add("metadata_wrong_type", "load", "error", _model({"A": P({"x": {"value": 1.0}})},
                                                       metadata={"torchmdf": {"output_ports": 5}}))
    add("metadata_injected_key_ignored", "run", "ok", _model({"A": P({"x": {"value": [1.0]}})}, metadata={
        "torchmdf": {"pytorch_input_mutations": [{"input": "x", "evil": 1}], "pytorch_constant_outputs": [[0, "x"]]}}))
    add("parameter_metadata_bad_dtype", "load", "error", _model({"A": P(
        {"x": {"value": [1.0], "metadata": {"torchmdf": {"name": "w", "dtype": "load"}}}})}))

    # -- 2. bounded cost ---------------------------------------------------------------------------
    add("number_string_30k", "load", "any", _model({"A": P({"x": {"value": "1" * 30000 + "x"}})}), bound=5)
    add("number_string_9k", "load", "any", _model({"A": P({"x": {"value": "1" * 9000 + "x"}})}), bound=5)
    add("shape_string_30k", "load", "any", _model({"A": P({"x": {"value": 1.0}}, out="i",
                                                           ports={"i": {"shape": "(" + "1" * 30000 + "x"}})}),
        bound=5)
    add("format_string_30k", "load", "any", {"m": {"format": "v" + "1" * 30000, "graphs": {
        "g": {"nodes": {"A": P({"x": {"value": 1.0}})}}}}}, bound=5)
    add("time_scale_string_30k", "validate", "any", _model({"A": P({"x": {"value": 1.0}})}, conditions={
        "termination": {"TimeScale." + "A" * 30000: {"type": "Always"}}}), bound=5)
    add("quoted_list_30k", "validate", "any", _model({"A": P({"a": {"value": [1.0]}, "x": _fn(
        "onnx::Concat", inputs="[" + "'a', " * 6000, axis=0)})}), bound=5)
    add("int_5000_digits_json", "load", "error", '{"m": {"format": "ModECI MDF v0.4", "graphs": {"g": {"nodes": '
        '{"A": {"parameters": {"x": {"value": ' + "9" * 5000 + '}}, "output_ports": {"o": {"value": "x"}}}}}}}}')
    add("int_5000_digits_yaml", "load", "error", _yaml_one_param("9" * 5000), file="model.yaml")
    add("wide_3000_nodes", "fx", "ok", _wide(3000), bound=240, timeout=400)
    add("chain_3000_nodes", "fx", "ok", _chain(3000), bound=240, timeout=400)
    params = {"p0": {"value": 1.0}}
    params.update({f"p{k}": {"value": f"p{k - 1} + 1"} for k in range(1, 3000)})
    fargs = {f"a{k}": (f"a{k - 1} * 1" if k else "1.0") for k in range(3000)}
    add("one_node_3000_parameters_and_arguments", "run", "ok", _model({"A": {
        "parameters": params, "functions": {"g": {"value": "a2999 + p2999", "args": fargs}},
        "output_ports": {"o": {"value": "g"}}}}), bound=120, timeout=300)
    add("zeros_700M_fold", "fx", "error", _model({"A": P({"x": _fn("aten::zeros", size=[700_000_000])})}))
    add("constant_of_shape_huge", "fx", "error", _model({"A": P(
        {"s": {"value": [100000, 100000]}, "x": _fn("onnx::ConstantOfShape", input="s")})}))
    add("expand_huge", "fx", "error", _model({"A": P(
        {"a": {"value": [1.0]}, "s": {"value": [60000, 60000]}, "x": _fn("onnx::Expand", input="a", shape="s")})}))
    add("simulate_1e9_steps", "simulate", "error", _model({"A": P({"x": {"value": [0.0] * 1000}})}),
        steps=10 ** 9, bound=30)
    add("schedule_work_cap", "simulate", "error", _model(
        {f"n{k}": P({"x": {"value": 1.0}}) for k in range(50)},
        conditions={"termination": {"environment_state_update": {"type": "Never"}}}),
        limits={"max_schedule_work": 20000}, bound=30)
    add("symlink_dev_zero", "load", "error", lambda d: os.symlink("/dev/zero", os.path.join(d, "model.json")))
    add("fifo", "load", "error", lambda d: os.mkfifo(os.path.join(d, "model.json")), bound=5)
    add("directory", "load", "error", lambda d: os.mkdir(os.path.join(d, "model.json")))
    add("file_over_read_cap", "load", "error", _model({"A": P({"x": {"value": [0.5] * 2000}})}),
        limits={"max_file_bytes": 4096})
    add("yaml_alias_bomb", "load", "error", "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c]\n", file="model.yaml")

    # -- 3. every failure located ------------------------------------------------------------------
    add("yaml_timestamp", "run", "ok", _yaml_one_param("2001-12-14"), file="model.yaml")
    add("yaml_binary", "load", "error", _yaml_one_param("!!binary aGVsbG8="), file="model.yaml")
    add("yaml_set", "load", "error", _yaml_one_param("!!set {a, b}"), file="model.yaml")
    add("yaml_python_object", "load", "error", _yaml_one_param("!!python/object/apply:os.system ['id']"),
        file="model.yaml")
    add("number_underscore", "run", "error", _model({"A": P({"x": {"value": "1_"}})}))
    add("edge_sender_list", "run", "error", "m:\n  format: ModECI MDF v0.4\n  graphs:\n    g:\n      nodes:\n"
        "        A:\n          parameters:\n            x:\n              value: 1\n          output_ports:\n"
        "            o:\n              value: x\n      edges:\n        e:\n          sender: [A]\n"
        "          receiver: A\n          sender_port: o\n          receiver_port: o\n", file="model.yaml")
    add("mapping_key_list", "load", "error", "m:\n  format: ModECI MDF v0.4\n  graphs:\n    ? [g]\n    : {}\n",
        file="model.yaml")
    add("nested_graphs_480", "fx", "error", _nested_graphs(480))
    add("nested_conditions_600", "fx", "error", _nested_conditions(600))
    add("nested_expression", "run", "error", _model({"A": P({"x": {"value": "(" * 3000 + "1" + ")" * 3000}})}))
    add("nested_array_900", "run", "any", json.dumps(_model({"A": P({"x": {"value": "DEEP"}})})).replace(
        '"DEEP"', "[" * 900 + "1.0" + "]" * 900))
    add("json_nesting_100k", "load", "error", "[" * 100000 + "]" * 100000)
    add("shape_mismatch_seen_by_validate", "validate", "error", _model({"A": P(
        {"b": {"value": [[1.0, 2.0, 3.0]]}, "x": _fn("onnx::MatMul", A="i", B="b")},
        ports={"i": {"default_value": [[1.0, 2.0]]}})}))
    add("shape_mismatch_at_run", "run", "error", _model({"A": P(
        {"b": {"value": [[1.0, 2.0, 3.0]]}, "x": _fn("onnx::MatMul", A="i", B="b")},
        ports={"i": {"default_value": [[1.0, 2.0]]}})}))
    add("bad_condition_argument", "validate", "error", _model({"A": P({"x": {"value": 1.0}})}, conditions={
        "node_specific": {"A": {"type": "EveryNCalls", "kwargs": {"dependency": "A", "n": "many"}}}}))
    add("cli_validate_hostile", "cli", "error", _model({"A": P({"x": _fn("aten::from_file", filename=SECRET)})}),
        argv=["validate"])
    add("cli_run_shape_mismatch", "cli", "error", _model({"A": P(
        {"b": {"value": [[1.0, 2.0, 3.0]]}, "x": _fn("onnx::MatMul", A="i", B="b")},
        ports={"i": {"default_value": [[1.0, 2.0]]}})}), argv=["run"])
    add("cli_run_internal_or_located", "cli", "any", _yaml_one_param("[[1, 2], [3]]"), file="model.yaml",
        argv=["run"])
    return out


def build(root: str) -> list[dict]:
    """Write every case's files under ``root/<case name>/`` and the canary; return the cases."""
    outside = os.path.join(root, "outside")
    os.makedirs(outside, exist_ok=True)
    with open(os.path.join(outside, "secret.txt"), "w") as f:
        f.write(CANARY)
    import sys

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))  # json.dumps of the deep cases
    cases = []
    for case, files in _cases():
        d = os.path.join(root, case["name"])
        os.makedirs(d, exist_ok=True)
        for name, content in files.items():
            p = os.path.join(d, name)
            if callable(content):
                content(d)
            elif isinstance(content, bytes):
                with open(p, "wb") as f:
                    f.write(content)
            else:
                with open(p, "w") as f:
                    f.write(content if isinstance(content, str) else json.dumps(content))
        cases.append(case)
    return cases


def benign(folder: str) -> str:
    """A small valid model (warm-up before the cases are forked)."""
    p = os.path.join(folder, "benign.json")
    m = _model({"A": {"input_ports": {"i": {"default_value": [1.0, 2.0]}},
                      "parameters": {"s": {"value": 2.0}, "y": _fn("linear", variable0="i", slope="s", intercept=0.5),
                                     "c": {"default_initial_value": 0.0, "time_derivative": "y[0]"}},
                      "output_ports": {"o": {"value": "y"}, "c": {"value": "c"}}}})
    with open(p, "w") as f:
        json.dump(m, f)
    return p
