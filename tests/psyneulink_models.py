"""The PsyNeuLink compositions behind ``tests/fixtures/mdf_corpus/PsyNeuLink/*.json``, restated
minimally from the example scripts of ModECI/MDF's ``examples/PsyNeuLink`` (Apache-2.0), with the
run each script makes.  Only imported where psyneulink is installed (the ``psyneulink`` marker of
``tests/test_psyneulink.py`` and ``tests/make_psyneulink_expected.py``).

``MODELS[name]()`` builds the composition afresh and returns ``(composition, run_kwargs)``;
``run_kwargs`` are the arguments the example script passes to ``Composition.run`` (the scripts
that only build a composition get a small run of our choosing, noted beside it).
"""

from __future__ import annotations

from typing import Any, Callable

import psyneulink as pnl

DT = 0.05          # the SimpleFN scripts' time step (ms)
SIMTIME = 100      # and their simulated time (ms)


def _fhn() -> Any:
    return pnl.FitzHughNagumoIntegrator(initial_v=-1, initial_w=0, d_v=1, time_step_size=DT)


def simple_fn():
    fn = pnl.IntegratorMechanism(name="fn", function=_fhn())
    comp = pnl.Composition(name="comp")
    comp.add_linear_processing_pathway([fn])
    return comp, {"inputs": {fn: 0}, "num_trials": int(SIMTIME / DT)}


def simple_fn_timing():
    fn = pnl.IntegratorMechanism(name="fn", function=_fhn())
    im = pnl.IntegratorMechanism(name="im")
    comp = pnl.Composition(name="comp")
    comp.add_linear_processing_pathway([fn, im])
    comp.scheduler.add_condition_set({fn: pnl.TimeInterval(repeat=0.05, unit="ms"),
                                      im: pnl.TimeInterval(start=80, repeat=1, unit="ms")})
    comp.termination_processing = {pnl.TimeScale.RUN: pnl.Never(),
                                   pnl.TimeScale.TRIAL: pnl.TimeTermination(100, unit="ms")}
    return comp, {"inputs": {fn: 0}, "scheduling_mode": pnl.SchedulingMode.EXACT_TIME}


def simple_fn_conditional():
    fn = pnl.IntegratorMechanism(name="fn", function=_fhn())
    im = pnl.IntegratorMechanism(name="im")
    comp = pnl.Composition(name="comp")
    comp.add_linear_processing_pathway([fn, im])
    comp.scheduler.add_condition_set({
        fn: pnl.Always(),
        im: pnl.All(pnl.EveryNCalls(fn, 1 / DT), pnl.AfterNCalls(fn, 0.8 * SIMTIME / DT))})
    comp.termination_processing = {pnl.TimeScale.RUN: pnl.Never(),
                                   pnl.TimeScale.TRIAL: pnl.AfterNCalls(fn, int(SIMTIME / DT))}
    return comp, {"inputs": {fn: 0}}


def _abc(branching: bool):
    comp = pnl.Composition(name="comp")
    A, B, C = (pnl.TransferMechanism(name=n) for n in "ABC")
    comp.add_linear_processing_pathway([A, B, C])
    mechs = {"A": A, "B": B, "C": C}
    if branching:
        mechs["D"] = D = pnl.TransferMechanism(name="D")
        comp.add_linear_processing_pathway([A, B, D])
    return comp, mechs


def simple_linear_conditional():
    comp, m = _abc(False)
    comp.scheduler.add_condition_set({m["A"]: pnl.AtNCalls(m["A"], 0), m["B"]: pnl.Always(),
                                      m["C"]: pnl.EveryNCalls(m["B"], 5)})
    return comp, {"inputs": {m["A"]: 1}}


def simple_branching_conditional():
    comp, m = _abc(True)
    comp.scheduler.add_condition_set({m["A"]: pnl.AtNCalls(m["A"], 0), m["B"]: pnl.Always(),
                                      m["C"]: pnl.EveryNCalls(m["B"], 5), m["D"]: pnl.EveryNCalls(m["C"], 2)})
    return comp, {"inputs": {m["A"]: 1}}


def _timing_b():
    return pnl.All(pnl.TimeInterval(start=1, repeat=1, unit="ms"),
                   pnl.Not(pnl.TimeInterval(start=6, repeat=7, unit="ms")),
                   pnl.Not(pnl.TimeInterval(start=7, repeat=7, unit="ms")))


