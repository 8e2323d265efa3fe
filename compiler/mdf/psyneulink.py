"""PsyNeuLink's function spellings, rewritten to plain MDF when a file is read.

PsyNeuLink's MDF exports name functions that are not in the MDF standard (its stateful
integrators) or pass arguments the standard functions do not take (its ``linear`` and
``logistic`` have ``scale``/``offset``/``x_0``).  modeci_mdf refuses those files; here each is
rewritten, once, into what MDF can say, computing what PsyNeuLink 0.21 computes:

* ``linear`` with ``scale``/``offset``: ``scale * (variable0 * slope + intercept) + offset``;
* ``logistic`` with ``x_0``/``scale``: ``scale * 1/(1 + exp(-gain*(variable0 + bias - x_0))) + offset``;
* ``simpleintegrator``: a stateful parameter ``previous + variable0 * rate + noise + offset``;
* ``adaptiveintegrator``: ``(1 - rate) * previous + rate * variable0 + noise + offset``;
* ``fitzhughnagumointegrator``: PsyNeuLink's RK4 step of ``v`` and ``w`` (each with the other
  held at its previous value, as PsyNeuLink does) and the time, as stateful parameters; the
  function's value is ``[v, w, t]``.

A stateful function becomes parameters of its node named after it (``<function id>`` holds
the value, ``<function id>__<part>`` the intermediate values), so expressions and output ports
that name the function read the parameter.  The rewrite is applied to a copy
(:func:`psyneulink_form`) when a model is lowered (and so by ``validate``'s lowering check;
PsyNeuLink's files say MDF v0.1, whose structural check allows an application's own
function names): the loaded model keeps what the file
says, so a save writes it back unchanged; names the op registry knows are left alone.  Noise arguments other than 0 are refused (PsyNeuLink draws them).
"""

from __future__ import annotations

from typing import Any

from torchmdf.errors import ValidationError

__all__ = ["PSYNEULINK_FUNCTIONS", "psyneulink_form", "rewrite_psyneulink_functions"]

#: PsyNeuLink function name -> the arguments its rewrite reads.
PSYNEULINK_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "simpleintegrator": ("variable0", "previous_value", "rate", "noise", "offset"),
    "adaptiveintegrator": ("variable0", "previous_value", "rate", "noise", "offset"),
    "fitzhughnagumointegrator": ("variable0", "initial_v", "initial_w", "t_0", "time_step_size", "a_v", "b_v",
                                 "c_v", "d_v", "e_v", "f_v", "threshold", "time_constant_v", "mode", "a_w",
                                 "b_w", "c_w", "uncorrelated_activity", "time_constant_w"),
}
_LINEAR = "scale * (variable0 * slope + intercept) + offset"
_LOGISTIC = "scale * (1 / (1 + exp(-gain * (variable0 + bias - x_0)))) + offset"
_DEFAULTS = {"scale": 1.0, "offset": 0.0, "x_0": 0.0, "slope": 1.0, "intercept": 0.0, "gain": 1.0, "bias": 0.0}


