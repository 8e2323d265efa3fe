"""The ``meta`` keys one part of torchmdf writes and another reads: each named once, with its type.

``Value.meta``, ``Node.meta`` and ``Graph.meta`` hold analysis results and facts a frontend
leaves for later passes and backends.  A key written in one module and read in another is a
contract, so it is spelled through a constant here (``v.meta[PYSCALAR]``), never as a bare
string.  Keys used inside a single module stay private to it.
"""

from __future__ import annotations

# -- Value.meta ------------------------------------------------------------------------------

#: bool.  The value stands for a Python number of the MDF file (a literal, a scalar port default or
#: arithmetic on those), not a tensor: it takes part in dtype promotion as a weak scalar, the way
#: modeci_mdf evaluates it.  Written and read by the MDF frontend's expression and program lowering.
PYSCALAR = "pyscalar"

#: torch.Tensor.  A graph input's value in the MDF file (its port's ``default_value``).  Written by
#: the MDF frontend; read by the FX backend (``input_defaults``), the MDF backend and simulation.
DEFAULT = "default"

#: str.  ``"node.port"`` of the MDF input port a graph input stands for.  Written by the MDF
#: frontend; read by simulation (inputs by port) and ``mdf_to_pytorch``.
MDF_PORT = "mdf_port"

#: bool.  False for a buffer (or state variable) that is not in the original module's
#: ``state_dict`` (a non-persistent buffer).  Written by the export frontend; read by the FX backend.
PERSISTENT = "persistent"

#: int.  The most iterations one run of an ``onnx::Loop`` node may make (a located error beyond).
#: Written by the MDF frontend (``LIMITS.max_loop_iterations``) on loops read from a file; read by
#: the Loop's run semantics.
MAX_ITERATIONS = "max_iterations"

#: str.  ``"node.parameter"`` of the MDF parameter whose literal value a constant (or, after the
#: ``parameters_to_inputs`` pass, a graph input) stands for.  Written by the MDF frontend in
#: simulate's program form; read by that pass and by simulation (``simulate(params=...)``).
MDF_PARAM = "mdf_param"

#: bool.  The graph input is the simulation's time step ``dt`` (not folded: one compiled program
#: serves every ``dt``).  Written by the MDF frontend's program form; read by simulation.
TIME_STEP = "time_step"

__all__ = ["PYSCALAR", "DEFAULT", "MDF_PORT", "PERSISTENT", "MAX_ITERATIONS", "MDF_PARAM", "TIME_STEP"]
