"""bench/pool.py: round-by-round ratios pooled over several benchmark invocations.

    python3 bench/pool.py bench/out/results-A.json bench/out/results-B.json ...
    python3 bench/pool.py --base floor-st --kinds tempest,tempest-b FILE...

Pairs each kind's run with the base kind's run of the same round within each results file (the
two ran next to each other), then prints, per file and over all files, the mean of the per-round
CPU and throughput ratios with their 95% intervals, the medians and ranges. Rounds of different
files are pooled as they are: a kind must name the same build in every file given (`tempest-b` is
whatever `TEMPEST_B_BIN` was in each run; each file's line shows its commit).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from stats import describe, pair_ratios, round_pairs


def line(label: str, pairs: list[tuple[dict, dict]]) -> str:
    kind_cpu = statistics.mean(a["cpu_ms_per_wf"] for a, _ in pairs)
    base_cpu = statistics.mean(b["cpu_ms_per_wf"] for _, b in pairs)
    text = f"{label}: {len(pairs)} rounds, CPU {kind_cpu:.2f} against {base_cpu:.2f} ms/wf"
    if len(pairs) < 2:
        return text + f", CPU x {kind_cpu / base_cpu:.3f} (one round)"
    ratios = pair_ratios(pairs)
    return f"{text}\n    CPU x {describe(ratios['cpu_ms_per_wf'])}\n    wf/s x {describe(ratios['wf_per_s'])}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path, metavar="RESULTS.json")
    p.add_argument("--base", default="floor-st", help="the kind every other kind is compared with")
    p.add_argument("--kinds", help="kinds to compare, comma-separated (default: every kind but the base)")
    args = p.parse_args()
    pooled: dict[str, list[tuple[dict, dict]]] = {}
    for path in args.files:
        results = json.loads(path.read_text())
        rows = results.get("runs") or []
        kinds = args.kinds.split(",") if args.kinds else list(dict.fromkeys(r["kind"] for r in rows))
        commit = (results.get("git") or "?")[:12]
        for kind in kinds:
            if kind == args.base:
                continue
            pairs = round_pairs(rows, kind, args.base)
            if pairs:
                print(line(f"{path.name} ({commit}) {kind} x {args.base}", pairs))
                pooled.setdefault(kind, []).extend(pairs)
    if not pooled:
        sys.exit(f"no rounds with both {args.base} and another kind in the files given")
    print()
    for kind, pairs in pooled.items():
        print(line(f"pooled over {len(args.files)} files: {kind} x {args.base}", pairs))


if __name__ == "__main__":
    main()