def _text(v: Any, where: str, name: str) -> str:
    """An argument value as expression text."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str, list)):
        raise ValidationError(f"argument {name!r} of a PsyNeuLink function is {type(v).__name__}, "
                              "expected a number, an array or an expression", location=where)
    return f"({v})" if isinstance(v, str) else repr(v)


def _is_zero(v: Any) -> bool:
    if isinstance(v, list):
        return all(_is_zero(x) for x in v)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0


def _stateful(node: Any, f: Any, args: dict, where: str) -> None:
    from .model import Parameter, to_value  # values as a file read gives them: a save writes them alike

    name = f.function
    args = {k: v.tolist() if hasattr(v, "tolist") and not isinstance(v, (int, float)) else v
            for k, v in args.items()}  # arrays are read as tensors
    missing = [a for a in PSYNEULINK_FUNCTIONS[name] if a not in args]
    if missing:
        raise ValidationError(f"PsyNeuLink's {name} needs the argument(s) {', '.join(map(repr, missing))}",
                              location=where)
    checked = ["noise"] + (["uncorrelated_activity"] if name == "fitzhughnagumointegrator" and args.get("mode") != 1
                           else [])
    for k in checked:
        if k in args and not _is_zero(args[k]):
            raise ValidationError(f"PsyNeuLink's {name} with {k}={args[k]!r}: only 0 is supported "
                                  "(PsyNeuLink draws noise)", location=where)
    a = {k: _text(args[k], where, k) for k in PSYNEULINK_FUNCTIONS[name]}
    fid = f.id
    taken = set(node.names())
    params: list[Parameter] = []
    if name == "simpleintegrator":
        params.append(Parameter(fid, value=f"{fid} + {a['variable0']} * {a['rate']} + {a['noise']} + {a['offset']}",
                                default_initial_value=to_value(args["previous_value"])))
    elif name == "adaptiveintegrator":
        params.append(Parameter(fid, value=f"(1 - {a['rate']}) * {fid} + {a['rate']} * {a['variable0']} + "
                                f"{a['noise']} + {a['offset']}", default_initial_value=to_value(args["previous_value"])))
    else:  # FitzHugh-Nagumo, PsyNeuLink's RK4 (integratorfunctions.py: dv_dt reads previous_w, dw_dt previous_v)
        V, W, T = f"{fid}__v", f"{fid}__w", f"{fid}__t"
        h = a["time_step_size"]

        def dv(v: str) -> str:
            return (f"({a['a_v']} * ({v}) ** 3 + (1 + {a['threshold']}) * {a['b_v']} * ({v}) ** 2 + "
                    f"(-{a['threshold']}) * {a['c_v']} * ({v}) + {a['d_v']} + {a['e_v']} * {W} + "
                    f"{a['f_v']} * {a['variable0']}) / {a['time_constant_v']}")

        def dw(w: str) -> str:
            return (f"({a['mode']} * {a['a_w']} * {V} + {a['b_w']} * ({w}) + {a['c_w']} + "
                    f"(1 - {a['mode']}) * {a['uncorrelated_activity']}) / {a['time_constant_w']}")

        for x, d in (("v", dv), ("w", dw)):
            X = f"{fid}__{x}"
            k = [f"{fid}__k{i}{x}" for i in range(1, 5)]
            params += [Parameter(k[0], value=d(X)),
                       Parameter(k[1], value=d(f"{X} + 0.5 * {h} * {k[0]}")),
                       Parameter(k[2], value=d(f"{X} + 0.5 * {h} * {k[1]}")),
                       Parameter(k[3], value=d(f"{X} + {h} * {k[2]}"))]
        # all four slopes of both read the previous v and w; then both are updated
        k = {x: [f"{fid}__k{i}{x}" for i in range(1, 5)] for x in "vw"}
        for X, x, init in ((V, "v", "initial_v"), (W, "w", "initial_w")):
            params.append(Parameter(X, value=f"{X} + ({h} / 6) * ({k[x][0]} + 2 * ({k[x][1]} + {k[x][2]}) + "
                                    f"{k[x][3]})", default_initial_value=to_value([args[init]])))
        params.append(Parameter(T, value=f"{T} + {h}", default_initial_value=to_value([args["t_0"]])))
        params.append(Parameter(fid, value=f"[{V}, {W}, {T}]"))
    clash = sorted({p.id for p in params if p.id != fid} & taken)
    if clash:
        raise ValidationError(f"cannot rewrite PsyNeuLink's {name}: the node already has {', '.join(clash)}",
                              location=where)
    node.functions = [g for g in node.functions if g is not f]
    node.parameters = list(node.parameters) + params


def _nodes(graph: Any):
    from .model import Graph

    for n in graph.nodes:
        if isinstance(n, Graph):
            yield from _nodes(n)
        else:
            yield n


def _rewritten(name: Any, f: Any, args: dict) -> str | None:
    """Which rewrite a function needs: ``"standard"`` (linear/logistic with PsyNeuLink's extra
    arguments), ``"stateful"`` (an integrator the registry does not know) or None."""
    from .functions import registered_op

    if name in ("linear", "logistic") and f.value is None and \
            set(args) & ({"scale", "offset"} if name == "linear" else {"scale", "x_0"}):
        return "standard"
    if isinstance(name, str) and name in PSYNEULINK_FUNCTIONS and registered_op(name) is None:
        return "stateful"
    return None


def psyneulink_form(model: Any) -> Any:
    """``model`` itself, or, where it uses PsyNeuLink's spellings, a rewritten copy: what
    lowering reads.  The loaded model keeps what the file says, so a save writes
    the file back as it was."""
    from torchmdf.mdf import Model

    if not isinstance(model, Model) or not any(
            _rewritten(f.function, f, f.args if isinstance(f.args, dict) else {}) is not None
            for g in model.graphs for node in _nodes(g) for f in node.functions):
        return model
    import copy

    c = copy.deepcopy(model)
    rewrite_psyneulink_functions(c)
    return c


def rewrite_psyneulink_functions(model: Any) -> bool:
    """Rewrite PsyNeuLink's functions in ``model`` (in place) to plain MDF; True if any was."""
    changed = False
    for g in model.graphs:
        for node in list(_nodes(g)):
            for f in list(node.functions):
                name = f.function
                args = f.args if isinstance(f.args, dict) else {}
                where = f"model '{model.id}' > node '{node.id}' > function '{f.id}'"
                if model.location:
                    where = f"{model.location} > {where}"
                kind = _rewritten(name, f, args)
                if kind == "standard":
                    f.function = None
                    f.value = _LINEAR if name == "linear" else _LOGISTIC
                    f.args = {**{k: v for k, v in _DEFAULTS.items()
                                 if k in (_LINEAR if name == "linear" else _LOGISTIC)}, **args}
                    changed = True
                elif kind == "stateful":
                    _stateful(node, f, args, where)
                    changed = True
    return changed
