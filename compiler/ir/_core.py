"""The SSA IR: :class:`Value`, :class:`Node`, :class:`Graph`.

Modeled on onnx-ir's ``_core.py`` and torch.fx: small explicit classes whose mutators keep
use lists in sync, so passes never have to rebuild def-use chains.  Nodes live in an
intrusive doubly linked list, which makes insert/remove O(1) and iteration safe while the
current node is being removed.  Nothing in here recurses over the graph, so 100k-node chains
are fine.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from typing import Any, Iterable, Iterator, Sequence

import torch

from ..errors import VerificationError
from ._signature import GraphSignature

Dim = int | str | None
"""A dimension: a concrete size, a symbol name (``"batch"``, ``"s0"``) or unknown (None)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TensorType:
    """dtype + shape of a value.  ``shape=None`` means the rank is unknown."""

    dtype: torch.dtype | None = None
    shape: tuple[Dim, ...] | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def __str__(self) -> str:
        dt = _DTYPE_SHORT.get(self.dtype, str(self.dtype).replace("torch.", "")) if self.dtype else "?"
        if self.shape is None:
            return f"{dt}[*]"
        return f"{dt}[{','.join('?' if d is None else str(d) for d in self.shape)}]"

    @staticmethod
    def of(t: torch.Tensor) -> TensorType:
        return TensorType(t.dtype, tuple(t.shape))


UNKNOWN = TensorType()

