"""Runs the hostile-file corpus (``tests/hostile_corpus.py``), each case in a forked child
with a memory cap, a timeout and an audit hook, and writes one JSON result per case.

Usage: ``python tests/hostile_worker.py ROOT OUT.json [CASE ...]``.  The parent imports
torchmdf and warms it up on a benign file (so lazy imports happen before any case), then
never runs torch code itself: each case is a fork of that state.  In the child:

* ``RLIMIT_AS`` is the child's current size plus ``MEMORY_CAP`` (an allocation beyond it
  fails instead of swapping the machine);
* a ``sys.addaudithook`` hook records every ``open`` that writes anywhere outside the case's
  folder, or reads outside it and outside the Python installation and this repository, and
  every module imported from the case's folder;
* the case's action runs (load, validate, compile to FX, run, simulate, or the CLI), and its
  outcome (a TorchMDFError and its message, success, or any other exception) is written out.

The parent kills a child that runs past ``TIMEOUT`` seconds and records a crash (a signal)
as such.  ``tests/test_hostile_files.py`` asserts on the results.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback

MEMORY_CAP = 3 << 30
TIMEOUT = 120


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _install_audit(case_dir: str, log: list) -> None:
    import torch

    case_dir = os.path.realpath(case_dir)

    def inside(p: str, root: str) -> bool:
        return p == root or p.startswith(root.rstrip("/") + "/")

    repo = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
    libs = [sys.prefix, sys.base_prefix, sys.exec_prefix, repo, os.path.dirname(torch.__file__)]
    libs += [p for p in sys.path if p and os.path.isdir(p) and not inside(os.path.realpath(p), case_dir)]
    read_ok = tuple({os.path.realpath(p) for p in libs}) + (
        "/proc/", "/sys/", "/dev/null", "/dev/urandom", "/usr/lib", "/usr/share", "/lib", "/etc/ld.so")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if not isinstance(path, str):
                return
            real = os.path.realpath(path)
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if inside(real, case_dir):
                return
            if writes or not any(inside(real, r) or real.startswith(r) for r in read_ok):
                log.append(f"{'write' if writes else 'read'} {real}")
        elif event == "import":
            name, filename = args[0], args[1] if len(args) > 1 else None
            if (isinstance(filename, str) and inside(os.path.realpath(filename), case_dir)) or name == "evilmod":
                log.append(f"import {name}")

    sys.addaudithook(hook)


def _act(case: dict, path: str) -> None:
    import torchmdf
    from torchmdf import mdf

    action = case["action"]
    if action == "load":
        mdf.load(path)
    elif action == "validate":
        problems = mdf.validate(mdf.load(path, validate=False))
        if problems:
            raise problems[0]
    elif action == "fx":
        torchmdf.compile(path, target="fx")
    elif action == "run":
        gm = torchmdf.compile(path, target="fx")
        gm()
    elif action == "simulate":
        torchmdf.simulate(path, steps=case.get("steps", 3), dt=0.01)
    elif action == "cli":
        import contextlib
        import io

        from torchmdf.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(case.get("argv", ["validate"]) + [path])
        text = err.getvalue()
        if "Traceback" in text:
            raise RuntimeError("the CLI printed a traceback:\n" + text)
        if rc == 0:
            return
        raise torchmdf.TorchMDFError(text.strip())
    else:
        raise ValueError(f"unknown action {action!r}")


def _child(case: dict, case_dir: str, out_path: str) -> None:
    import torchmdf

    log: list[str] = []
    result: dict = {"name": case["name"]}
    try:
        os.chdir(case_dir)
        resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + MEMORY_CAP, resource.RLIM_INFINITY))
        for k, v in (case.get("limits") or {}).items():
            setattr(torchmdf.limits.LIMITS, k, v)
        _install_audit(case_dir, log)
        t0 = time.perf_counter()
        try:
            _act(case, os.path.join(case_dir, case["file"]))
            result.update(status="ok")
        except torchmdf.TorchMDFError as e:
            result.update(status="torchmdf_error", type=type(e).__name__, message=str(e)[:4000])
        except BaseException as e:  # noqa: BLE001 - the point: anything else is a finding
            result.update(status="raw", type=type(e).__name__, message=str(e)[:2000],
                          traceback=traceback.format_exc()[-3000:])
        result["seconds"] = time.perf_counter() - t0
    except BaseException as e:  # noqa: BLE001
        result.update(status="harness", message=repr(e))
    result["violations"] = log
    with open(out_path, "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    os._exit(0)


def main(argv: list[str]) -> int:
    root, out = argv[0], argv[1]
    sys.path.insert(0, os.path.dirname(__file__))
    import hostile_corpus

    import torchmdf  # noqa: F401 - import and warm up before forking
    from torchmdf.mdf import load

    cases = hostile_corpus.build(root)
    wanted = set(argv[2:])
    if wanted:
        cases = [c for c in cases if c["name"] in wanted]
    warm = os.path.join(root, "_warmup")
    os.makedirs(warm, exist_ok=True)
    benign = hostile_corpus.benign(warm)
    import torchmdf as tm

    load(benign)
    tm.mdf.validate(load(benign))
    tm.compile(benign, target="fx")()
    tm.simulate(benign, steps=2, dt=0.01)
    results = []
    for case in cases:
        case_dir = os.path.join(root, case["name"])
        res_path = os.path.join(case_dir, ".result.json")
        pid = os.fork()
        if pid == 0:
            _child(case, case_dir, res_path)
        t0 = time.monotonic()
        status = None
        while time.monotonic() - t0 < case.get("timeout", TIMEOUT):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            results.append({"name": case["name"], "status": "timeout", "seconds": time.monotonic() - t0,
                            "violations": []})
            continue
        if os.WIFSIGNALED(status):
            results.append({"name": case["name"], "status": "crash", "signal": os.WTERMSIG(status),
                            "seconds": time.monotonic() - t0, "violations": []})
            continue
        try:
            with open(res_path) as f:
                results.append(json.load(f))
            os.unlink(res_path)
        except OSError:
            results.append({"name": case["name"], "status": "crash", "message": "no result written",
                            "violations": []})
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
