"""Large models (issue 17): compact inline arrays, external weights in a safetensors sidecar,
streaming save, fast array parsing on load; every bad sidecar is a located error."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import warnings

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import torchmdf
from torchmdf.errors import TorchMDFError
from torchmdf.mdf import ExternalWeightsWarning, arrays, inline_weights
from torchmdf.mdf import weights as W
from torchmdf.mdf.io import _parse

torch.manual_seed(0)


@contextlib.contextmanager
def _without_orjson(off: bool):
    """Run the numpy fallback (formatting and parsing) instead of orjson."""
    saved = arrays._orjson
    if off:
        arrays._orjson = None
    try:
        yield
    finally:
        arrays._orjson = saved


MODES = [False, True] if arrays._orjson is not None else [True]


class Wide(nn.Module):
    """A conv stem (4-D weights, BatchNorm buffers) and two wide Linear layers: 8.4 M float32
    parameters, 33.6 MB."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.bn = nn.BatchNorm2d(64)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc1 = nn.Linear(1024, 4096)
        self.fc2 = nn.Linear(4096, 1024)
        g = torch.Generator().manual_seed(3)
        self.bn.running_mean.normal_(0, 0.1, generator=g)
        self.bn.running_var.uniform_(0.5, 1.5, generator=g)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@pytest.fixture(scope="module")
def wide():
    torch.manual_seed(0)
    model = Wide().eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    m = torchmdf.compile(model, target="mdf", example_inputs=(x,))
    with torch.no_grad():
        y = model(x)
    return model, x, y, m


def _param_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _same_state(gm: nn.Module, model: nn.Module) -> None:
    got, ref = gm.state_dict(), model.state_dict()
    missing = set(ref) - set(got)
    assert all(k.endswith("num_batches_tracked") for k in missing), missing  # unused by eval
    for k in set(ref) & set(got):
        assert got[k].dtype == ref[k].dtype, k
        assert torch.equal(got[k], ref[k]), k


@pytest.mark.parametrize("weights", ["inline", "external"])
def test_tens_of_mb_round_trip(wide, weights, tmp_path):
    model, x, y, m = wide
    assert _param_bytes(model) > 30e6
    path = tmp_path / "wide.json"
    torchmdf.mdf.save(m, path, weights=weights)
    side = tmp_path / "wide.safetensors"
    assert side.exists() == (weights == "external")
    size = path.stat().st_size + (side.stat().st_size if side.exists() else 0)
    assert size < (1.1 if weights == "external" else 4.0) * _param_bytes(model)
    gm = torchmdf.compile(str(path), target="fx")
    _same_state(gm, model)
    with torch.no_grad():
        assert torch.equal(gm(x), y)


def test_yaml_round_trip_inline_and_external(tmp_path):
    model = nn.Sequential(nn.Linear(300, 400), nn.Tanh(), nn.Linear(400, 5)).eval()
    x = torch.randn(3, 300)
    m = torchmdf.compile(model, target="mdf", example_inputs=(x,))
    for weights in ("inline", "external"):
        path = tmp_path / f"m_{weights}.yaml"
        torchmdf.mdf.save(m, path, weights=weights)
        text = path.read_text()
        assert ("safetensors:" in text) == (weights == "external")
        gm = torchmdf.compile(str(path), target="fx")
        _same_state(gm, model)
        with torch.no_grad():
            assert torch.equal(gm(x), model(x))


def test_arrays_are_one_line_each_in_shortest_round_trip_text(tmp_path):
    w = torch.tensor([[0.1, -2.5, 3.0e-7], [1e20, 0.0, 123456.789]], dtype=torch.float32)
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(w)
    m = torchmdf.compile(lin, target="mdf", example_inputs=(torch.randn(1, 3),))
    path = tmp_path / "lin.json"
    torchmdf.mdf.save(m, path, weights="inline")
    lines = [ln for ln in path.read_text().splitlines() if '"value": [[' in ln]
    assert len(lines) == 1  # the whole weight on one line
    toks = re.findall(r"-?[0-9][0-9.e+-]*", lines[0].split(":", 1)[1])
    vals = w.flatten().tolist()
    assert len(toks) == len(vals)
    for tok, v in zip(toks, vals):
        f32 = np.float32(v)
        assert np.float32(float(tok)) == f32  # reads back to the same float32
        # as short as numpy's shortest round-trip repr of the float32 (an independent oracle)
        assert _digits(tok) <= _digits(np.format_float_scientific(f32, unique=True))
    assert "0.10000000149011612" not in path.read_text()  # float64 text of a float32 weight


