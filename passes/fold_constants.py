"""Constant folding: evaluate pure nodes whose inputs are all known tensors.

A node folds when its op is pure, every input is a literal constant (or a parameter/buffer
with ``fold_parameters=True``), and the result does not grow the model: the output may hold
at most as many elements as the inputs that die with the node, plus a small allowance
(``growth_allowance``, for shape vectors and the like), and never more than
``max_output_elements`` when that is set.  Shape queries on static shapes (``onnx::Shape``,
``onnx::Size``, ``aten::sym_size``, ``aten::_shape_as_tensor``...) fold even though their input
is not constant.  The folded value is a new constant whose ``meta["provenance"]`` is the
node's; a node that fails to evaluate is left alone.  What the pass knows of an op it reads from
the op's registry entry (``pure``, ``impl``, ``static_value`` for the shape queries).  In a graph read from a file each
result is sized first (shape function, else meta tensors): a result over
``LIMITS.max_elements`` is a located error, raised before anything is allocated.  A result may be a view of its input
(a transposed weight): kept as is, so a later matmul sees the same strides and gives the same
bits as before folding (IR tensors are never mutated in place); a view into a bigger storage
is copied.  Inputs that became dead are left for ``eliminate_dead_code``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from torchmdf.errors import TorchMDFError
from torchmdf.ir import Graph, Node, ValueRole
from torchmdf.ops import registry
from torchmdf.ops.control_flow import inline_static_region

from ._infra import Pass, PassResult, register_pass
from .infer_shapes import infer_node, known_shape

_SHAPE_QUERIES = {"onnx::Shape", "onnx::Size", "aten::sym_size.int", "aten::sym_numel", "aten::size.int",
                  "aten::_shape_as_tensor", "aten::numel"}


def _fold_shape_query(node: Node) -> torch.Tensor | None:
    """The value of a shape query whose answer is static (only the dims it reads need be)."""
    shape = known_shape(node.inputs[0] if node.inputs else None)
    if shape is None:
        return None
    op = node.op
    if op in ("onnx::Shape", "aten::_shape_as_tensor"):
        dims = list(shape)[node.attrs.get("start", 0):node.attrs.get("end")]
        if not all(isinstance(d, int) for d in dims):
            return None
        return torch.tensor(dims, dtype=torch.int64)
    if op in ("onnx::Size", "aten::sym_numel", "aten::numel"):
        if not all(isinstance(d, int) for d in shape):
            return None
        n = 1
        for d in shape:
            n *= d
        return torch.tensor(n, dtype=torch.int64)
    dim = node.attrs.get("dim", 0)
    if not isinstance(dim, int) or not -len(shape) <= dim < len(shape) or not isinstance(shape[dim], int):
        return None
    return torch.tensor(shape[dim], dtype=torch.int64)


for _name in _SHAPE_QUERIES:
    registry.attach(_name, keep_existing=True, static_value=_fold_shape_query)
_MISSING = object()


@register_pass("fold_constants")
class FoldConstants(Pass):
    """See the module docstring.  ``fold_parameters``: treat parameters and buffers as known
    too (their folded results become constants, e.g. a transposed weight)."""

    regions = "inner_first"  # folds inside regions too; an If on a constant becomes its branch

    def __init__(self, fold_parameters: bool = False, max_output_elements: int | None = None,
                 growth_allowance: int = 1024):
        self.fold_parameters = fold_parameters
        self.max_output_elements = max_output_elements
        self.growth_allowance = growth_allowance
        self._roles = ((ValueRole.CONSTANT, ValueRole.PARAMETER, ValueRole.BUFFER) if fold_parameters
                       else (ValueRole.CONSTANT,))

    def call(self, graph: Graph) -> PassResult:
        modified = False
        entries: dict[str, Any] = {}
        roles = self._roles
        guard = bool(graph.root.metadata.get("mdf_source"))  # data from a file (regions: their root's)
        for node in graph:
            if node.regions:
                modified |= inline_static_region(node)
                continue
            if not node.outputs:
                continue
            op = node.op
            d = entries.get(op, _MISSING)
            if d is _MISSING:
                d = entries[op] = registry.lookup(op)
            if d is not None and d.static_value is not None and len(node.outputs) == 1:
                t = d.static_value(node)
                if t is not None:
                    self._replace(graph, node, (t,))
                    modified = True
                continue
            ok = True
            for v in node._inputs:
                if v is not None and (v.tensor is None or v.role not in roles):
                    ok = False
                    break
            if not ok or d is None or not d.pure:
                continue
            outs = self._evaluate(node, guard)
            if outs is None or not self._small_enough(graph, node, outs):
                continue
            self._replace(graph, node, outs)
            modified = True
        return PassResult(graph, modified)

    def _evaluate(self, node: Node, guard: bool = False) -> tuple[torch.Tensor, ...] | None:
        d = registry.lookup(node.op)
        args = [None if v is None else v.tensor for v in node.inputs]
        if guard and not self._size_check(node, d, args):
            return None
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outs = d.run(args, node.attrs)
        except TorchMDFError as e:  # a limit: the file asks for too much
            raise type(e)(e.raw_message, location=node.location(), hint=e.hint) from None
        except Exception:  # noqa: BLE001 - folding is an optimization: leave the node alone
            return None
        if len(outs) != len(node.outputs):
            return None
        result = []
        for o, r in zip(node.outputs, outs):
            if isinstance(r, (bool, int, float)):
                r = torch.tensor(r)
            if not isinstance(r, torch.Tensor) or r.device.type != "cpu" or r.is_sparse:
                return None
            want = o.type.dtype
            if want is not None and r.dtype != want:
                return None  # the impl disagrees with the declared type: do not guess
            shape = o.type.shape
            if shape is not None and (len(shape) != r.dim() or any(
                    isinstance(a, int) and a != b for a, b in zip(shape, r.shape))):
                return None
            r = r.detach()
            if r.untyped_storage().nbytes() > r.numel() * r.element_size():
                r = r.clone()  # a slice of a bigger tensor: do not keep the whole storage alive
            result.append(r)
        return tuple(result)

    @staticmethod
    def _size_check(node: Node, d: Any, args: list) -> bool:
        """Data from a file: the outputs' sizes before anything is allocated.  The op's shape
        function (which reads constant inputs, such as a ConstantOfShape's shape) answers
        cheaply; else the op runs on meta tensors (factory ops on the meta device).  Over
        ``LIMITS.max_elements``: a located error.  No answer: the node is not folded."""
        from torchmdf.limits import LIMITS, static_numel

        try:
            infer_node(node, fallback=False, strict=False)
        except TorchMDFError:
            raise  # the file is wrong (an unknown ONNX type...), located by infer_node
        except Exception:  # noqa: BLE001 - no answer from the shape function
            pass
        sizes = [None if o.type.shape is None else static_numel(o.type.shape) for o in node.outputs]
        if any(n is None for n in sizes):
            try:
                attrs = dict(node.attrs)
                if node.op.startswith("aten::") and "device" in registry.aten_signature(d.fx_target).arg_names:
                    attrs["device"] = torch.device("meta")
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    outs = d.run([a.to("meta") if isinstance(a, torch.Tensor) else a for a in args], attrs)
                sizes = [t.numel() if isinstance(t, torch.Tensor) and t.device.type == "meta" else None
                         for t in outs]
            except Exception:  # noqa: BLE001 - data-dependent or no meta kernel
                return False
            if any(n is None for n in sizes):
                return False
        try:
            for o, n in zip(node.outputs, sizes):
                LIMITS.check_elements(n, f"the output %{o.name} of {node.op}")
        except TorchMDFError as e:
            raise type(e)(e.raw_message, location=node.location(), hint=e.hint) from None
        return True

    def _small_enough(self, graph: Graph, node: Node, outs: tuple[torch.Tensor, ...]) -> bool:
        out_n = sum(t.numel() for t in outs)
        if self.max_output_elements is not None and out_n > self.max_output_elements:
            return False
        if out_n <= self.growth_allowance:
            return True
        # elements freed: inputs read by this node only (not graph outputs nor state)
        freed = 0
        seen: set[int] = set()
        outputs = graph.live_roots()
        for v in node.inputs:
            if v is None or id(v) in seen:
                continue
            seen.add(id(v))
            if all(u is node for u in v.users()) and id(v) not in outputs:
                freed += v.tensor.numel()
        return out_n <= freed + self.growth_allowance

    @staticmethod
    def _replace(graph: Graph, node: Node, outs: tuple[torch.Tensor, ...]) -> None:
        graph.remove(node, safe=False)  # frees the output names for the constants
        for o, t in zip(node.outputs, outs):
            c = graph.add_constant(t, name=o.name or "folded")
            c.meta["provenance"] = node.provenance
            c.meta["folded_from"] = node.op
            if o.type.shape is not None and not o.type.is_static:
                c.meta["declared_type"] = o.type
            o.replace_all_uses_with(c)


__all__ = ["FoldConstants"]
