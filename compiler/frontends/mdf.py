"""MDF frontend: a ``torchmdf.mdf.Model`` (or a file) -> IR, with modeci_mdf's semantics.

One evaluation of an MDF graph is one pass over its nodes in dependency order.  For each
node, as modeci_mdf's ``EvaluableNode`` does: input ports take the (weighted) value of their
edges, or the graph input they stand for when no edge feeds them (default: the port's
``default_value``, else zeros of its shape); functions run in order; parameters run in
dependency order (constant, expression, ``function`` + ``args``, ``time_derivative``);
output ports evaluate their expressions.  Expressions are parsed by the whitelisted parser of
:mod:`torchmdf.mdf.expressions` and lowered into IR nodes; nothing is evaluated with ``eval``.

Stateful models lower to a graph with state: a parameter that refers to itself, has a
``default_initial_value`` or a ``time_derivative`` is a state variable, and an edge that
closes a cycle carries the sender's value from the previous evaluation.  ``first=True`` gives
modeci_mdf's first ``evaluate()`` (initial values), ``first=False`` a later
``evaluate(time_increment=dt)`` (forward Euler).
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from torchmdf.errors import ConversionError, TorchMDFError, ValidationError
from torchmdf.ir import Graph, Provenance, TensorType, Value
from torchmdf.ops import registry

_UNARY_ONNX = {"exp": "Exp", "sqrt": "Sqrt", "abs": "Abs", "sin": "Sin", "cos": "Cos", "tan": "Tan",
               "sinh": "Sinh", "cosh": "Cosh", "tanh": "Tanh", "arcsin": "Asin", "arccos": "Acos",
               "arctan": "Atan", "arcsinh": "Asinh", "arccosh": "Acosh", "arctanh": "Atanh",
               "floor": "Floor", "ceil": "Ceil", "sign": "Sign", "erf": "Erf"}
_UNARY_ATEN = {"log10": "aten::log10", "log2": "aten::log2", "log1p": "aten::log1p", "expm1": "aten::expm1",
               "trunc": "aten::trunc", "round": "aten::round"}
_BIN = {"+": "onnx::Add", "-": "onnx::Sub", "*": "onnx::Mul", "/": "aten::div.Tensor",
        "//": "aten::floor_divide", "%": "aten::remainder.Tensor", "**": "onnx::Pow", "@": "onnx::MatMul"}
_CMP = {"==": "onnx::Equal", "!=": "aten::ne.Tensor", "<": "onnx::Less", "<=": "onnx::LessOrEqual",
        ">": "onnx::Greater", ">=": "onnx::GreaterOrEqual"}
_STANDARD = {"linear", "logistic", "exponential", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin",
             "arccos", "arctan", "MatMul", "Relu"}


def as_tensor(v: Any) -> torch.Tensor:
    """A literal MDF value as a tensor: floats as float64 (numpy's default, as modeci_mdf
    computes), ints as int64, bools as bool."""
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, bool):
        return torch.tensor(v)
    if isinstance(v, int):
        return torch.tensor(v, dtype=torch.int64)
    if isinstance(v, float):
        return torch.tensor(v, dtype=torch.float64)
    try:
        t = torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConversionError(f"value {v!r} is not a number or array") from e
    return t.double() if t.is_floating_point() else t


class _NodeLowering:
    """Lowers one MDF node; ``env`` maps the names visible in its expressions to IR values."""

    def __init__(self, fl: _FrontendLowering, node: Any, where: str):
        self.fl = fl
        self.g = fl.g
        self.node = node
        self.where = where
        self.env: dict[str, Value] = {}
        self.prov = Provenance(origin="mdf", mdf_path=where, file=fl.file)

    # -- values and expressions ---------------------------------------------------------------
    def const(self, v: Any, name: str = "const") -> Value:
        return self.g.add_constant(as_tensor(v), name)

    def op(self, op: str, inputs: list[Value | None], attrs: dict | None = None, n_out: int = 1,
           name: str = "", where: str | None = None) -> Value:
        prov = self.prov if where is None else Provenance(origin="mdf", mdf_path=where, file=self.fl.file)
        node = self.g.create_node(op, inputs, attrs or {}, num_outputs=n_out, provenance=prov, name=name)
        return node.outputs[0]

    def value(self, v: Any, where: str, env: dict[str, Value] | None = None, name: str = "") -> Value:
        """Lower a parameter value / argument: number, array or expression string."""
        if isinstance(v, str):
            from torchmdf.mdf.expressions import parse_expression

            scope = env if env is not None else self.env
            if v in scope:  # a bare name, even one that is no identifier ("/A/Add"), as modeci_mdf
                return scope[v]
            expr = parse_expression(v, location=self.fl.loc(where))
            return self.expr(expr, env if env is not None else self.env, where)
        if isinstance(v, (int, float, bool, torch.Tensor, list)):
            return self.const(v, name or "const")
        raise ValidationError(f"a value must be a number, an array or an expression, not {type(v).__name__}",
                              location=self.fl.loc(where))

    def expr(self, e: Any, env: dict[str, Value], where: str) -> Value:
        from torchmdf.mdf import expressions as E

        op = self.op
        if isinstance(e, E.Num):
            return self.const(e.value)
        if isinstance(e, E.Name):
            if e.id in env:
                return env[e.id]
            if e.id in E._CONSTANTS:
                return self.const(float(E._CONSTANTS[e.id]))
            raise ValidationError(f"unknown name {e.id!r} in expression",
                                  location=self.fl.loc(where),
                                  hint=f"names in scope: {', '.join(sorted(env)) or '(none)'}")
        if isinstance(e, E.BinOp):
            return op(_BIN[e.op], [self.expr(e.left, env, where), self.expr(e.right, env, where)])
        if isinstance(e, E.UnaryOp):
            x = self.expr(e.operand, env, where)
            if e.op == "-":
                return op("onnx::Neg", [x])
            if e.op == "+":
                return x
            return op("aten::logical_not", [x])
        if isinstance(e, E.Compare):
            return op(_CMP[e.op], [self.expr(e.left, env, where), self.expr(e.right, env, where)])
        if isinstance(e, E.BoolOp):
            vals = [self.expr(x, env, where) for x in e.values]
            out = vals[0]
            for x in vals[1:]:
                out = op("aten::logical_and" if e.op == "and" else "aten::logical_or", [out, x])
            return out
        if isinstance(e, E.IfExp):
            return op("onnx::Where", [self.expr(e.test, env, where), self.expr(e.body, env, where),
                                      self.expr(e.orelse, env, where)])
        if isinstance(e, E.Call):
            return self.call(e.func, [self.expr(a, env, where) for a in e.args], where)
        if isinstance(e, E.Subscript):
            base = self.expr(e.value, env, where)
            if isinstance(base, list):  # one result of a multi-output op: "Split[1]"
                if not (isinstance(e.index, E.Num) and isinstance(e.index.value, int)
                        and 0 <= e.index.value < len(base)):
                    raise ValidationError("a multi-output function is indexed by a constant position",
                                          location=self.fl.loc(where))
                return base[e.index.value]
            return self.subscript(base, e.index, env, where)
        if isinstance(e, E.List):
            if all(isinstance(x, E.Num) for x in e.elts):
                return self.const([x.value for x in e.elts])
            return op("aten::stack", [self.expr(x, env, where) for x in e.elts], {"dim": 0})
        raise ValidationError(f"unsupported expression {e!r}", location=self.fl.loc(where))

    def call(self, f: str, args: list[Value], where: str) -> Value:
        op = self.op
        if f in _STANDARD and f not in _UNARY_ONNX:
            return op(f"mdf::{f}", args)
        if f in _UNARY_ONNX:
            return op(f"onnx::{_UNARY_ONNX[f]}", args)
        if f in _UNARY_ATEN:
            return op(_UNARY_ATEN[f], args)
        if f == "log":
            y = op("onnx::Log", [args[0]])
            return y if len(args) == 1 else op("aten::div.Tensor", [y, op("onnx::Log", [args[1]])])
        if f == "square":
            return op("onnx::Mul", [args[0], args[0]])
        if f in ("float", "int"):
            return op("onnx::Cast", [args[0]], {"to": 11 if f == "float" else 7})
        if f in ("sum", "mean", "amax", "amin") or (f in ("min", "max") and len(args) == 1):
            red = {"sum": "ReduceSum", "mean": "ReduceMean", "amax": "ReduceMax", "amin": "ReduceMin",
                   "max": "ReduceMax", "min": "ReduceMin"}[f]
            return op(f"onnx::{red}", [args[0]], {"keepdims": 0})
        if f in ("max", "min", "maximum", "minimum"):
            return op("onnx::Max" if f in ("max", "maximum") else "onnx::Min", args)
        if f == "pow":
            return op("onnx::Pow", args)
        if f in ("matmul", "dot"):
            return op("onnx::MatMul", args)
        if f == "arctan2":
            return op("aten::atan2", args)
        if f == "hypot":
            return op("aten::hypot", args)
        if f == "fmod":
            return op("aten::fmod.Tensor", args)
        if f == "where":
            return op("onnx::Where", args)
        if f == "clip":
            return op("aten::clamp.Tensor", args)
        raise ValidationError(f"function {f!r} is not supported in expressions", location=self.fl.loc(where))

    def subscript(self, x: Value, index: Any, env: dict[str, Value], where: str) -> Value:
        from torchmdf.mdf import expressions as E

        items = index if isinstance(index, tuple) else (index,)
        axis = 0
        out = x
        for it in items:
            if isinstance(it, E.Slice):
                lo = self._int_or_none(it.lower, where)
                hi = self._int_or_none(it.upper, where)
                st = self._int_or_none(it.step, where)
                big = 2**63 - 1
                out = self.op("onnx::Slice", [out, self.const([0 if lo is None else lo]),
                                              self.const([(big if (st or 1) > 0 else -big) if hi is None else hi]),
                                              self.const([axis]), self.const([1 if st is None else st])])
                axis += 1
            else:
                idx = self.expr(it, env, where)
                if idx.tensor is None or idx.tensor.dtype != torch.int64:
                    idx = self.op("onnx::Cast", [idx], {"to": 7})
                out = self.op("onnx::Gather", [out, idx], {"axis": axis})
        return out

    def _int_or_none(self, e: Any, where: str) -> int | None:
        from torchmdf.mdf import expressions as E

        if e is None:
            return None
        if isinstance(e, E.Num) and isinstance(e.value, int):
            return int(e.value)
        if isinstance(e, E.UnaryOp) and e.op == "-" and isinstance(e.operand, E.Num):
            return -int(e.operand.value)
        raise ValidationError("slice bounds must be integer literals", location=self.fl.loc(where))

    # -- functions -----------------------------------------------------------------------------
    def function(self, fname: str, args: dict[str, Any] | None, where: str, attr_params: dict[str, Any]) -> Value:
        """``function`` + ``args`` of a parameter or function: a standard function, an ONNX or
        ATen op (attributes from args or from the node's parameters, as modeci_mdf does), or
        an expression over its args."""
        args = dict(args or {})
        scope = dict(self.env)
        lowered: dict[str, Value] = {}

        def arg(name: str) -> Value:
            if name not in lowered:
                lowered[name] = self.value(args[name], f"{where} > argument '{name}'", scope)
                scope[name] = lowered[name]
            return lowered[name]

        d = registry.lookup(fname) if "::" in fname else registry.lookup(f"mdf::{fname}")
        if d is None and "::" in fname:
            raise ValidationError(f"unknown function {fname!r}", location=self.fl.loc(where),
                                  hint="functions are the MDF standard functions, onnx::<Op> or aten::<op>")
        if d is None:
            # modeci_mdf treats an unknown function as an expression over its arguments
            for a in args:
                arg(a)
            return self.value(fname, where, scope)
        if d.domain == "mdf":
            missing = [n for n in d.input_names if n not in args]
            extra = [n for n in args if n not in d.input_names]
            if missing or extra:
                raise ValidationError(f"function {fname!r} takes arguments {', '.join(d.input_names)}"
                                      + (f"; missing {', '.join(missing)}" if missing else "")
                                      + (f"; unknown {', '.join(extra)}" if extra else ""),
                                      location=self.fl.loc(where))
            return self.op(d.name, [arg(n) for n in d.input_names], name=self.node.id)
        if d.domain == "onnx":
            return self._onnx(d, args, arg, where, attr_params)
        return self._aten(d, args, arg, where, attr_params)

    def _literal(self, v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.tolist()
        return v

    def _onnx(self, d, args, arg, where, attr_params) -> Value:
        schema = d.onnx_schema()
        attr_names = set(schema.attributes) if schema is not None else set()
        inputs: list[Value | None] = []
        names = list(d.input_names or ())
        if d.variadic and names and names[0] in args:
            v = args[names[0]]
            items = v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
            if isinstance(v, str) and _QUOTED_LIST.fullmatch(v):  # "['_122', '_123']" (modeci writes it)
                items = _QUOTED_ITEM.findall(v)
            if items is not None:
                inputs = [self.value(x, f"{where} > argument '{names[0]}'", self.env) for x in items]
            else:
                inputs = [arg(names[0])]
        else:
            for n in names:
                inputs.append(arg(n) if n in args else None)
            while inputs and inputs[-1] is None:
                inputs.pop()
        attrs: dict[str, Any] = {}
        for a in attr_names:
            if a in args:
                attrs[a] = self._literal(args[a])
            elif a in attr_params:
                attrs[a] = self._literal(attr_params[a])
        unknown = [a for a in args if a not in names and a not in attr_names]
        if unknown:
            raise ValidationError(f"{d.name} has no input or attribute {', '.join(map(repr, unknown))}",
                                  location=self.fl.loc(where))
        n_out = d.outputs_for(attrs, len(inputs))
        outs = self.g.create_node(d.name, inputs, attrs, num_outputs=n_out, provenance=self.prov,
                                  name=self.node.id).outputs
        return outs[0] if n_out == 1 else list(outs)

    def _aten(self, d, args, arg, where, attr_params) -> Value:
        sig = registry.aten_signature(d.fx_target)
        inputs: list[Value | None] = []
        attrs: dict[str, Any] = {}
        for name, kind in zip(sig.arg_names, sig.kinds):
            src = args if name in args else attr_params if name in attr_params else None
            if src is None:
                if kind == "tensor?":
                    inputs.append(None)
                continue
            if kind in ("tensor", "tensor?"):
                inputs.append(arg(name) if src is args else self.value(src[name], where, self.env))
            elif kind == "tensors":
                v = src[name]
                v = v.tolist() if isinstance(v, torch.Tensor) else v
                inputs.extend(self.value(x, where, self.env) for x in (v if isinstance(v, list) else [v]))
            else:
                attrs[name] = _decode_attr(self._literal(src[name]))
        outs = self.g.create_node(d.name, inputs, attrs, num_outputs=max(sig.num_returns, 1),
                                  provenance=self.prov, name=self.node.id).outputs
        return outs[0] if len(outs) == 1 else list(outs)


_QUOTED_LIST = re.compile(r"\[\s*'[^']*'(\s*,\s*'[^']*')*\s*\]")
_QUOTED_ITEM = re.compile(r"'([^']*)'")


def _decode_attr(v: Any) -> Any:
    """ATen attributes that JSON cannot hold are written as ``{"dtype": "float32"}`` etc."""
    if isinstance(v, dict) and len(v) == 1:
        (k, x), = v.items()
        if k == "dtype" and isinstance(x, str) and isinstance(getattr(torch, x, None), torch.dtype):
            return getattr(torch, x)
        if k == "device":
            return torch.device(x)
        if k == "memory_format":
            return getattr(torch, x)
    return v


class _FrontendLowering:
    def __init__(self, model: Any, mgraph: Any, first: bool, dt: float | None):
        self.model = model
        self.mg = mgraph
        self.file = os.path.basename(model.source) if getattr(model, "source", None) else None
        self.first = first
        self.dt = dt
        self.g = Graph(mgraph.id)

    def loc(self, where: str) -> str:
        return f"file '{self.file}' > {where}" if self.file else where

    def base(self) -> str:
        return f"model '{self.model.id}' > graph '{self.mg.id}'"

    def run(self) -> Graph:
        from torchmdf.mdf.model import Graph as MGraph

        mg, g = self.mg, self.g
        nodes = [n for n in mg.nodes if not isinstance(n, MGraph)]
        nested = [n for n in mg.nodes if isinstance(n, MGraph)]
        if nested:
            raise ConversionError(f"nested graph '{nested[0].id}' is not supported yet",
                                  location=self.loc(f"{self.base()} > graph '{nested[0].id}'"))
        by_id = {n.id: n for n in nodes}
        for e in mg.edges:
            for end, port, kind in ((e.sender, e.sender_port, "output"), (e.receiver, e.receiver_port, "input")):
                n = by_id.get(end)
                ports = None if n is None else (n.output_ports if kind == "output" else n.input_ports)
                if n is None or not any(p.id == port for p in ports):
                    raise ValidationError(f"edge refers to unknown {kind} port '{end}.{port}'",
                                          location=self.loc(f"{self.base()} > edge '{e.id}'"))
        order, back_edges = _order_nodes(nodes, mg.edges)
        if self.mg.conditions is not None and _has_real_conditions(self.mg.conditions):
            g.conditions = self.mg.conditions
        # graph inputs: free input ports, in file order
        fed = {(e.receiver, e.receiver_port) for e in mg.edges}
        free: dict[tuple[str, str], Value] = {}
        port_ids = [p.id for n in nodes for p in n.input_ports if (n.id, p.id) not in fed]
        for n in nodes:
            for p in n.input_ports:
                if (n.id, p.id) in fed:
                    continue
                name = p.id if port_ids.count(p.id) == 1 else f"{n.id}_{p.id}"
                default = _port_default(p)
                v = g.add_input(name, TensorType(default.dtype, tuple(default.shape)))
                v.meta["default"] = default
                v.meta["mdf_port"] = f"{n.id}.{p.id}"
                free[(n.id, p.id)] = v
        outputs: dict[tuple[str, str], Value] = {}
        incoming: dict[str, list[Any]] = {n.id: [] for n in nodes}
        for e in mg.edges:
            incoming[e.receiver].append(e)
        back_states: dict[str, Any] = {}
        back_ids = {e.id for e in back_edges}
        for e in back_edges if not self.first else []:  # value from the previous evaluation
            rn = by_id[e.receiver]
            port = next(p for p in rn.input_ports if p.id == e.receiver_port)
            sv = g.add_state(f"{e.sender}.{e.sender_port}", _port_default(port))
            back_states[e.id] = sv
        for n in order:
            where = f"{self.base()} > node '{n.id}'"
            nl = _NodeLowering(self, n, where)
            for p in n.input_ports:
                if (n.id, p.id) in free:
                    nl.env[p.id] = free[(n.id, p.id)]
                    continue
                val = None
                for e in incoming[n.id]:
                    if e.receiver_port != p.id:
                        continue
                    if e.id in back_ids:  # sender runs later: its previous value (first: the default)
                        src = back_states[e.id].current if not self.first else g.add_constant(_port_default(p), "default")
                    else:
                        src = outputs[(e.sender, e.sender_port)]
                    w = (e.parameters or {}).get("weight", 1) if e.parameters else 1
                    ew = f"{self.base()} > edge '{e.id}'"
                    if not (isinstance(w, (int, float)) and not isinstance(w, bool) and w == 1):
                        wv = nl.value(w, ew + " > parameter 'weight'")
                        src = nl.op("onnx::Mul", [wv, src], where=ew)
                    if val is None or (p.reduce or "overwrite") == "overwrite":
                        val = src
                    elif p.reduce == "add":
                        val = nl.op("onnx::Add", [val, src])
                    elif p.reduce == "multiply":
                        val = nl.op("onnx::Mul", [val, src])
                nl.env[p.id] = val
            self.lower_node_body(nl, n, where)
            for op_ in n.output_ports:
                ow = f"{where} > output port '{op_.id}'"
                if op_.value is None:
                    raise ValidationError("output port has no value", location=self.loc(ow))
                v = nl.value(op_.value, ow)
                outputs[(n.id, op_.id)] = v
        for e, sv in [(e, back_states[e.id]) for e in back_edges if e.id in back_states]:
            sv.next = outputs[(e.sender, e.sender_port)]
        # values the next evaluation starts from (simulate reads them after the first one)
        g.meta.setdefault("state_after", {}).update(
            {f"{e.sender}.{e.sender_port}": outputs[(e.sender, e.sender_port)] for e in back_edges})
        sent = {(e.sender, e.sender_port) for e in mg.edges}
        names, outs = [], []
        for n in nodes:
            for op_ in n.output_ports:
                if (n.id, op_.id) not in sent:
                    names.append(f"{n.id}.{op_.id}")
                    outs.append(outputs[(n.id, op_.id)])
        g.outputs = outs
        g.output_names = names
        g.meta["all_outputs"] = {f"{a}.{b}": v for (a, b), v in outputs.items()}
        g.metadata["mdf_source"] = True
        g.metadata["mdf_model"] = self.model.id
        for md in (self.model.metadata, self.mg.metadata):
            if md and isinstance(md.get("torchmdf"), dict):
                for k, v in md["torchmdf"].items():
                    g.metadata[k] = v
        keep = g.metadata.get("output_ports")  # written by torchmdf: the outputs, in order
        if isinstance(keep, list) and all(k in g.meta["all_outputs"] for k in keep):
            g.outputs = [g.meta["all_outputs"][k] for k in keep]
            names = g.metadata.get("output_names")
            g.output_names = list(names) if isinstance(names, list) and len(names) == len(keep) else list(keep)
        g.verify()
        return g

    def named_parameter(self, name: str, value: Any, role: str) -> Value:
        """A weight written by torchmdf keeps its PyTorch name; shared weights are one value."""
        named = self.g.meta.setdefault("_named", {})
        if name not in named:
            role = role if role in ("parameter", "buffer") else "constant"
            named[name] = self.g.add_parameter(name, as_tensor(value) if not isinstance(value, torch.Tensor)
                                               else value, role=role)
        return named[name]

    def lower_node_body(self, nl: _NodeLowering, n: Any, where: str) -> None:
        g = self.g
        params = list(n.parameters)
        attr_param_ids = _attribute_parameter_ids(n)
        attr_params = {p.id: p.value for p in params if p.value is not None and not isinstance(p.value, str)}
        attr_params.update({p.id: p.value for p in params if p.id in attr_param_ids and p.value is not None})
        states: dict[str, Any] = {}
        # phase 1: current values of stateful parameters (previous evaluation / initial value)
        for p in params:
            if p.is_stateful():
                pw = f"{where} > parameter '{p.id}'"
                init = p.default_initial_value
                init_v = nl.value(init, pw + " > default_initial_value") if init is not None \
                    else nl.const(0.0)
                if self.first:
                    nl.env[p.id] = init_v
                else:
                    t = init_v.tensor if init_v.tensor is not None else None
                    sv = g.add_state(f"{n.id}.{p.id}", t, init_v.type)
                    if t is None:
                        sv.init_value = init_v
                    states[p.id] = sv
                    nl.env[p.id] = sv.current
        for f in n.functions:
            fw = f"{where} > function '{f.id}'"
            if f.function is not None:
                nl.env[f.id] = nl.function(f.function, f.args, fw, attr_params)
            else:  # a value expression over its own args
                scope = dict(nl.env)
                for a, av in (f.args or {}).items():
                    scope[a] = nl.value(av, f"{fw} > argument '{a}'", scope)
                nl.env[f.id] = nl.value(f.value, fw, scope)
        # phase 2: parameters in dependency order
        for p in _param_order(params, set(nl.env), self.loc(where)):
            pw = f"{where} > parameter '{p.id}'"
            if p.id in attr_param_ids and isinstance(p.value, str):
                continue  # a string ONNX attribute (auto_pad="SAME_UPPER"): not an expression
            tm = (p.metadata or {}).get("torchmdf") if isinstance(p.metadata, dict) else None
            tm = tm if isinstance(tm, dict) else {}
            if p.value is not None and not isinstance(p.value, str) and (tm.get("name") or tm.get("dtype")):
                t = _with_dtype(as_tensor(p.value), tm.get("dtype"), self.loc(pw))
                v = self.named_parameter(tm["name"], t, tm.get("role", "parameter")) if tm.get("name") \
                    else nl.const(t, p.id)
            elif p.value is not None:
                v = nl.value(p.value, pw, name=p.id)
            elif p.function is not None:
                v = nl.function(p.function, p.args, pw, attr_params)
            elif p.time_derivative is not None:
                if self.first:
                    v = nl.env[p.id]
                else:
                    td = nl.value(p.time_derivative, pw + " > time_derivative")
                    step = nl.op("onnx::Mul", [td, nl.const(float(self.dt))])
                    v = nl.op("onnx::Add", [nl.env[p.id], step])
            elif p.default_initial_value is not None:
                v = nl.env[p.id]
            else:
                raise ValidationError("parameter has no value, function or time derivative",
                                      location=self.loc(pw))
            for c in p.conditions or []:
                cw = f"{pw} > condition '{c.id}'"
                test = nl.value(c.test, cw + " > test")
                val = nl.value(c.value, cw + " > value")
                v = nl.op("onnx::Where", [test, val, v])
            nl.env[p.id] = v
            if p.id in states:
                states[p.id].next = v
            if p.is_stateful():
                g.meta.setdefault("state_after", {})[f"{n.id}.{p.id}"] = v


def _attribute_parameter_ids(n: Any) -> set[str]:
    """Parameters a node's ONNX functions read as attributes (modeci_mdf passes all of a
    node's parameters to an ONNX op, which picks its attributes by name)."""
    out: set[str] = set()
    fns = [p.function for p in n.parameters if p.function] + [f.function for f in n.functions if f.function]
    for fn in fns:
        if isinstance(fn, str) and fn.startswith("onnx::"):
            d = registry.lookup(fn)
            s = d.onnx_schema() if d is not None else None
            if s is not None:
                out |= set(s.attributes)
        elif isinstance(fn, str) and fn.startswith("aten::"):
            d = registry.lookup(fn)
            if d is not None:
                sig = registry.aten_signature(d.fx_target)
                out |= {a for a, k in zip(sig.arg_names, sig.kinds) if k == "attr"}
    return out


def _param_order(params: list[Any], known: set[str], where: str) -> list[Any]:
    """modeci_mdf's order: a parameter is placed once every name it needs is known (itself
    included for stateful ones); otherwise it goes to the back of the queue."""
    from torchmdf.mdf.expressions import free_names, parse_expression

    def needs(p) -> set[str]:
        req: set[str] = set()
        exprs = []
        if isinstance(p.value, str):
            exprs.append(p.value)
        for a in (p.args or {}).values():
            if isinstance(a, str):
                exprs.append(a)
        for x in exprs:
            try:
                req |= set(free_names(parse_expression(x)))
            except TorchMDFError:
                pass
        return req - set(p.args or {})

    known = set(known)
    all_ids = {p.id for p in params}
    queue = list(params)
    out = []
    stall = 0
    while queue:
        p = queue.pop(0)
        req = {r for r in needs(p) if r in all_ids or r not in known}
        if all(r in known or r == p.id or (r not in all_ids) for r in req):
            out.append(p)
            known.add(p.id)
            stall = 0
        else:
            queue.append(p)
            stall += 1
            if stall > len(queue):
                missing = sorted(r for q in queue for r in needs(q) if r not in known and r in all_ids)
                raise ValidationError(f"parameters depend on each other in a cycle ({', '.join(missing)})",
                                      location=where)
    return out


def _with_dtype(t: torch.Tensor, name: str | None, where: str) -> torch.Tensor:
    if not name:
        return t
    dt = getattr(torch, str(name), None)
    if not isinstance(dt, torch.dtype):
        raise ValidationError(f"unknown dtype {name!r} in torchmdf metadata", location=where)
    return t.to(dt)


_PORT_TYPES = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64,
               "double": torch.float64, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool,
               "float16": torch.float16}


