"""The ``torchmdf`` command line.

    torchmdf demo [-o model.json]          convert the built-in MLP to MDF, reload, run, compare
    torchmdf ir FILE                        print the IR of an MDF file
    torchmdf validate FILE                  list every problem of an MDF file
    torchmdf run FILE [--steps N --dt DT]   run an MDF model through the FX backend / simulator
    torchmdf convert FILE -o OUT [--target NAME] [--weights inline|external|auto]
                                            any frontend -> any backend (by suffix): MDF json/yaml,
                                            ONNX (.onnx), IR text (.ir)
    torchmdf picture FILE -o OUT.png        draw the MDF graph (graphviz)
    torchmdf passes                         list the passes and their options
    torchmdf targets                        list the registered frontends and backends

Errors are printed as one located message (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

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
    result = torchmdf.compile(args.file, target=backend.name, passes=_pass_list(args.passes))
    options = {"weights": args.weights} if backend.name == "mdf" else {}
    backend.write(result, args.output, **options)
    print(f"wrote {args.output}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchmdf", description="Compile between PyTorch and MDF (ModECI "
                                "Model Description Format) through one SSA IR.")
    p.add_argument("--version", action="version", version=f"torchmdf {__version__}")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="convert the built-in MLP to MDF and back, show IR and pass timings")
    d.add_argument("-o", "--output", help="where to write the MDF file (default demo_mlp.json)")
    d.add_argument("--picture", help="also draw the MDF graph to this file (.png/.svg)")
    d.add_argument("--passes", help="comma-separated pass list instead of the default pipeline")
    d.set_defaults(fn=cmd_demo)
    i = sub.add_parser("ir", help="print the IR of an MDF file")
    i.add_argument("file")
    i.add_argument("--passes", nargs="?", const="", default=None,
                   help="run passes first (no value: the default pipeline)")
    i.set_defaults(fn=cmd_ir)
    v = sub.add_parser("validate", help="list every problem of an MDF file")
    v.add_argument("file")
    v.set_defaults(fn=cmd_validate)
    r = sub.add_parser("run", help="run an MDF model and print its outputs as JSON")
    r.add_argument("file")
    r.add_argument("--steps", type=int, default=1)
    r.add_argument("--dt", type=float, default=0.01)
    r.set_defaults(fn=cmd_run)
    c = sub.add_parser("convert", help="convert between formats: MDF (.json/.yaml), ONNX (.onnx), IR text (.ir)")
    c.add_argument("file")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--passes", help="comma-separated pass list; options as name{option=value}")
    c.add_argument("--target", help="the backend to use (default: by OUT's suffix; see `torchmdf targets`)")
    c.add_argument("--weights", choices=["auto", "inline", "external"], default="auto",
                   help="tensors in the file (inline), in OUT's .safetensors sidecar (external), or "
                        "large ones in the sidecar (auto, the default); inline makes a file modeci_mdf runs")
    c.set_defaults(fn=cmd_convert)
    pic = sub.add_parser("picture", help="draw an MDF graph (.png, .svg, .pdf)")
    pic.add_argument("file")
    pic.add_argument("-o", "--output", required=True)
    pic.add_argument("--level", type=int, default=2, help="1: nodes only, 2: with ports, 3: with parameters")
    pic.set_defaults(fn=cmd_picture)
    ps = sub.add_parser("passes", help="list the built-in passes")
    ps.set_defaults(fn=cmd_passes)
    t = sub.add_parser("targets", help="list the registered frontends and backends")
    t.set_defaults(fn=cmd_targets)
    return p


def main(argv: Sequence[str] | None = None) -> int:
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