def _digits(s: str) -> int:
    """Significant digits of a number's text."""
    return len(re.sub(r"[eE].*$", "", s).replace("-", "").replace(".", "").strip("0"))


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=50),
       st.sampled_from(MODES))
def test_float32_text_round_trips(values, off):
    t = torch.tensor(values, dtype=torch.float32)
    with _without_orjson(off):
        text, ytext = arrays.array_text(t), arrays.array_text(t, yaml=True)
    back = torch.tensor(json.loads(text), dtype=torch.float64).float()
    assert torch.equal(back, t) or torch.equal(back.view(torch.int32), t.view(torch.int32))
    assert max(_digits(tok) for tok in text.strip("[]").split(",")) <= 9
    yback = yaml.safe_load(ytext)
    assert all(isinstance(v, float) for v in yback)  # YAML 1.1 floats (a dot, a signed exponent)
    assert torch.equal(torch.tensor(yback, dtype=torch.float64).float(), t)


def test_special_values_and_dtypes_round_trip(tmp_path):
    vals = {
        "f64": torch.tensor([1 / 3, -0.0, float("nan"), float("inf"), -float("inf"), 1e-300]),
        "f16": torch.tensor([0.1, 65504, -2.5e-3], dtype=torch.float16),
        "bf16": torch.tensor([0.1, 3e38, -1.5], dtype=torch.bfloat16),
        "i64": torch.tensor([[2**62, -5], [0, 7]]),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
    }
    for fmt in ("json", "yaml"):
        for weights in ("inline", "external"):
            m = torchmdf.mdf.Model(id="m", graphs=[torchmdf.mdf.Graph(id="g", nodes=[torchmdf.mdf.Node(
                id="n", parameters=[torchmdf.mdf.Parameter(id=k, value=v) for k, v in vals.items()],
                output_ports=[torchmdf.mdf.OutputPort(id="o", value="f64")])])])
            path = tmp_path / f"s_{weights}.{fmt}"
            torchmdf.mdf.save(m, path, weights=weights)
            back = torchmdf.mdf.load(path).graphs[0].nodes[0]
            for k, v in vals.items():
                got = back.get_parameter(k).value
                if weights == "external":
                    assert got.dtype == v.dtype, k  # the sidecar keeps the dtype
                else:
                    got = got.to(v.dtype)  # JSON numbers read back as float64/int64/bool
                assert torch.equal(got, v) or (v.is_floating_point() and torch.allclose(
                    got.double(), v.double(), equal_nan=True, rtol=0, atol=0)), (fmt, weights, k)


