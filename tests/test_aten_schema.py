"""The one ATen schema matcher (torchmdf.ops.aten_schema): binding calls to argument names,
splitting them into IR inputs and attrs, defaults, tensor lists, and building the call back."""

from __future__ import annotations

import pytest
import torch

from torchmdf.errors import TorchMDFError, UnsupportedOpError
from torchmdf.frontends.fx import lower_fx
from torchmdf.ops import registry
from torchmdf.ops.aten_schema import (
    ATTR,
    OMIT,
    OPTIONAL_TENSOR,
    TENSOR,
    TENSOR_LIST,
    SchemaMismatchError,
    aten_signature,
    match_overload,
)

aten = torch.ops.aten


def _keep(name, v):
    return v


def test_signature_is_cached_and_registry_reexports_it():
    assert aten_signature(aten.add.Tensor) is aten_signature(aten.add.Tensor)
    assert registry.aten_signature is aten_signature
    assert isinstance(registry.aten_signature(aten.relu.default), registry.AtenSignature)


def test_kinds():
    assert aten_signature(aten.add.Tensor).kinds == (TENSOR, TENSOR, ATTR)
    assert aten_signature(aten.linear.default).kinds == (TENSOR, TENSOR, OPTIONAL_TENSOR)
    assert aten_signature(aten.cat.default).kinds == (TENSOR_LIST, ATTR)
    assert aten_signature(aten.index.Tensor).kinds == (TENSOR, TENSOR_LIST)
    assert aten_signature(aten.split.Tensor).returns_list


def test_positional_and_kwarg_only_arguments():
    sig = aten_signature(aten.add.Tensor)  # add(Tensor self, Tensor other, *, Scalar alpha=1)
    x, y = torch.ones(2), torch.full((2,), 3.0)
    assert sig.kwarg_only == (False, False, True)
    bound = sig.bind((x, y), {"alpha": 2})
    assert list(bound) == ["self", "other", "alpha"]
    inputs, attrs = sig.split(bound, lambda t: t, _keep)
    assert inputs == [x, y] and attrs == {"alpha": 2}
    args, kwargs = sig.build_call(inputs, attrs)
    assert args == [x, y] and kwargs == {"alpha": 2}  # alpha stays keyword-only
    torch.testing.assert_close(aten.add.Tensor(*args, **kwargs), x + 2 * y)
    # every value in schema order (a TorchScript node): split by kwarg_only
    assert sig.call_args([x, y, 2]) == ([x, y], {"alpha": 2})


def test_defaults_are_left_out_and_filled_back():
    sig = aten_signature(aten.sum.dim_IntList)  # sum(self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None)
    x = torch.arange(6.0).reshape(2, 3)
    bound = sig.bind((x, [1]), {})
    assert "keepdim" not in bound and "dtype" not in bound  # not passed: not bound
    inputs, attrs = sig.split(sig.bind_all([x, [1], False, None]), lambda t: t, _keep, omit_defaults=True)
    assert attrs == {"dim": [1]}  # keepdim=False and dtype=None are the defaults
    args, kwargs = sig.build_call(inputs, attrs)
    torch.testing.assert_close(aten.sum.dim_IntList(*args, **kwargs), x.sum(1))
    # TorchScript passes memory formats (and dtypes) as int codes, as schemas write defaults
    sig = aten_signature(aten.contiguous.default)  # contiguous(self, *, MemoryFormat memory_format=contiguous_format)
    _, attrs = sig.split(sig.bind_all([x, 0]), lambda t: t, _keep, omit_defaults=True)
    assert attrs == {}
    _, attrs = sig.split(sig.bind_all([x, 2]), lambda t: t, _keep, omit_defaults=True)
    assert attrs == {"memory_format": 2}
    _, attrs = sig.split({"self": x, "memory_format": 0}, lambda t: t, lambda n, v: OMIT)
    assert attrs == {}  # OMIT leaves an attr out


def test_tensor_list_is_flattened_and_rebuilt():
    sig = aten_signature(aten.cat.default)  # cat(Tensor[] tensors, int dim=0)
    a, b, c = (torch.full((1, 2), float(i)) for i in range(3))
    inputs, attrs = sig.split(sig.bind(([a, b, c], 1), {}), lambda t: t, _keep)
    assert inputs == [a, b, c] and attrs == {"dim": 1}
    args, kwargs = sig.build_call(inputs, attrs)
    assert args[0] == [a, b, c] and args[1] == 1 and kwargs == {}
    torch.testing.assert_close(aten.cat.default(*args, **kwargs), torch.cat([a, b, c], 1))