def simple_linear_timing():
    comp, m = _abc(False)
    comp.scheduler.add_condition_set({m["A"]: pnl.TimeInterval(repeat=7, unit="ms"), m["B"]: _timing_b(),
                                      m["C"]: pnl.TimeInterval(start=6, repeat=7, unit="ms")})
    return comp, {"inputs": {m["A"]: 1}, "scheduling_mode": pnl.SchedulingMode.EXACT_TIME}


def simple_branching_timing():
    comp, m = _abc(True)
    comp.scheduler.add_condition_set({m["A"]: pnl.TimeInterval(repeat=7, unit="ms"), m["B"]: _timing_b(),
                                      m["C"]: pnl.TimeInterval(start=6, repeat=7, unit="ms"),
                                      m["D"]: pnl.TimeInterval(start=13, repeat=7, unit="ms")})
    return comp, {"inputs": {m["A"]: 1}, "scheduling_mode": pnl.SchedulingMode.EXACT_TIME}


def model_abcd():
    comp = pnl.Composition(name="ABCD")
    A = pnl.TransferMechanism(function=pnl.Linear(slope=2.0, intercept=2.0), name="A")
    B = pnl.TransferMechanism(function=pnl.Logistic, name="B")
    C = pnl.TransferMechanism(function=pnl.Exponential, name="C")
    D = pnl.IntegratorMechanism(function=pnl.SimpleIntegrator(rate=0.05), name="D")
    for m in (A, B, C, D):
        comp.add_node(m)
    comp.add_linear_processing_pathway([A, B, D])
    comp.add_linear_processing_pathway([A, C, D])
    return comp, {"inputs": {A: 0}, "num_trials": 50}


def _nested(scheduled: bool):
    comp = pnl.Composition(name="comp")
    inner = pnl.Composition(name="Inner Composition")
    A = pnl.TransferMechanism(function=pnl.Linear(slope=5.0, intercept=2.0), name="A")
    B = pnl.TransferMechanism(function=pnl.Logistic, name="B")
    if scheduled:
        C = pnl.RecurrentTransferMechanism(name="C")
        D = pnl.IntegratorMechanism(function=pnl.SimpleIntegrator, name="D")
        E, F = pnl.TransferMechanism(name="E"), pnl.TransferMechanism(name="F")
    else:
        C = pnl.TransferMechanism(function=pnl.Exponential, name="C")
        D = None
        E = pnl.TransferMechanism(name="E", function=pnl.Linear(slope=2.0))
        F = pnl.TransferMechanism(name="F", function=pnl.Linear(intercept=2.0))
    for m in (E, F):
        inner.add_node(m)
    for m in (A, B, C, D, inner):
        if m is not None:
            comp.add_node(m)
    comp.add_projection(pnl.MappingProjection(), A, B)
    comp.add_projection(pnl.MappingProjection(), A, C)
    if scheduled:
        comp.add_projection(pnl.MappingProjection(), B, D)
        comp.add_projection(pnl.MappingProjection(), C, D)
    comp.add_projection(pnl.MappingProjection(), C, inner)
    inner.add_projection(pnl.MappingProjection(), E, F)
    if scheduled:
        comp.scheduler.add_condition_set({A: pnl.EveryNPasses(1), B: pnl.EveryNCalls(A, 2),
                                          C: pnl.EveryNCalls(B, 2)})
        comp.termination_processing = {pnl.TimeScale.RUN: pnl.AfterNTrials(1),
                                       pnl.TimeScale.TRIAL: pnl.AfterNCalls(D, 4)}
        # the example script builds this one without running it: one trial with A's input 1
        return comp, {"inputs": {A: 1}}
    return comp, {"inputs": {A: 1}}


def model_with_nested_graph():
    return _nested(False)


def model_nested_comp_with_scheduler():
    return _nested(True)


#: file stem in tests/fixtures/mdf_corpus/PsyNeuLink -> builder
MODELS: dict[str, Callable[[], tuple[Any, dict]]] = {
    "SimpleFN": simple_fn,
    "SimpleFN-timing": simple_fn_timing,
    "SimpleFN-conditional": simple_fn_conditional,
    "SimpleLinear-conditional": simple_linear_conditional,
    "SimpleLinear-timing": simple_linear_timing,
    "SimpleBranching-conditional": simple_branching_conditional,
    "SimpleBranching-timing": simple_branching_timing,
    "model_ABCD": model_abcd,
    "model_with_nested_graph": model_with_nested_graph,
    "model_nested_comp_with_scheduler": model_nested_comp_with_scheduler,
}
