"""Turn chosen named parameters into graph inputs before folding, so that they stay named
through lowering and are not folded into constants: ``simulate(params=...)`` sweeps, batches
and differentiates them through one compiled program.

The MDF frontend's program form tags every constant lowered from a parameter's literal
value with ``MDF_PARAM`` (``"node.parameter"``); this pass replaces the tagged constants of
the chosen names by one input per name (tagged the same), in the order the names are given."""

from __future__ import annotations

from torchmdf.ir import Graph, TensorType
from torchmdf.ir.meta_keys import MDF_PARAM, PYSCALAR

from ._infra import Pass, PassResult, register_pass


@register_pass("parameters_to_inputs")
class ParametersToInputs(Pass):
    """``names``: the ``"node.parameter"`` names to make inputs (input ``node.parameter``)."""

    def __init__(self, names: tuple[str, ...] | list[str] = ()):
        self.names = tuple(names)

    def call(self, graph: Graph) -> PassResult:
        chosen = set(self.names)
        tagged: dict[str, list] = {}
        for v in list(graph.parameters.values()):
            name = v.meta.get(MDF_PARAM)
            if name in chosen:
                tagged.setdefault(name, []).append(v)
        for name in self.names:
            consts = tagged.get(name)
            if not consts:
                continue
            inp = graph.add_input(name.replace(".", "_"), TensorType.of(consts[0].tensor))
            inp.meta[MDF_PARAM] = name
            if consts[0].meta.get(PYSCALAR):
                inp.meta[PYSCALAR] = True
            for c in consts:
                c.replace_all_uses_with(inp)
                graph.remove_parameter(c)
        return PassResult(graph, bool(tagged))
