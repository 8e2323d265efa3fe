"""The ``torchmdf`` command line.

    torchmdf demo [-o model.json]          convert the built-in MLP to MDF, reload, run, compare
    torchmdf example [NAME [--out DIR] ...] list the examples, or run one (torchmdf.examples.NAME)
    torchmdf ir FILE                        print the IR of an MDF file
    torchmdf validate FILE                  list every problem of an MDF file
    torchmdf run FILE [--steps N --dt DT]   run an MDF model through the FX backend / simulator
    torchmdf simulate FILE --steps N --dt X [--param node.p=v ...] [--csv OUT] [--plot OUT.png]
                                            trajectories of every output port
    torchmdf verify SRC                     run a model through every path, table of differences,
                                            the first diverging IR node on a mismatch
    torchmdf convert SRC -o OUT [--target NAME] [--weights inline|external|auto]
                                            any frontend -> any backend (by suffix): MDF json/yaml,
                                            ONNX (.onnx), IR text (.ir); SRC may also be a saved
                                            torch.export program (.pt2) or module.py:factory
    torchmdf picture FILE -o OUT.png        draw the MDF graph (graphviz); also named `graph`
    torchmdf passes                         list the passes and their options
    torchmdf targets                        list the registered frontends and backends

Errors are printed as one located message (exit status 2), never as a traceback; a bad
argument is one line too.  ``--debug`` anywhere on the line shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from . import __version__
from .errors import TorchMDFError


def _pass_list(text: str | None) -> list[str] | None:
    """``--passes a,b{opt=1}``: that list; empty or absent: the default pipeline."""
    from torchmdf.passes import split_pass_list

    return (split_pass_list(text) or None) if text else None


def _print_timings(inst) -> None:
    print("\npass timings:")
    print(inst.report())


def cmd_demo(args: argparse.Namespace) -> int:
    import torch

    import torchmdf
    from torchmdf.examples import demo_model
    from torchmdf.passes import Instrumentation

    model, inputs = demo_model()
    print(f"model: {type(model).__name__} from torchmdf.examples; input shape {tuple(inputs[0].shape)}")
    inst = Instrumentation()
    g = torchmdf.lower(model, inputs)
    from torchmdf.passes import run_passes

    g, inst = run_passes(g, _pass_list(args.passes), instrument=inst)
    print("\nIR after the default pipeline:")
    print(g)
    _print_timings(inst)
    with torch.no_grad():
        expected = model(*inputs)
    m = torchmdf.emit(g, target="mdf")
    out = args.output or "demo_mlp.json"
    torchmdf.mdf.save(m, out)
    m2 = torchmdf.mdf.load(out)
    gm = torchmdf.compile(m2, target="fx")
    with torch.no_grad():
        got = gm(*inputs)
    diff = (got - expected).abs().max().item()
    n_nodes = sum(len(gr.nodes) for gr in m2.graphs)
    print(f"\nwrote {out}: {n_nodes} MDF nodes; reloaded and compiled to FX:")
    print(f"max |torch - mdf->fx| = {diff:.3g}")
    if args.picture:
        from torchmdf.mdf.picture import draw

        print(f"picture: {draw(m2, args.picture)}")
    return 0 if diff < 1e-5 else 1


def cmd_ir(args: argparse.Namespace) -> int:
    import torchmdf

    g = torchmdf.lower(args.file)
    if args.passes is not None:
        from torchmdf.passes import run_passes

        g, inst = run_passes(g, _pass_list(args.passes))
    print(g)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    import torchmdf.mdf as mdf

    try:
        m = mdf.load(args.file)
    except TorchMDFError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    problems = mdf.validate(m)
    for p in problems:
        print(f"- {p}")
    print(f"{args.file}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
    return 0 if not problems else 1


def _jsonable(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def cmd_run(args: argparse.Namespace) -> int:
    import torchmdf

    if args.steps and args.steps > 1:
        out = torchmdf.simulate(args.file, steps=args.steps, dt=args.dt)
        out = {k: v[-1] for k, v in out.items()}
    else:
        gm = torchmdf.compile(args.file, target="fx")
        out = gm()
    print(json.dumps(_jsonable(out), indent=2))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Any registered frontend (by FILE's suffix) to any backend that writes files (by OUT's
    suffix, or ``--target``)."""
    import torchmdf
    from torchmdf.backends import backend_for_path, get_backend

    backend = get_backend(args.target) if args.target else backend_for_path(args.output)
    if backend.write is None:
        raise TorchMDFError(f"target {backend.name!r} does not write files", hint="choose another --target")
    result = torchmdf.compile(args.file, target=backend.name, passes=_pass_list(args.passes),
                              method=_source_method(args.file))
    options = {"weights": args.weights} if backend.name == "mdf" else {}
    backend.write(result, args.output, **options)
    print(f"wrote {args.output}")
    return 0