def _port_default(p: Any) -> torch.Tensor:
    if p.default_value is not None:
        t = as_tensor(p.default_value)
        dt = _PORT_TYPES.get(str(p.type)) if p.type else None
        return t.to(dt) if dt is not None and t.dtype != dt else t
    shape = tuple(p.shape) if p.shape else ()
    dtype = torch.float32 if (p.type and "float32" in str(p.type)) else torch.float64
    if p.type and "int" in str(p.type):
        dtype = torch.int64
    return torch.zeros(shape, dtype=dtype)


def _has_real_conditions(cs: Any) -> bool:
    ns = getattr(cs, "node_specific", None) or {}
    term = getattr(cs, "termination", None) or {}
    return any(getattr(c, "type", "Always") != "Always" for c in ns.values()) or bool(term)


def _order_nodes(nodes: list[Any], edges: list[Any]) -> tuple[list[Any], list[Any]]:
    """Dependency order (file order among ready nodes) and the edges that close cycles."""
    ids = [n.id for n in nodes]
    pos = {i: k for k, i in enumerate(ids)}
    deps: dict[str, set[str]] = {i: set() for i in ids}
    for e in edges:
        if e.sender != e.receiver:
            deps[e.receiver].add(e.sender)
    done: set[str] = set()
    order: list[str] = []
    remaining = list(ids)
    while remaining:
        ready = [i for i in remaining if deps[i] <= done]
        if not ready:  # a cycle: run the earliest node first, its inputs come from the past
            ready = [remaining[0]]
        nxt = min(ready, key=pos.__getitem__)
        order.append(nxt)
        done.add(nxt)
        remaining.remove(nxt)
    rank = {i: k for k, i in enumerate(order)}
    back = [e for e in edges if rank[e.sender] >= rank[e.receiver]]
    by_id = {n.id: n for n in nodes}
    return [by_id[i] for i in order], back


def lower_mdf(model: Any, *, graph: str | None = None, first: bool = True, dt: float | None = None) -> Graph:
    """Lower an MDF model (object or file path) into the IR.  ``graph`` picks a graph by id
    (default: the first)."""
    from torchmdf.mdf import Model, load

    if isinstance(model, (str, os.PathLike)):
        model = load(model)
    if not isinstance(model, Model):
        raise ConversionError(f"expected a torchmdf.mdf.Model or a path, got {type(model).__name__}")
    if not model.graphs:
        raise ValidationError("model has no graphs", location=f"model '{model.id}'")
    mg = model.graphs[0] if graph is None else model.get_graph(graph)
    if mg is None:
        raise ValidationError(f"no graph {graph!r} (graphs: {', '.join(g.id for g in model.graphs)})",
                              location=f"model '{model.id}'")
    return _FrontendLowering(model, mg, first, dt).run()


__all__ = ["lower_mdf", "as_tensor"]