def test_auto_externalizes_large_tensors_and_says_so(tmp_path):
    model = nn.Sequential(nn.Linear(600, 400), nn.ReLU(), nn.Linear(400, 2)).eval()
    x = torch.randn(1, 600)
    m = torchmdf.compile(model, target="mdf", example_inputs=(x,))
    path = tmp_path / "a.json"
    with pytest.warns(ExternalWeightsWarning, match="a.safetensors"):
        torchmdf.mdf.save(m, path, weights_threshold=1 << 13)
    refs = re.findall(r'"tensor": "([^"]+)"', path.read_text())
    assert sorted(refs) == ["0.weight"]  # 960 KB; 0.bias (1.6 KB) and 2.weight (3.2 KB) stay inline
    assert set(W.read_safetensors(str(tmp_path / "a.safetensors"))) == {"0.weight"}
    with torch.no_grad():
        assert torch.equal(torchmdf.compile(str(path), target="fx")(x), model(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torchmdf.mdf.save(m, tmp_path / "b.json")  # under the default threshold (1 MiB): all inline
    assert not (tmp_path / "b.safetensors").exists()
    with pytest.raises(TorchMDFError, match="weights must be one of"):
        torchmdf.mdf.save(m, tmp_path / "c.json", weights="sidecar")
    assert not (tmp_path / "c.json").exists()


def test_sidecar_is_a_standard_safetensors_file(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    model = nn.Sequential(nn.Linear(7, 9), nn.ReLU(), nn.Linear(9, 3, bias=False)).eval()
    x = torch.randn(2, 7)
    m = torchmdf.compile(model, target="mdf", example_inputs=(x,))
    path = tmp_path / "s.json"
    torchmdf.mdf.save(m, path, weights="external")
    theirs = safetensors_torch.load_file(str(tmp_path / "s.safetensors"))
    assert set(theirs) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(theirs[k], v)
    # and a sidecar written by the safetensors library loads in torchmdf
    safetensors_torch.save_file({k: v.clone() for k, v in model.state_dict().items()},
                                str(tmp_path / "theirs.safetensors"))
    text = path.read_text().replace('"s.safetensors"', '"theirs.safetensors"')
    (tmp_path / "t.json").write_text(text)
    with torch.no_grad():
        assert torch.equal(torchmdf.compile(str(tmp_path / "t.json"), target="fx")(x), model(x))


def test_loaded_weights_are_memory_mapped_copy_on_write(tmp_path):
    model = nn.Linear(64, 64).eval()
    m = torchmdf.compile(model, target="mdf", example_inputs=(torch.randn(1, 64),))
    path = tmp_path / "l.json"
    torchmdf.mdf.save(m, path, weights="external")
    side = tmp_path / "l.safetensors"
    before = side.read_bytes()
    gm = torchmdf.compile(str(path), target="fx")
    with torch.no_grad():
        gm.weight.mul_(2)  # in-place changes stay in the process
    assert side.read_bytes() == before
    t = torchmdf.mdf.load(path).graphs[0].nodes[1].get_parameter("B").value
    assert torch.equal(t, model.weight)


# --------------------------------------------------------------------------------------------
# bad sidecars and references: located errors
# --------------------------------------------------------------------------------------------

@pytest.fixture
def external_file(tmp_path):
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    m = torchmdf.compile(model, target="mdf", example_inputs=(torch.randn(1, 4),))
    d = tmp_path / "d"
    d.mkdir()
    path = d / "net.json"
    torchmdf.mdf.save(m, path, weights="external")
    data = json.loads(path.read_text())
    return path, data


def _find_ref(data: dict, tensor: str) -> tuple[str, str, dict]:
    (model,) = data.values()
    (g,) = model["graphs"].values()
    for nid, n in g["nodes"].items():
        for pid, p in (n.get("parameters") or {}).items():
            v = p.get("value")
            if isinstance(v, dict) and v.get("tensor") == tensor:
                return nid, pid, v
    raise AssertionError(tensor)


def _expect_error(path, data, match: str, nid: str, pid: str) -> TorchMDFError:
    path.write_text(json.dumps(data))
    with pytest.raises(TorchMDFError, match=match) as ei:
        torchmdf.compile(str(path), target="fx")
    msg = str(ei.value)
    assert str(path) in msg and f"node '{nid}'" in msg and f"parameter '{pid}'" in msg, msg
    return ei.value


@pytest.mark.parametrize("case", ["shape", "dtype", "missing_tensor", "absolute", "dotdot", "no_file",
                                  "extra_key", "bad_dtype_name"])
def test_bad_reference_is_a_located_error(external_file, case, tmp_path):
    path, data = external_file
    nid, pid, ref = _find_ref(data, "2.weight")
    if case == "shape":
        ref["shape"] = [2, 6]
        match = r"shape \[2, 5\], but the reference says \[2, 6\]"
    elif case == "dtype":
        ref["dtype"] = "float64"
        match = "is float32, but the reference says float64"
    elif case == "missing_tensor":
        ref["tensor"] = "nope.weight"
        match = "holds no tensor 'nope.weight'"
    elif case == "absolute":
        ref["safetensors"] = str(path.parent / "net.safetensors")
        match = "absolute path"
    elif case == "dotdot":
        (tmp_path / "net.safetensors").write_bytes((path.parent / "net.safetensors").read_bytes())
        ref["safetensors"] = "../net.safetensors"
        match = r"uses '\.\.'"
    elif case == "no_file":
        ref["safetensors"] = "other.safetensors"
        match = "does not exist"
    elif case == "extra_key":
        ref["offset"] = 0
        match = "unknown key"
    else:
        ref["dtype"] = "complex64"
        match = "unknown dtype 'complex64'"
    _expect_error(path, data, match, nid, pid)


def test_symlink_leaving_the_folder_is_refused(external_file, tmp_path):
    path, data = external_file
    outside = tmp_path / "outside"
    outside.mkdir()
    os.replace(path.parent / "net.safetensors", outside / "net.safetensors")
    os.symlink(outside / "net.safetensors", path.parent / "net.safetensors")
    nid, pid, _ = _find_ref(data, "0.weight")
    _expect_error(path, data, "leads out of the model file's folder", nid, pid)
    # a symlinked folder inside leads out too
    os.unlink(path.parent / "net.safetensors")
    os.symlink(outside, path.parent / "w")
    for n in data.values():
        for g in n["graphs"].values():
            for node in g["nodes"].values():
                for p in (node.get("parameters") or {}).values():
                    if isinstance(p.get("value"), dict):
                        p["value"]["safetensors"] = "w/net.safetensors"
    _expect_error(path, data, "leads out of the model file's folder", nid, pid)


def test_a_symlink_inside_the_folder_is_fine(external_file):
    path, data = external_file
    d = path.parent
    (d / "weights").mkdir()
    os.replace(d / "net.safetensors", d / "weights" / "real.safetensors")
    os.symlink("weights/real.safetensors", d / "net.safetensors")
    m = torchmdf.mdf.load(path)
    assert m is not None


@pytest.mark.parametrize("damage", ["header_length", "offsets", "not_json", "truncated", "dtype_code"])
def test_corrupt_sidecar_is_a_located_error(external_file, damage):
    path, data = external_file
    side = path.parent / "net.safetensors"
    raw = bytearray(side.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])

    def rewrite(raw: bytearray) -> bytearray:
        hb = json.dumps(header, separators=(",", ":")).encode()
        assert len(hb) <= n
        return raw[:8] + hb.ljust(n) + raw[8 + n:]

    if damage == "header_length":
        raw[:8] = (len(raw) * 2).to_bytes(8, "little")
        match = "header length"
    elif damage == "offsets":
        header["0.weight"]["data_offsets"][1] += 10**6
        raw = rewrite(raw)
        match = "outside the file's data|needs"
    elif damage == "not_json":
        raw[8:12] = b"[[[["
        match = "not valid JSON"
    elif damage == "truncated":
        raw = raw[:-8]
        match = "outside the file's data"
    else:
        header["0.weight"]["dtype"] = "C64"
        raw = rewrite(raw)
        match = "unsupported dtype 'C64'"
    side.write_bytes(bytes(raw))
    nid, pid, _ = _find_ref(data, "0.weight")
    err = _expect_error(path, data, match, nid, pid)
    assert "net.safetensors" in str(err)


def test_references_need_a_file_to_resolve_against(external_file):
    path, _ = external_file
    with pytest.raises(TorchMDFError, match="not read from a file"):
        torchmdf.mdf.loads(path.read_text())
    m = torchmdf.mdf.loads(path.read_text(), weights_dir=str(path.parent))
    values = [p.value for n in m.graphs[0].nodes for p in n.parameters]
    assert not any(isinstance(v, dict) for v in values)
    assert sum(isinstance(v, torch.Tensor) and v.dim() == 2 for v in values) == 2  # both weights


def test_several_bad_references_are_all_reported(external_file):
    path, data = external_file
    for t in ("0.weight", "2.bias"):
        _find_ref(data, t)[2]["tensor"] = t + "_gone"
    path.write_text(json.dumps(data))
    with pytest.raises(TorchMDFError) as ei:
        torchmdf.mdf.load(path)
    assert "2 problems" in str(ei.value) and "0.weight_gone" in str(ei.value) and "2.bias_gone" in str(ei.value)


# --------------------------------------------------------------------------------------------
# atomic saves
# --------------------------------------------------------------------------------------------

def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model = nn.Linear(300, 300)
    m = torchmdf.compile(model, target="mdf", example_inputs=(torch.randn(1, 300),))
    path = tmp_path / "f.json"

    def boom(f, tensors):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(W, "write_safetensors", boom)
    with pytest.raises(TorchMDFError, match="No space left"):
        torchmdf.mdf.save(m, path, weights="external")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    torchmdf.mdf.save(m, path, weights="external")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def boom_text(data, out, fmt, external=None):
        out.write(b"{")
        raise OSError(5, "I/O error")

    monkeypatch.setattr(arrays, "write_text", boom_text)
    with pytest.raises(TorchMDFError, match="I/O error"):
        torchmdf.mdf.save(m, path, weights="external")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old pair untouched


def test_unwritable_value_fails_before_any_file(tmp_path):
    m = torchmdf.mdf.Model(id="m", graphs=[torchmdf.mdf.Graph(id="g", nodes=[torchmdf.mdf.Node(
        id="n", parameters=[torchmdf.mdf.Parameter(id="p", value=torch.zeros(3, dtype=torch.complex64))])])])
    with pytest.raises(TorchMDFError, match="complex64"):
        torchmdf.mdf.save(m, tmp_path / "x.json", validate=False, weights="external")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# the converter and modeci_mdf
# --------------------------------------------------------------------------------------------

def test_inline_weights_converter_and_cli(external_file, tmp_path):
    from torchmdf.cli import main

    path, _ = external_file
    out = tmp_path / "inline.json"
    inline_weights(path, out)
    assert "safetensors" not in out.read_text()
    a, b = torchmdf.mdf.load(path), torchmdf.mdf.load(out)
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(torchmdf.compile(a, target="fx")(x), torchmdf.compile(b, target="fx")(x))
    out2 = tmp_path / "cli.yaml"
    assert main(["convert", str(path), "-o", str(out2), "--weights", "inline"]) == 0
    assert "safetensors" not in out2.read_text()
    out3 = tmp_path / "cli_ext.json"
    assert main(["convert", str(out), "-o", str(out3), "--weights", "external"]) == 0
    assert (tmp_path / "cli_ext.safetensors").exists()


@pytest.mark.oracle
def test_inline_files_run_in_modeci_mdf(tmp_path):
    mdf_utils = pytest.importorskip("modeci_mdf.utils")
    from modeci_mdf.execution_engine import EvaluableGraph

    model = nn.Sequential(nn.Linear(40, 300), nn.ReLU(), nn.Linear(300, 3), nn.Sigmoid()).eval()
    x = torch.randn(1, 40)
    m = torchmdf.compile(model, target="mdf", example_inputs=(x,))
    torchmdf.mdf.save(m, tmp_path / "ext.json", weights="external")
    inline_weights(tmp_path / "ext.json", tmp_path / "inline.json")  # compact arrays, all inline
    ref = mdf_utils.load_mdf(str(tmp_path / "inline.json"))
    eg = EvaluableGraph(ref.graphs[0], verbose=False)
    (port,) = m.graphs[0].nodes[0].input_ports  # the input node's free port
    eg.evaluate(initializer={port.id: x.numpy()})
    out_node, out_port = m.metadata["torchmdf"]["output_ports"][0].split(".")
    got = eg.enodes[out_node].evaluable_outputs[out_port].curr_value
    with torch.no_grad():
        torch.testing.assert_close(torch.as_tensor(got).float(), model(x), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# the fast array reader reads exactly what the ordinary parser reads
# --------------------------------------------------------------------------------------------

def _ordinary(raw: bytes, fmt: str):
    try:
        v = json.loads(raw) if fmt == "json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError):
        return "error"
    try:
        a = np.asarray(v)
    except (ValueError, OverflowError):
        return "ragged"
    return a if a.dtype.kind in "if" and a.size else "other"


def _agree(raw: bytes, fmt: str) -> None:
    fast = arrays.parse_array(raw, yaml=fmt == "yaml")
    ref = _ordinary(raw, fmt)
    if fast is None:
        return  # left to the ordinary parser: always allowed
    assert isinstance(ref, np.ndarray), (raw[:80], ref)
    assert fast.dtype == ref.dtype and fast.shape == ref.shape, (raw[:80], fast.dtype, ref.dtype)
    assert np.array_equal(fast, ref, equal_nan=True)


SPELLINGS = ["1", "-1", "0", "-0", "01", "-01", "1.5", "1.", ".5", "-.5", "+1", "1e5", "1E5", "1e+5",
             "1e-05", "1.0e-05", "1.0e+05", "1.0E-5", "0.0", "00.5", "1.5.2", "1e5e5", "--1", "1-2", "- 1",
             "1 2", "NaN", "Infinity", "1_000", "0x10", "017", "1.e+5", "2.5e", "12345678901234567890",
             "123456789012345678", "9.999999999999999e22", "5e-324"]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("tok", SPELLINGS)
def test_fast_reader_agrees_with_the_parser_on_every_spelling(tok, fmt):
    for off in MODES:
        with _without_orjson(off):
            for body in (f"[{tok}, 2.25, -3]", f"[[1.5, {tok}], [3, 4]]", f"[ {tok} ]", f"[2,{tok}]"):
                _agree(body.encode(), fmt)


@pytest.mark.parametrize("text", ["[[1,2],[3]]", "[[1,2],[3],[4,5,6]]", "[[1,2,3],[4],[5,6]]", "[1,,2]",
                                  "[[1,2,],[3,4,5]]", "[[],[]]", "[]", "[[1],[2]],[3]", "[1,2]]",
                                  "[[1,2],[3,4]", "[[[1,2]],[[3,4]]]", "[[[1],[2]],[[3],[4]],[[5],[6]]]",
                                  "[1 ,\n 2 ,\t3]", "[[1, 2],\n [3, 4]]"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_fast_reader_agrees_on_structure(text, fmt):
    for off in MODES:
        with _without_orjson(off):
            _agree(text.encode(), fmt)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_fast_reader_agrees_on_random_arrays(shape, data):
    n = math.prod(shape)
    kind = data.draw(st.sampled_from(["f32", "f64", "int"]))
    if kind == "int":
        vals = data.draw(st.lists(st.integers(-2**62, 2**62), min_size=n, max_size=n))
        a = np.array(vals, dtype=np.int64).reshape(shape)
    else:
        vals = data.draw(st.lists(st.floats(width=32 if kind == "f32" else 64, allow_nan=False,
                                            allow_infinity=False), min_size=n, max_size=n))
        a = np.array(vals, dtype=np.float32 if kind == "f32" else np.float64).reshape(shape)
    for fmt, off in [(f, o) for f in ("json", "yaml") for o in MODES]:
        with _without_orjson(off):
            raw = b"".join(arrays.array_chunks(a, yaml=fmt == "yaml"))
            fast = arrays.parse_array(raw, yaml=fmt == "yaml")
            _agree(raw, fmt)
        if kind == "int" and np.abs(a).max() >= 10**18:
            continue  # 19-digit integers are left to the ordinary parser (int64 overflow guard)
        assert fast is not None  # what torchmdf writes takes the fast path
        assert np.array_equal(fast.astype(a.dtype), a)


def test_whole_file_fast_path_matches_the_ordinary_parse(tmp_path):
    big = ", ".join(f"{i * 0.37:.3f}" for i in range(400))
    text = json.dumps({"m": {"format": "ModECI MDF v0.4", "graphs": {"g": {"nodes": {"n": {
        "metadata": {"value": [1, 2, 3], "table": json.loads(f"[{big}]")},
        "notes": f"value: [{big}]",
        "parameters": {"p": {"value": json.loads(f"[[{big}], [{big}]]")},
                       "q": {"value": f"[{big}]"}},  # a string, kept as text
        "output_ports": {"o": {"value": "p"}}}}}}}}, indent=2)
    text = text.replace("[" + big.replace(", ", ", ") + "]", "[" + big + "]")
    data = text.encode() + b" " * arrays.FAST_MIN_BYTES
    fast = arrays.parse_fast(data, "json", lambda t: _parse(t, "json", None))
    assert fast is not None
    slow = _parse(data.decode(), "json", None)
    n = fast["m"]["graphs"]["g"]["nodes"]["n"]
    sn = slow["m"]["graphs"]["g"]["nodes"]["n"]
    assert isinstance(n["parameters"]["p"]["value"], np.ndarray)  # a value: parsed by numpy
    assert np.array_equal(n["parameters"]["p"]["value"], np.asarray(sn["parameters"]["p"]["value"]))
    assert n["metadata"] == sn["metadata"] and isinstance(n["metadata"]["table"], list)  # metadata as written
    assert n["notes"] == sn["notes"] and n["parameters"]["q"] == sn["parameters"]["q"]


def test_yaml_block_scalar_that_looks_like_an_array_is_not_touched():
    big = ",".join(f"{i}.5" for i in range(300))
    text = (f"m:\n  format: ModECI MDF v0.4\n  notes: |\n    value: [{big}]\n  graphs:\n    g:\n      nodes:\n"
            f"        n:\n          parameters:\n            p:\n              value: [{big}]\n")
    data = text.encode() + b"#" + b" " * arrays.FAST_MIN_BYTES + b"\n"
    parse = lambda t: _parse(t, "yaml", None)  # noqa: E731
    fast = arrays.parse_fast(data, "yaml", parse)
    slow = parse(data.decode())
    if fast is not None:
        assert fast["m"]["notes"] == slow["m"]["notes"]
    assert slow["m"]["notes"].startswith("value: [0.5,1.5")


@given(st.text(alphabet="0123456789.eE+-, []\n\t", min_size=1, max_size=40), st.sampled_from(["json", "yaml"]))
def test_fast_reader_agrees_on_random_text(body, fmt):
    """Whatever the text, the fast reader either declines or reads exactly what the parser reads."""
    for off in MODES:
        with _without_orjson(off):
            _agree(("[" + body + "]").encode(), fmt)


def test_validation_reports_unresolved_references(external_file):
    path, data = external_file
    m = torchmdf.mdf.Model.from_dict(data)  # built from a dict: nothing resolves the references
    problems = torchmdf.mdf.validate(m)
    msgs = [str(p) for p in problems if "not resolved" in str(p)]
    assert len(msgs) == 4  # two weights, two biases
    nid, pid, _ = _find_ref(data, "0.weight")
    assert any(f"node '{nid}' > parameter '{pid}'" in s and "'0.weight'" in s for s in msgs)


@pytest.mark.parametrize("off", MODES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_save_streams_arrays_without_python_lists(fmt, off, tmp_path, monkeypatch):
    """No weight becomes a nested Python list on the way to the file (it is formatted from the
    tensor in pieces of CHUNK elements), and the pieces join into the same values."""
    model = nn.Sequential(nn.Linear(50, 80), nn.ReLU(), nn.Linear(80, 3)).eval()
    x = torch.randn(2, 50)
    m = torchmdf.compile(model, target="mdf", example_inputs=(x,))
    real = torch.Tensor.tolist

    def tolist(self, *a, **k):
        assert self.numel() <= 8, "a weight became a Python list"
        return real(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    monkeypatch.setattr(arrays, "CHUNK", 64)  # many pieces per weight
    path = tmp_path / f"s.{fmt}"
    with _without_orjson(off):
        torchmdf.mdf.save(m, path, weights="inline")
    monkeypatch.undo()
    gm = torchmdf.compile(str(path), target="fx")
    _same_state(gm, model)
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))
