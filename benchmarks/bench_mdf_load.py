"""Benchmark: load + validate of the 2 MB PyTorch/mlp_pure_mdf.json example against a plain
``json.load`` of the same file in the same run (median of several repeats).

Prints one line of JSON:
``{"benchmark": "mdf_load", "file": ..., "json_load_s": ..., "torchmdf_load_s": ..., "validate_s": ..., "ratio": ...}``
where ``torchmdf_load_s`` is ``torchmdf.mdf.load`` (parse, build, validate), ``validate_s`` the
validation alone, and ``ratio`` = torchmdf_load_s / json_load_s (the target is < 3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=Path, default=REPO.parent / "shared" / "mdf-examples",
                    help="the mdf-examples directory (default: ../shared/mdf-examples)")
    ap.add_argument("--file", default="PyTorch/mlp_pure_mdf.json", help="file inside --examples")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)

    import torchmdf.mdf as mdf

    path = args.examples / args.file
    if not path.is_file():
        print(json.dumps({"benchmark": "mdf_load", "file": str(path), "error": "file not found"}))
        return 1

    def plain_json():
        with open(path, "rb") as f:
            json.load(f)

    model = mdf.load(path)  # warm caches (expression parses, onnx schemas) once
    plain_json()
    json_s = _median_time(plain_json, args.repeats)
    load_s = _median_time(lambda: mdf.load(path), args.repeats)
    validate_s = _median_time(lambda: mdf.validate(model), args.repeats)
    print(json.dumps({"benchmark": "mdf_load", "file": args.file, "json_load_s": round(json_s, 6),
                      "torchmdf_load_s": round(load_s, 6), "validate_s": round(validate_s, 6),
                      "ratio": round(load_s / json_s, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