def test_optional_tensor_list():
    sig = aten_signature(aten.index.Tensor)  # index(Tensor self, Tensor?[] indices)
    x = torch.arange(12.0).reshape(3, 4)
    idx = torch.tensor([0, 2])
    inputs, attrs = sig.split(sig.bind((x, [None, idx]), {}), lambda t: t, _keep)
    assert inputs == [x, None, idx] and attrs == {}
    args, kwargs = sig.build_call(inputs, attrs)
    assert args[1] == [None, idx]
    torch.testing.assert_close(aten.index.Tensor(*args, **kwargs), x[:, idx])


def test_optional_tensor():
    sig = aten_signature(aten.linear.default)  # linear(input, weight, Tensor? bias=None)
    x, w = torch.randn(2, 3), torch.randn(4, 3)
    inputs, _ = sig.split(sig.bind((x, w), {}), lambda t: t, _keep)
    assert inputs == [x, w]  # bias not passed
    args, kwargs = sig.build_call(inputs, {})
    assert args == [x, w, None] and kwargs == {}
    inputs, _ = sig.split(sig.bind((x, w, None), {}), lambda t: t, _keep)
    assert inputs == [x, w, None]
    torch.testing.assert_close(aten.linear.default(*args), x @ w.T)


def test_overload_matching_prefers_exact_types():
    x, y = torch.ones(2), torch.ones(2)
    ov, sig, bound = match_overload("add", (x, y), {}, (torch.Tensor,))
    assert ov == "Tensor" and bound == {"self": x, "other": y}
    ov, _, bound = match_overload("add", (x, 2), {}, (torch.Tensor,))
    assert ov == "Scalar" and bound["other"] == 2
    ov, _, _ = match_overload("sum", (x, [0]), {"keepdim": True}, (torch.Tensor,))
    assert ov == "dim_IntList"
    assert match_overload("relu", (x, x), {}, (torch.Tensor,)) is None
    assert match_overload("select", (x, 0.5, 0), {}, (torch.Tensor,)) is None  # dim is an int
    assert match_overload("add", (x, y), {"nonsense": 1}, (torch.Tensor,)) is None
    assert match_overload("no_such_op_anywhere", (x,), {}, (torch.Tensor,)) is None


def test_schema_mismatch_is_a_located_error():
    sig = aten_signature(aten.add.Tensor)
    x = torch.ones(2)
    with pytest.raises(SchemaMismatchError) as e:
        sig.bind((x,), {}, location="fx node 'add'")
    assert isinstance(e.value, TorchMDFError)
    assert e.value.location == "fx node 'add'"
    assert "aten::add.Tensor: missing argument 'other'" in str(e.value)
    assert "add.Tensor(Tensor self, Tensor other" in str(e.value)  # the hint shows the schema
    with pytest.raises(SchemaMismatchError, match="unexpected keyword"):
        sig.bind((x, x), {"beta": 1}, location="here")
    with pytest.raises(SchemaMismatchError, match="positional arguments"):
        sig.bind((x, x, 1), {})
    with pytest.raises(SchemaMismatchError, match="inputs"):
        sig.bind_all([x, x])
    cat = aten_signature(aten.cat.default)
    with pytest.raises(SchemaMismatchError, match="argument 'tensors' is not a list"):
        cat.split({"tensors": x, "dim": 0}, lambda t: t, _keep)


def test_frontend_reports_a_call_that_fits_no_overload_at_its_node():
    g = torch.fx.Graph()
    x = g.placeholder("x")
    y = g.call_function(torch.add, (x, x), {"nonsense": 2})
    g.output(y)
    gm = torch.fx.GraphModule(torch.nn.Module(), g)
    with pytest.raises(UnsupportedOpError) as e:
        lower_fx(gm, (torch.ones(2),))
    assert e.value.ops == [("aten::add with these arguments", "fx node 'add' [fx]")]


def test_optional_argument_without_default_is_passed_as_none():
    """``int? divisor_override`` has no schema default: a file omits it when it is None, and the
    call built back must still pass it (found by the ATen coverage sweep)."""
    from torchmdf.ops.aten_schema import aten_signature

    sig = aten_signature(torch.ops.aten.avg_pool2d_backward.default)
    g, x = torch.randn(1, 1, 2, 2), torch.randn(1, 1, 4, 4)
    attrs = {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": False,
             "count_include_pad": True}
    args, kwargs = sig.build_call([g, x], attrs)
    out = torch.ops.aten.avg_pool2d_backward.default(*args, **kwargs)
    torch.testing.assert_close(out, torch.ops.aten.avg_pool2d_backward(g, x, [2, 2], [2, 2], [0, 0], False, True, None))