def _source_method(spec: str) -> str | None:
    """``module.py:factory`` is read by the ``factory`` frontend; files by their suffix."""
    from .cli_inputs import is_factory_spec

    return "factory" if is_factory_spec(spec) else None


def cmd_example(args: argparse.Namespace) -> int:
    """List the examples, or run one with the rest of the line as its arguments."""
    from torchmdf.examples import EXAMPLES, run_example

    if not args.name:
        print("examples (torchmdf example NAME [--out DIR]; python -m torchmdf.examples.NAME):")
        for name, what in EXAMPLES.items():
            print(f"  {name:<22} {what}")
        return 0
    return run_example(args.name, args.args)


def _set_param(model: Any, assignment: str) -> None:
    """``node.param=value``: the value (a JSON number or list, else an MDF expression) becomes
    that parameter's ``value`` in the loaded model."""
    target, sep, text = assignment.partition("=")
    node_id, dot, param_id = target.strip().rpartition(".")
    if not sep or not dot or not node_id or not param_id or not text.strip():
        raise TorchMDFError(f"--param {assignment!r}: expected node.parameter=value", hint="e.g. --param A.slope=2.5")
    where = f"--param {assignment}"
    nodes = {n.id: n for g in model.graphs for n in g.nodes if hasattr(n, "parameters")}
    node = nodes.get(node_id)
    if node is None:
        raise TorchMDFError(f"no node {node_id!r}", location=where, hint=f"nodes: {', '.join(nodes) or '(none)'}")
    param = node.get_parameter(param_id)
    if param is None:
        raise TorchMDFError(f"node {node_id!r} has no parameter {param_id!r}", location=where,
                            hint=f"its parameters: {', '.join(p.id for p in node.parameters) or '(none)'}")
    if param.function is not None:
        raise TorchMDFError(f"parameter {param_id!r} of node {node_id!r} is a function call, not a value",
                            location=where)
    try:
        value = json.loads(text)
    except ValueError:
        value = text.strip()  # an expression, checked when the model is lowered
    if isinstance(value, list):
        import torch

        value = torch.tensor(value, dtype=torch.float64)
    param.value = value


def _sweep_params(model: Any, assignments: Sequence[str]) -> dict[str, Any]:
    """``--param node.p=v``: a number or JSON list for a parameter with a literal value goes to
    ``simulate(params=...)`` (a list one dimension longer than the parameter is a batch: one
    trajectory column per value); anything else (an expression) is set in the model."""
    from torchmdf.frontends.mdf import program, settable_parameters

    params: dict[str, Any] = {}
    settable: set[str] | None = None
    for assignment in assignments:
        target, sep, text = assignment.partition("=")
        try:
            value = json.loads(text) if sep else None
        except ValueError:
            value = None
        if isinstance(value, (int, float, list)) and not isinstance(value, bool):
            if settable is None:
                settable = set(settable_parameters(program(model)))
            if target.strip() in settable:
                params[target.strip()] = value
                continue
        _set_param(model, assignment)
    return params


def _cuda_device(device: str | None) -> Any:
    import contextlib

    import torch

    if device is None or device == "cpu":
        return contextlib.nullcontext()
    if not device.startswith("cuda"):
        raise TorchMDFError(f"--device {device!r}: use cpu or cuda")
    if not torch.cuda.is_available():
        raise TorchMDFError(f"--device {device}: CUDA is not available here", hint="drop --device, or install "
                            "a CUDA build of torch on a machine with a GPU")
    return torch.device(device)


def _with_progress(fn: Any, steps: int) -> Any:
    """``fn(progress)``; on a long run at a terminal, ``progress`` drives a rich progress bar
    (``simulate`` calls it after each step or compiled chunk), else it is None."""
    if steps < 10_000 or not sys.stderr.isatty():
        return fn(None)
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
    except ImportError:
        return fn(None)
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True, console=None) as bar:
        task = bar.add_task("simulate", total=steps)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return fn(progress)


