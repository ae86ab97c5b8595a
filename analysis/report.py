"""``python -m analysis.report <experiment>``: write report.md, report.html and PNGs for an experiment."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from analysis.experiment import ExperimentError
from search.cli import OneLineParser
from analysis.reporting import build_report
from trainables import InputError


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="experiment folder written by search.run (or a storage URI)")
    parser.add_argument("--out", default=None, help="where to write the report (default: the experiment folder; for a bucket's "
                        "experiment ./report-<name>); a bucket's URI uploads it there")
    parser.add_argument("--examples", type=int, default=4, help="Grad-CAM images per row")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    try:
        out = build_report(args.experiment, out_dir=args.out, examples=args.examples, resamples=args.bootstrap)
    except (ExperimentError, InputError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"report written to {out / 'report.md'} and {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