_DTYPE_SHORT = {
    torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "bool", torch.complex64: "c64",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Provenance:
    """Where a node came from: an nn.Module path and source line, or an MDF location."""

    origin: str | None = None  # "torch.export", "fx", "torchscript", "mdf", "pass:<name>", ...
    module_path: str | None = None  # "layer1.0.conv1"
    source: str | None = None  # "model.py:12"
    mdf_path: str | None = None  # "graph 'g' > node 'A' > parameter 'slope'"
    file: str | None = None  # MDF file the node was read from

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(f"file '{self.file}'")
        if self.mdf_path:
            parts.append(self.mdf_path)
        if self.module_path:
            parts.append(f"module '{self.module_path}'")
        head = " > ".join(parts)
        if self.source:
            return f"{head} ({self.source})" if head else self.source
        return head or (self.origin or "")

    def derived(self, origin: str) -> Provenance:
        """The same place, noted as rewritten by ``origin`` (a pass name)."""
        return dataclasses.replace(self, origin=origin)


NO_PROVENANCE = Provenance()


class ValueRole(str, enum.Enum):
    """What a :class:`Value` is.  A ``str`` enum, so ``v.role == "buffer"`` keeps working and
    ``str(role)`` is the plain name."""

    __str__ = str.__str__
    __format__ = str.__format__

    INPUT = "input"  # a graph input
    PARAMETER = "parameter"  # a trainable weight (carries its tensor)
    BUFFER = "buffer"  # a non-trainable named tensor
    CONSTANT = "constant"  # a literal tensor
    STATE = "state"  # the current value of a state variable
    NODE = "node"  # a node's result

    @property
    def is_named_tensor(self) -> bool:
        """A parameter or buffer: part of the model's ``state_dict``."""
        return self in (ValueRole.PARAMETER, ValueRole.BUFFER)


class Value:
    """An SSA value.  Produced by exactly one node, or a graph input / parameter / constant.

    ``tensor`` is set for parameters and constants.  ``role`` (a :class:`ValueRole`) says
    which of these the value is.
    """

    __slots__ = ("name", "type", "producer", "index", "_uses", "tensor", "_role", "graph", "meta",
                 "_returned_by")

    def __init__(self, name: str, type: TensorType = UNKNOWN, *, role: ValueRole | str = ValueRole.NODE,
                 tensor: torch.Tensor | None = None):
        self.name = name
        self.type = type
        self.producer: Node | None = None
        self.index = 0
        self._uses: dict[tuple[Node, int], None] = {}
        self.tensor = tensor
        self._role = _role(role, name)
        self.graph: Graph | None = None
        self.meta: dict[str, Any] = {}
        self._returned_by: dict[Graph, int] | None = None  # regions returning this outer value

    @property
    def role(self) -> ValueRole:
        return self._role

    @role.setter
    def role(self, role: ValueRole | str) -> None:
        self._role = _role(role, self.name)

    def uses(self) -> list[tuple[Node, int]]:
        """``(node, input index)`` pairs that read this value, in insertion order."""
        return list(self._uses)

    def users(self) -> list[Node]:
        seen: dict[Node, None] = {}
        for n, _ in self._uses:
            seen[n] = None
        return list(seen)

    @property
    def num_uses(self) -> int:
        return len(self._uses)

    @property
    def is_used(self) -> bool:
        """Whether a node reads this value, or a region returns it (see :meth:`Graph.is_live` for
        outputs and state)."""
        return bool(self._uses) or bool(self._returned_by)

    @property
    def is_constant(self) -> bool:
        return self.tensor is not None and self.role == ValueRole.CONSTANT

    @property
    def has_tensor(self) -> bool:
        return self.tensor is not None

    def replace_all_uses_with(self, other: Value) -> None:
        """Point every reader of this value (and graph outputs) at ``other``."""
        if other is self:
            return
        for node, i in list(self._uses):
            node.replace_input_with(i, other)
        g = self.graph
        if g is not None:
            outs = g.outputs
            for i in outs.positions(self):
                outs[i] = other
            for sv in g.state:
                if sv.next is self:
                    sv.next = other
        if self._returned_by:  # regions that return this value of an enclosing scope
            for region in list(self._returned_by):
                outs = region.outputs
                for i in outs.positions(self):
                    outs[i] = other

    def __repr__(self) -> str:
        return f"%{self.name}"


class Node:
    """One operation: ``op`` is ``"domain::name"`` (``onnx::Gemm``, ``aten::addmm.default``).

    ``attrs`` are the op's non-tensor arguments, ``provenance`` where it came from,
    ``meta`` analysis results (inferred shapes...), ``metadata`` user metadata (kept apart).
    ``regions`` are the nested graphs it owns (control flow: see ``_regions.py``).
    """

    __slots__ = ("op", "_inputs", "outputs", "attrs", "provenance", "meta", "metadata", "graph",
                 "_prev", "_next", "_removed", "_regions")

    def __init__(self, op: str, inputs: Sequence[Value | None] = (), *, num_outputs: int = 1,
                 attrs: dict[str, Any] | None = None, provenance: Provenance = NO_PROVENANCE,
                 output_names: Sequence[str] | None = None, metadata: dict[str, Any] | None = None,
                 regions: Sequence[Graph] = ()):
        if "::" not in op:
            raise VerificationError(f"op name {op!r} must be written 'domain::name'")
        self.op = op
        self._inputs: tuple[Value | None, ...] = tuple(inputs)
        self.attrs = dict(attrs) if attrs else {}
        self.provenance = provenance
        self.meta: dict[str, Any] = {}
        self.metadata = dict(metadata) if metadata else {}
        self.graph: Graph | None = None
        self._prev: Node | None = None
        self._next: Node | None = None
        self._removed = False
        for i, v in enumerate(self._inputs):
            if v is not None:
                v._uses[(self, i)] = None
        names = list(output_names) if output_names is not None else [""] * num_outputs
        self.outputs: list[Value] = []
        for i, nm in enumerate(names):
            v = Value(nm)
            v.producer = self
            v.index = i
            self.outputs.append(v)
        self._regions: tuple[Graph, ...] = ()
        for r in regions:
            self.add_region(r)

    @property
    def regions(self) -> tuple[Graph, ...]:
        """The nested graphs this node owns (If branches, a Loop body); see ``_regions``."""
        return self._regions

    def add_region(self, region: Graph | str) -> Graph:
        """Attach a region (a graph, or a new empty one of that name) as the next region."""
        from ._regions import attach_region

        return attach_region(self, region)

    @property
    def domain(self) -> str:
        return self.op.split("::", 1)[0]

    @property
    def name(self) -> str:
        return self.op.split("::", 1)[1]

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        return self._inputs

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise VerificationError(f"node {self.op} has {len(self.outputs)} outputs, not one",
                                    location=self.location())
        return self.outputs[0]

    def replace_input_with(self, index: int, value: Value | None) -> None:
        old = self._inputs[index]
        if old is value:
            return
        if old is not None:
            old._uses.pop((self, index), None)
        ins = list(self._inputs)
        ins[index] = value
        self._inputs = tuple(ins)
        if value is not None:
            value._uses[(self, index)] = None

    def set_inputs(self, inputs: Sequence[Value | None]) -> None:
        """Replace the whole input list, keeping use lists in sync."""
        self._drop_uses()
        self._inputs = tuple(inputs)
        for i, v in enumerate(self._inputs):
            if v is not None:
                v._uses[(self, i)] = None

    def _drop_uses(self) -> None:
        for i, v in enumerate(self._inputs):
            if v is not None:
                v._uses.pop((self, i), None)

    def location(self) -> str:
        name = ", ".join(f"%{o.name}" for o in self.outputs) or "()"
        where = str(self.provenance)
        return f"node {name} = {self.op}" + (f" [{where}]" if where else "")

    def __repr__(self) -> str:
        return f"<Node {self.location()}>"


_state_edits = 0  # bumped whenever a state variable's next or init_value changes (see Graph.is_live)


@dataclasses.dataclass(slots=True)
class StateVar:
    """A state variable of a dynamical graph: ``current`` is read inside the graph (role
    ``"state"``), ``next`` is its value after one evaluation, ``init`` its initial tensor."""

    name: str
    current: Value
    next: Value | None
    init: torch.Tensor | None = None
    init_value: Value | None = None  # when the initial value is computed in the graph

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in ("next", "init_value"):
            global _state_edits
            _state_edits += 1


class OutputList(list):
    """A graph's outputs: a list that also knows where each value is, so "is this value an
    output" and "replace it" cost O(1) per occurrence instead of a scan (a graph with 100k
    outputs would make every replacement quadratic)."""

    _pos: dict[int, list[int]] | None = None  # id(value) -> indices; None: rebuild on demand
    _owner: Graph | None = None  # a region whose outer values returned are noted on them

    def __init__(self, items: Any = ()):
        super().__init__(items)
        self._pos = None

    def _note(self, v: Any, delta: int) -> None:
        """Keep ``Value._returned_by`` in step for values of enclosing scopes."""
        owner = self._owner
        if owner is None or v is None or v.graph is owner:
            return
        rb = v._returned_by
        if rb is None:
            rb = v._returned_by = {}
        n = rb.get(owner, 0) + delta
        if n > 0:
            rb[owner] = n
        else:
            rb.pop(owner, None)

    def _track(self, owner: Graph | None) -> None:
        """Start (owner) or stop (None) noting returned outer values."""
        if self._owner is not None:
            for v in self:
                self._note(v, -1)
        self._owner = owner
        if owner is not None:
            for v in self:
                self._note(v, 1)

    def __reduce_ex__(self, protocol: Any) -> Any:  # copies and pickles rebuild the index
        return (OutputList, (list(self),))

    def _index(self) -> dict[int, list[int]]:
        pos = self._pos
        if pos is None:
            pos = {}
            for i, v in enumerate(self):
                pos.setdefault(id(v), []).append(i)
            self._pos = pos
        return pos

    def positions(self, v: Any) -> list[int]:
        return list(self._index().get(id(v), ()))

    def __contains__(self, v: object) -> bool:
        return id(v) in self._index()

    def __setitem__(self, i: Any, v: Any) -> None:
        if self._owner is not None:
            if not isinstance(i, int):
                owner = self._owner
                self._track(None)
                try:
                    OutputList.__setitem__(self, i, v)
                finally:
                    self._track(owner)
                return
            self._note(list.__getitem__(self, i), -1)
            self._note(v, 1)
        if isinstance(i, int) and self._pos is not None:
            i = i % len(self) if len(self) else i
            old = list.__getitem__(self, i)
            lst = self._pos.get(id(old))
            if lst is not None:
                lst.remove(i)
                if not lst:
                    del self._pos[id(old)]
            list.__setitem__(self, i, v)
            self._pos.setdefault(id(v), []).append(i)
            return
        self._pos = None
        list.__setitem__(self, i, v)

    def append(self, v: Any) -> None:
        self._note(v, 1)
        if self._pos is not None:
            self._pos.setdefault(id(v), []).append(len(self))
        list.append(self, v)

    def _invalidate(name: str):  # noqa: N805 - builds the mutators that reorder the list
        base = getattr(list, name)

        def method(self, *args, **kwargs):
            self._pos = None
            owner = self._owner
            if owner is None:
                return base(self, *args, **kwargs)
            self._track(None)
            try:
                return base(self, *args, **kwargs)
            finally:
                self._track(owner)

        method.__name__ = name
        return method

    extend = _invalidate("extend")
    insert = _invalidate("insert")
    pop = _invalidate("pop")
    remove = _invalidate("remove")
    clear = _invalidate("clear")
    sort = _invalidate("sort")
    reverse = _invalidate("reverse")
    __delitem__ = _invalidate("__delitem__")
    __iadd__ = _invalidate("__iadd__")
    __imul__ = _invalidate("__imul__")
    del _invalidate


class Graph:
    """An SSA graph.  Nodes are kept in topological order in an intrusive linked list.

    ``parameters`` maps names to values that carry tensors (weights, buffers, constants).
    ``state`` lists the state variables of a dynamical graph, which makes it the pure function
    ``(inputs, state) -> (outputs, state')``.  ``conditions`` holds scheduling conditions as
    data for the backends; ``signature`` the original calling convention of a graph converted
    from PyTorch; ``metadata`` is user metadata, ``meta`` analysis results.
    A graph may be a region of a node (``parent_node``): see ``_regions.py``.
    """

    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self._outputs = OutputList()
        self.output_names: list[str] | None = None
        self.parameters: dict[str, Value] = {}
        self.state: list[StateVar] = []
        self.conditions: Any = None
        self.signature = GraphSignature()
        self.metadata: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self._state_roots: tuple[int, list[StateVar], int, frozenset[int]] | None = None
        self._head: Node | None = None
        self._tail: Node | None = None
        self._count = 0
        self._names: set[str] = set()
        self._counter = itertools.count()
        self.parent_node: Node | None = None  # the node owning this graph as a region
        self._region_owners = 0  # how many of this graph's nodes own regions

    @property
    def outputs(self) -> OutputList:
        return self._outputs

    @outputs.setter
    def outputs(self, values: Any) -> None:
        new = values if type(values) is OutputList else OutputList(values)
        owner = self._outputs._owner
        if owner is not None:
            self._outputs._track(None)
            new._track(owner)
        self._outputs = new

    # -- regions (see _regions.py) ---------------------------------------------------------
    def new_region(self, name: str) -> Graph:
        """An empty graph that shares this graph's value names, to become a region of one of
        its nodes (``create_node(..., regions=[...])`` or ``node.add_region``)."""
        region = Graph(name)
        region._names = self._names
        region._counter = self._counter
        return region

    @property
    def parent_graph(self) -> Graph | None:
        """The graph holding the node that owns this region (None for a top-level graph)."""
        p = self.parent_node
        return None if p is None else p.graph

    @property
    def root(self) -> Graph:
        """The outermost graph around this one."""
        g = self
        while g.parent_node is not None and g.parent_node.graph is not None:
            g = g.parent_node.graph
        return g

    @property
    def has_regions(self) -> bool:
        """Whether a node of this graph owns regions (O(1))."""
        return self._region_owners > 0

    def walk(self) -> Iterator[Node]:
        """Every node of this graph and of all nested regions, in program order (a node
        before its regions' nodes); no recursion, so any depth of nesting is fine."""
        from ._regions import walk_nodes

        return walk_nodes(self)

    def graphs(self) -> Iterator[Graph]:
        """This graph and every region nested in it, each before the regions inside it."""
        from ._regions import walk_graphs

        return walk_graphs(self)

    # -- naming -----------------------------------------------------------------------------
    def unique_name(self, hint: str = "") -> str:
        """A value name not used yet in this graph, derived from ``hint``."""
        base = _sanitize(hint) if hint else ""
        if base and base not in self._names:
            self._names.add(base)
            return base
        names = self._names
        while True:
            cand = f"{base}_{next(self._counter)}" if base else str(next(self._counter))
            if cand not in names:
                names.add(cand)
                return cand

    def _own(self, v: Value, hint: str) -> Value:
        v.name = self.unique_name(hint or v.name)
        v.graph = self
        return v

    # -- inputs, parameters, constants ------------------------------------------------------------
    def add_input(self, name: str, type: TensorType = UNKNOWN) -> Value:
        v = self._own(Value(name, type, role=ValueRole.INPUT), name)
        self.inputs.append(v)
        return v

    def add_parameter(self, name: str, tensor: torch.Tensor, *,
                      role: ValueRole | str = ValueRole.PARAMETER) -> Value:
        """A named tensor: ``role`` is PARAMETER (trainable), BUFFER or CONSTANT."""
        role = _role(role, name)
        if role not in _TENSOR_ROLES:
            raise VerificationError(f"bad parameter role {role.value!r} for {name!r}")
        t = tensor.detach() if isinstance(tensor, torch.Tensor) else torch.as_tensor(tensor)
        v = self._own(Value(name, TensorType.of(t), role=role, tensor=t), name)
        self.parameters[v.name] = v
        return v

    def add_constant(self, value: Any, name: str = "const", dtype: torch.dtype | None = None) -> Value:
        t = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=dtype)
        return self.add_parameter(name, t, role=ValueRole.CONSTANT)

    def remove_parameter(self, v: Value) -> None:
        if self.is_live(v):
            raise VerificationError(f"parameter %{v.name} still has uses")
        del self.parameters[v.name]
        self._names.discard(v.name)

    def add_state(self, name: str, init: torch.Tensor | None, type: TensorType = UNKNOWN) -> StateVar:
        cur = self._own(Value(name, type, role=ValueRole.STATE), name)
        sv = StateVar(cur.name, cur, None, init)
        self.state.append(sv)
        return sv

    # -- nodes ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Node]:
        """Nodes in order; removing the node being visited (or later ones) is safe."""
        n = self._head
        while n is not None:
            nxt = n._next
            if not n._removed:
                yield n
            n = nxt

    @property
    def nodes(self) -> list[Node]:
        return list(self)

    def reversed(self) -> Iterator[Node]:
        n = self._tail
        while n is not None:
            prv = n._prev
            if not n._removed:
                yield n
            n = prv

    def create_node(self, op: str, inputs: Sequence[Value | None] = (), attrs: dict[str, Any] | None = None,
                    *, num_outputs: int = 1, provenance: Provenance = NO_PROVENANCE,
                    name: str = "", output_names: Sequence[str] | None = None,
                    before: Node | None = None, after: Node | None = None,
                    metadata: dict[str, Any] | None = None, regions: Sequence[Graph] = ()) -> Node:
        """Make a node and put it at the end (or before/after a given node); ``regions``: the
        nested graphs it owns (best made with :meth:`new_region`)."""
        node = Node(op, inputs, num_outputs=num_outputs, attrs=attrs, provenance=provenance,
                    output_names=output_names, metadata=metadata, regions=regions)
        for i, o in enumerate(node.outputs):
            hint = o.name or (name if len(node.outputs) == 1 else f"{name}_{i}" if name else "")
            self._own(o, hint or _default_hint(op))
        if before is not None:
            self.insert_before(before, node)
        elif after is not None:
            self.insert_after(after, node)
        else:
            self.append(node)
        return node

    def _check_free(self, node: Node) -> None:
        if node.graph is not None:
            raise VerificationError("node already belongs to a graph", location=node.location())
        node.graph = self
        node._removed = False
        for o in node.outputs:
            if o.graph is not self:
                self._own(o, o.name or _default_hint(node.op))
        if node._regions:
            from ._regions import adopt_regions

            self._region_owners += 1
            adopt_regions(node, self)

    def _link(self, node: Node, prev: Node | None, nxt: Node | None) -> Node:
        """Put a free ``node`` between ``prev`` and ``nxt`` (None: the list's ends)."""
        self._check_free(node)
        node._prev, node._next = prev, nxt
        if prev is None:
            self._head = node
        else:
            prev._next = node
        if nxt is None:
            self._tail = node
        else:
            nxt._prev = node
        self._count += 1
        return node

    def append(self, node: Node) -> Node:
        return self._link(node, self._tail, None)

    def insert_before(self, anchor: Node, node: Node) -> Node:
        if anchor.graph is not self or anchor._removed:
            raise VerificationError("anchor node is not in this graph", location=anchor.location())
        return self._link(node, anchor._prev, anchor)

    def insert_after(self, anchor: Node, node: Node) -> Node:
        if anchor._next is None:
            if anchor.graph is not self or anchor._removed:
                raise VerificationError("anchor node is not in this graph", location=anchor.location())
            return self.append(node)
        return self.insert_before(anchor._next, node)

    def remove(self, node: Node, *, safe: bool = True) -> None:
        """Unlink ``node`` and drop its uses of its inputs.  With ``safe``, refuse to remove a
        node whose outputs are still used (that would leave dangling values)."""
        if node.graph is not self or node._removed:
            raise VerificationError("node is not in this graph", location=node.location())
        if safe:
            for o in node.outputs:
                if self.is_live(o):
                    raise VerificationError(f"cannot remove: output %{o.name} is still used",
                                            location=node.location())
        node._drop_uses()
        node._inputs = tuple(None for _ in node._inputs)
        if node._regions:
            from ._regions import release_regions

            self._region_owners -= 1
            release_regions(node)
        p, n = node._prev, node._next
        if p is None:
            self._head = n
        else:
            p._next = n
        if n is None:
            self._tail = p
        else:
            n._prev = p
        # Keep node._next so an iterator standing on the node can continue.
        node._removed = True
        node.graph = None
        self._count -= 1
        for o in node.outputs:
            self._names.discard(o.name)

    def replace_node(self, old: Node, new_values: Sequence[Value]) -> None:
        """Redirect every use of ``old``'s outputs to ``new_values`` and remove ``old``."""
        for o, v in zip(old.outputs, new_values):
            o.replace_all_uses_with(v)
        self.remove(old)

    # -- liveness ---------------------------------------------------------------------------
    def live_roots(self) -> frozenset[int]:
        """``id``s of the values read from outside the node list: the graph outputs and each
        state variable's next and computed initial value."""
        return frozenset(id(v) for v in self.outputs) | self._state_root_ids()

    def is_live(self, v: Value) -> bool:
        """Whether anything reads ``v``: a node, the graph's outputs, or a state variable (as its
        next or computed initial value).  O(1) amortized."""
        return bool(v._uses) or bool(v._returned_by) or v in self.outputs or id(v) in self._state_root_ids()

    def _state_root_ids(self) -> frozenset[int]:
        state = self.state
        if not state:
            return frozenset()
        cached = self._state_roots
        if cached is not None and cached[0] == _state_edits and cached[1] is state and cached[2] == len(state):
            return cached[3]
        ids = frozenset(id(x) for sv in state for x in (sv.next, sv.init_value) if x is not None)
        self._state_roots = (_state_edits, state, len(state), ids)
        return ids

    # -- whole-graph helpers ---------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        for sv in self.state:
            yield sv.current
        yield from self.parameters.values()
        for n in self:
            yield from n.outputs

    def value_map(self) -> dict[str, Value]:
        return {v.name: v for v in self.values()}

    def topological_sort(self) -> None:
        """Reorder nodes so every node follows its producers (stable: keeps existing order
        where it is already valid).  Iterative Kahn's algorithm; raises on a cycle."""
        nodes = list(self)
        pos = {n: i for i, n in enumerate(nodes)}
        indeg = {n: 0 for n in nodes}
        if self._region_owners:
            from ._regions import captured_values, owner_in

        for n in nodes:
            ins = n._inputs if not n._regions else n._inputs + tuple(captured_values(n))
            for v in set(x for x in ins if x is not None):
                if v.producer is not None and v.producer in pos:
                    indeg[n] += 1
        import heapq

        ready = [(pos[n], n) for n in nodes if indeg[n] == 0]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for o in n.outputs:
                users = {u for u, _ in o._uses}
                if self._region_owners:  # a use inside a region is a use by its owner here
                    users = {owner_in(u, self) for u in users}
                for u in users:
                    if u in indeg:
                        indeg[u] -= 1
                        if indeg[u] == 0:
                            heapq.heappush(ready, (pos[u], u))
        if len(order) != len(nodes):
            stuck = next(n for n in nodes if indeg[n] > 0)
            raise VerificationError("graph has a cycle", location=stuck.location())
        prev = None
        for n in order:
            n._prev = prev
            if prev is None:
                self._head = n
            else:
                prev._next = n
            prev = n
        if prev is not None:
            prev._next = None
        self._tail = prev

    def verify(self) -> None:
        from ._verifier import verify

        verify(self)

    def clone(self) -> Graph:
        from ._clone import clone_graph

        return clone_graph(self)

    def __str__(self) -> str:
        from ._printer import print_graph

        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self)} nodes, {len(self.parameters)} parameters>"


_TENSOR_ROLES = frozenset({ValueRole.PARAMETER, ValueRole.BUFFER, ValueRole.CONSTANT})


def _role(role: ValueRole | str, name: str) -> ValueRole:
    """``role`` as a :class:`ValueRole` (its string spelling is accepted)."""
    try:
        return ValueRole(role)
    except ValueError:
        raise VerificationError(f"bad value role {role!r} for {name!r}") from None


def _sanitize(name: str) -> str:
    out = "".join(c if (c.isalnum() or c in "_.") else "_" for c in name)
    return out or "v"


def _default_hint(op: str) -> str:
    name = op.split("::", 1)[-1].split(".", 1)[0]
    return name.lower() or "v"


def iter_values(values: Iterable[Value | None]) -> Iterator[Value]:
    for v in values:
        if v is not None:
            yield v
