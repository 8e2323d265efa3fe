"""The walk over a torch.fx graph that the fx and export frontends share.

:class:`FxGraphWalker` visits the nodes in order and dispatches on their kind: placeholders
must already be bound, ``get_attr`` fetches the attribute, ``call_function``/``call_module``/
``call_method`` go to the frontend's handlers, the ``output`` node ends the walk.  A node the
frontend cannot lower raises :class:`Unsupported` (or its call does not fit its ATen schema:
:class:`~torchmdf.ops.aten_schema.SchemaMismatchError`); the walker records it with the
node's location, puts a stand-in in its place and goes on, so that one
:class:`UnsupportedOpError` lists every problem of the model.  Provenance (nn.Module path, user source line) comes from
the node's meta, the same way for every frontend.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torch.fx

from ..errors import ConversionError, UnsupportedOpError
from ..ir import Provenance
from ..ops.aten_schema import SchemaMismatchError

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


class Unsupported(Exception):
    """This node cannot be lowered; ``what`` names the construct."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _Failed:
    """Marks the result of a node that could not be lowered (its users are not re-reported)."""


FAILED = _Failed()


def source_of(stack_trace: str | None) -> str | None:
    """``"file.py:LINE"`` of the innermost frame outside torch (the user's code), else the
    innermost frame of ``stack_trace``."""
    if not stack_trace:
        return None
    frames = re.findall(r'File "([^"]+)", line (\d+)', stack_trace)
    if not frames:
        return None
    user = [f for f in frames if not f[0].startswith(_TORCH_DIR)]
    path, line = (user or frames)[-1]
    return f"{os.path.basename(path)}:{line}"


def clean_module_path(raw: str) -> str:
    """``"L['self'].layer1[0]"`` or ``"layer1.0"`` -> ``"layer1.0"``."""
    p = raw
    p = re.sub(r"^L\['self'\]\.?", "", p)
    p = re.sub(r"^L__self__\.?", "", p)
    p = re.sub(r"getattr\((.*?), '([^']*)'\)", r"\1.\2", p)
    p = re.sub(r"\._modules\['([^']*)'\]", r".\1", p)
    p = re.sub(r"\[(\d+)\]", r".\1", p)
    p = re.sub(r"\['([^']*)'\]", r".\1", p)
    return p.strip(".")


def fetch_attr(gm: torch.nn.Module, target: str) -> Any:
    """The object a ``get_attr`` target (``"layer1.0.weight"``) names."""
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def target_name(node: torch.fx.Node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


class FxGraphWalker:
    """Base of a frontend that lowers a torch.fx graph node by node (see the module doc).

    A subclass implements ``call_function`` (and ``call_module``/``call_method`` where its
    graphs have them) and ``output``; each handler takes ``(node, env)`` and returns the node's
    value.  ``env`` maps fx nodes to their values."""

    origin = "fx"
    #: Exceptions a handler may raise that mean "unsupported" too, reported with their message.
    reported_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.unsupported: list[tuple[str, str | None]] = []
        self._any_failed = False

    # -- where a node comes from ---------------------------------------------------------------
    def provenance(self, node: torch.fx.Node) -> Provenance:
        return Provenance(origin=self.origin, module_path=self.module_path(node),
                          source=source_of(node.meta.get("stack_trace")))

    @staticmethod
    def module_path(node: torch.fx.Node) -> str:
        """The nn.Module path of a node (``"layer1.0.conv1"``), or ``""``."""
        if node.op == "call_module":
            return str(node.target)
        stack = node.meta.get("nn_module_stack")
        if stack:
            last = list(stack.values())[-1]
            raw = last[0] if isinstance(last, tuple) else str(last)
            if raw and not raw.startswith("_empty_nn_module_stack"):
                return clean_module_path(raw)
        return ""

    def location(self, node: torch.fx.Node) -> str | None:
        """Where a problem with ``node`` is reported."""
        return str(self.provenance(node)) or None

    # -- problems ------------------------------------------------------------------------------
    def report(self, what: str, where: Any) -> None:
        """Record one unsupported construct (``where``: a location or a Provenance), once."""
        loc = str(where) if where is not None else None
        entry = (what, loc or None)
        if entry not in self.unsupported:
            self.unsupported.append(entry)

    def raise_unsupported(self, hint: str) -> None:
        """Raise one :class:`UnsupportedOpError` listing every recorded problem, if any."""
        if self.unsupported:
            raise UnsupportedOpError(self.unsupported, hint=hint)

    def failed(self, node: torch.fx.Node) -> Any:
        """The stand-in value of a node that could not be lowered; by default :data:`FAILED`,
        and the nodes that use it are skipped without a new report."""
        self._any_failed = True
        return FAILED

    # -- the walk ------------------------------------------------------------------------------
    def walk(self, gm: torch.fx.GraphModule, env: dict[torch.fx.Node, Any]) -> Any:
        """Lower the nodes of ``gm`` (placeholders already bound in ``env``); returns what the
        ``output`` handler returns."""
        for node in gm.graph.nodes:
            op = node.op
            if op == "placeholder":
                if node not in env:
                    raise ConversionError(f"unbound placeholder {node.name!r}")
                continue
            if op == "output":
                return self.output(node, env)
            if self._any_failed and any(env.get(a) is FAILED for a in node.all_input_nodes):
                env[node] = FAILED
                continue
            try:
                if op == "call_function":
                    env[node] = self.call_function(node, env)
                elif op == "get_attr":
                    env[node] = self.get_attr(node, fetch_attr(gm, node.target))
                elif op == "call_module":
                    env[node] = self.call_module(node, env)
                elif op == "call_method":
                    env[node] = self.call_method(node, env)
                else:
                    raise ConversionError(f"unknown FX node kind {op!r}", location=self.location(node))
            except Unsupported as u:
                self.report(u.what, self.location(node))
                env[node] = self.failed(node)
            except SchemaMismatchError as e:
                self.report(e.raw_message, self.location(node))
                env[node] = self.failed(node)
            except self.reported_errors as e:
                self.report(f"{op} {target_name(node)} ({e})", self.location(node))
                env[node] = self.failed(node)
        return None

    def get_attr(self, node: torch.fx.Node, obj: Any) -> Any:
        """The value of a ``get_attr`` node whose attribute is ``obj``."""
        return obj

    def call_function(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        raise Unsupported(f"fx {node.op} node {node.target}")

    def call_module(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        raise Unsupported(f"fx {node.op} node {node.target}")

    def call_method(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        raise Unsupported(f"fx {node.op} node {node.target}")

    def output(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        raise NotImplementedError


__all__ = ["FxGraphWalker", "Unsupported", "FAILED", "source_of", "clean_module_path", "fetch_attr",
           "target_name"]
