"""Drop-ins for ``modeci_mdf.utils``, the reference's conveniences over the object model:
:func:`load_mdf` (and its JSON/YAML forms), :func:`simple_connect`, :func:`print_summary`."""

from __future__ import annotations

from typing import Any

from .io import load

__all__ = ["load_mdf", "load_mdf_json", "load_mdf_yaml", "simple_connect", "print_summary"]


def load_mdf(filename: Any) -> Any:
    """A :class:`torchmdf.mdf.Model` from a ``.json``/``.yaml``/``.yml`` file (:func:`torchmdf.mdf.load`)."""
    return load(filename)


load_mdf_json = load_mdf
load_mdf_yaml = load_mdf


def simple_connect(pre_node: Any, post_node: Any, graph: Any) -> Any:
    """An edge ``edge_<pre>_<post>`` from ``pre_node``'s first output port to ``post_node``'s
    first input port, appended to ``graph`` and returned (as modeci_mdf makes it)."""
    from torchmdf.errors import ValidationError

    from .model import Edge

    for node, ports, what in ((pre_node, pre_node.output_ports, "output"), (post_node, post_node.input_ports, "input")):
        if not ports:
            raise ValidationError(f"simple_connect: node {node.id!r} has no {what} port",
                                  location=f"graph '{graph.id}'")
    e = Edge(id=f"edge_{pre_node.id}_{post_node.id}", sender=pre_node.id, sender_port=pre_node.output_ports[0].id,
             receiver=post_node.id, receiver_port=post_node.input_ports[0].id)
    graph.edges.append(e)
    return e


def print_summary(graph: Any) -> None:
    """Print the graph's size, then each node and edge (modeci_mdf's ``print_summary``)."""
    print(f"Graph {graph.id} with {len(graph.nodes)} nodes and {len(graph.edges)} edges\n")
    for node in graph.nodes:
        print(node)
    for edge in graph.edges:
        print(edge)