def _write_csv(traj: dict[str, Any], steps: int, dt: float, path: str) -> None:
    import csv

    columns: list[tuple[str, Any]] = []
    for key, t in traj.items():
        if isinstance(t, list):
            print(f"  {key}: its shape changes between steps; left out of the CSV", file=sys.stderr)
            continue
        flat = t.reshape(steps, -1)
        if flat.shape[1] == 1:
            columns.append((key, flat[:, 0]))
        else:
            columns.extend((f"{key}[{i}]", flat[:, i]) for i in range(flat.shape[1]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["step", "t"] + [name for name, _ in columns])
        for i in range(steps):
            w.writerow([i, repr(round(i * dt, 12))] + [repr(float(c[i])) for _, c in columns])


def _plot(traj: dict[str, Any], steps: int, dt: float, path: str, title: str) -> None:
    try:
        import matplotlib
    except ImportError as e:
        raise TorchMDFError("--plot needs matplotlib", hint="pip install 'torchmdf[plot]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    t = torch.arange(steps, dtype=torch.float64) * dt
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, v in traj.items():
        if isinstance(v, list):
            continue
        flat = v.reshape(steps, -1).double()
        for i in range(min(flat.shape[1], 8)):
            ax.plot(t.numpy(), flat[:, i].numpy(), label=key if flat.shape[1] == 1 else f"{key}[{i}]")
    ax.set_xlabel("t")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def cmd_simulate(args: argparse.Namespace) -> int:
    """``steps`` evaluations of an MDF model (``torchmdf.simulate``), with parameters set first."""
    import torchmdf
    import torchmdf.mdf as mdf

    if args.steps < 1:
        raise TorchMDFError(f"--steps {args.steps}: must be at least 1")
    model = mdf.load(args.file)
    params = _sweep_params(model, args.param or ())
    device = None if args.device in (None, "cpu") else _cuda_device(args.device)
    traj = _with_progress(lambda progress: torchmdf.simulate(model, steps=args.steps, dt=args.dt, params=params,
                                                             device=device, progress=progress), args.steps)
    traj = {k: ([x.cpu() for x in v] if isinstance(v, list) else v.cpu()) for k, v in traj.items()}
    if args.csv:
        _write_csv(traj, args.steps, args.dt, args.csv)
        print(f"wrote {args.csv}")
    if args.plot:
        _plot(traj, args.steps, args.dt, args.plot, f"{model.id}: {args.steps} steps of dt={args.dt}")
        print(f"wrote {args.plot}")
    print(f"{args.steps} steps of dt={args.dt}; final values:")
    print(json.dumps(_jsonable({k: v[-1] for k, v in traj.items()}), indent=2))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Every path on the same inputs; differences; the first diverging IR node on a mismatch."""
    from . import verify
    from .cli_inputs import is_factory_spec, load_factory, load_pt2, pt2_example_inputs

    tol = {"atol": args.atol, "rtol": args.rtol}
    if is_factory_spec(args.src):
        model, inputs = load_factory(args.src)
        result = verify.verify_module(model.eval(), inputs, **tol)
    elif args.src.lower().endswith(".pt2"):
        ep = load_pt2(args.src)
        inputs = pt2_example_inputs(ep)
        if inputs is None:
            raise TorchMDFError("the program was saved without example inputs", location=args.src,
                                hint="save it with torch.export.save from torch >= 2.5, or use module.py:factory")
        result = verify.verify_module(ep, inputs, **tol)
    else:
        result = verify.verify_mdf_file(args.src, **tol)
    print(f"{args.src}: every path on the same inputs, against {result.reference} "
          f"(ok: |a-b| <= {args.atol:g} + {args.rtol:g}*|b|)")
    print(result.table())
    if result.divergence:
        print(result.divergence)
    print("verified: all paths agree" if result.ok else "MISMATCH" if result.differs else "FAILED: a path broke")
    return 0 if result.ok else 1


def cmd_picture(args: argparse.Namespace) -> int:
    import torchmdf.mdf as mdf
    from torchmdf.mdf.picture import draw

    path = draw(mdf.load(args.file), args.output, level=args.level)
    print(f"wrote {path}")
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    from torchmdf.passes import DEFAULT_PIPELINE, available_passes, pass_options

    for p in available_passes():
        opts = ", ".join(f"{k}={v!r}" for k, v in pass_options(p).items())
        print(f"{p}{'{' + opts + '}' if opts else ''}{'  (default pipeline)' if p in DEFAULT_PIPELINE else ''}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    """The registered frontends (what goes in) and backends (what comes out)."""
    from torchmdf.backends import backends
    from torchmdf.frontends import frontends

    print("frontends (compile(x, method=NAME); files by suffix):")
    for fe in frontends().values():
        print(f"  {fe.name:<10} {' '.join(fe.suffixes):<18} {fe.doc}")
    print("backends (compile(x, target=NAME); convert -o by suffix or --target):")
    for be in backends().values():
        print(f"  {be.name:<10} {' '.join(be.suffixes):<18} {be.doc}")
    return 0


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line on stderr (and exit status 2), as every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="torchmdf", description="Compile between PyTorch and MDF (ModECI Model Description "
                "Format) through one SSA IR.",
                formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=30))
    p.add_argument("--version", action="version", version=f"torchmdf {__version__}")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    d = sub.add_parser("demo", help="the built-in MLP to MDF and back, IR, pass timings")
    d.add_argument("-o", "--output", help="where to write the MDF file (default demo_mlp.json)")
    d.add_argument("--picture", help="also draw the MDF graph to this file (.png/.svg)")
    d.add_argument("--passes", help="comma-separated pass list instead of the default pipeline")
    d.set_defaults(fn=cmd_demo)
    e = sub.add_parser("example", help="list the examples, or run one: example NAME [--out DIR]")
    e.add_argument("name", nargs="?", help="the example (none: list them)")
    e.add_argument("args", nargs=argparse.REMAINDER, help="the example's own arguments (--out DIR, ...)")
    e.set_defaults(fn=cmd_example)
    i = sub.add_parser("ir", help="print the IR of an MDF file")
    i.add_argument("file")
    i.add_argument("--passes", nargs="?", const="", default=None,
                   help="run passes first (no value: the default pipeline)")
    i.set_defaults(fn=cmd_ir)
    v = sub.add_parser("validate", help="list every problem of an MDF file")
    v.add_argument("file")
    v.set_defaults(fn=cmd_validate)
    r = sub.add_parser("run", help="run an MDF model, print its outputs as JSON")
    r.add_argument("file")
    r.add_argument("--steps", type=int, default=1)
    r.add_argument("--dt", type=float, default=0.01)
    r.set_defaults(fn=cmd_run)
    s = sub.add_parser("simulate", help="trajectories of an MDF model (CSV, plot)")
    s.add_argument("file")
    s.add_argument("--steps", type=int, required=True)
    s.add_argument("--dt", type=float, required=True)
    s.add_argument("--param", action="append", metavar="NODE.P=V",
                   help="set parameter P of node NODE to V (a number, JSON list or expression); a list for "
                   "a scalar parameter is a batch (one trajectory column per value); repeatable")
    s.add_argument("--csv", help="write the trajectories to this CSV file")
    s.add_argument("--plot", help="plot the trajectories to this picture (needs matplotlib)")
    s.add_argument("--device", help="cpu (default) or cuda")
    s.set_defaults(fn=cmd_simulate)
    ve = sub.add_parser("verify", help="run a model through every path, compare")
    ve.add_argument("src", help="an MDF file, a .pt2 torch.export program, or module.py:factory")
    ve.add_argument("--atol", type=float, default=1e-5)
    ve.add_argument("--rtol", type=float, default=1e-4)
    ve.set_defaults(fn=cmd_verify)
    c = sub.add_parser("convert", help="between formats: MDF, ONNX, IR, .pt2, module.py:f")
    c.add_argument("file", help="an MDF/ONNX/... file, a .pt2 program, or module.py:factory")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--passes", help="comma-separated pass list; options as name{option=value}")
    c.add_argument("--target", help="the backend to use (default: by OUT's suffix; see `torchmdf targets`)")
    c.add_argument("--weights", choices=["auto", "inline", "external"], default="auto",
                   help="tensors in the file (inline), in OUT's .safetensors sidecar (external), or "
                        "large ones in the sidecar (auto, the default); inline makes a file modeci_mdf runs")
    c.set_defaults(fn=cmd_convert)
    pic = sub.add_parser("picture", aliases=["graph"], help="draw an MDF graph (.png, .svg, .pdf)")
    pic.add_argument("file")
    pic.add_argument("-o", "--output", required=True)
    pic.add_argument("--level", type=int, default=2, help="1: nodes only, 2: with ports, 3: with parameters")
    pic.set_defaults(fn=cmd_picture)
    ps = sub.add_parser("passes", help="list the built-in passes")
    ps.set_defaults(fn=cmd_passes)
    t = sub.add_parser("targets", help="list the frontends and backends")
    t.set_defaults(fn=cmd_targets)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from . import cli_inputs  # noqa: F401 - registers the .pt2 and module.py:factory frontends

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    if not getattr(args, "fn", None):
        parser.print_help()
        return 0
    try:
        return args.fn(args)
    except TorchMDFError as e:
        if args.debug:
            raise
        print(f"torchmdf: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        if args.debug:
            raise
        print(f"torchmdf: error: {e.filename}: no such file", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a bug of torchmdf: one line, the traceback with --debug
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        print(f"torchmdf: internal error: {type(e).__name__}: {msg}\n  (run again with --debug for the "
              "traceback, and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
