"""Groups a cachegrind profile of a worker by where its cost lies, per workflow.

    bench/cg_groups.py N FILE [FILE...]

FILE is what `PROFILER=cachegrind bench/profile KIND N` wrote (bench/out/profile-*.cachegrind.out).
For each file it prints instructions and last-level (L2) misses per workflow, split into code
(ILmr) and data reads/writes (DLmr, DLmw), for these groups of functions: Tempest's own crates,
mlua, the Lua VM, malloc, memcpy/memset, serde_json, printf, and everything else (Core, gRPC,
tokio, std). Comparing Tempest with floor-st this way shows which misses are Tempest's own and
which it induces in the code both share. Function names decide the groups, so build floor-st with
line tables as Tempest is (bench/RESULTS.md, "Exact counts"), or its functions all count as "other".
"""
import collections
import re
import subprocess
import sys

EVENTS = ["Ir", "ILmr", "DLmr", "DLmw"]
ROW = re.compile(r"^\s*((?:[\d,]+|\.)\s+(?:\(\s*-?[\d.]+%\)\s+)?){4}(\S.*)$")
NUMBER = re.compile(r"([\d,]+|\.)\s+(?:\(\s*-?[\d.]+%\)\s+)?")


def functions(path: str):
    """(counts, "file:function") for every function cg_annotate lists."""
    out = subprocess.run(["cg_annotate", "--auto=no", "--threshold=0", "--show=" + ",".join(EVENTS), path],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        match = ROW.match(line)
        if not match or "PROGRAM TOTALS" in line:
            continue
        numbers = NUMBER.findall(line[:match.start(2)])
        counts = [0 if n == "." else int(n.replace(",", "")) for n in numbers[:4]]
        if len(counts) == 4:
            yield counts, match.group(2)


def group(name: str) -> str:
    file, _, function = name.partition(":")
    if "lua-src" in file:
        return "lua-vm"
    if "malloc" in file:
        return "malloc"
    if "memmove" in file or "memcpy" in file or "memset" in file:
        return "memcpy/set"
    if function.startswith("mlua::") or "<mlua::" in function:
        return "mlua"
    if "tempest" in function:
        return "tempest"
    if "serde_json" in function:
        return "serde_json"
    if "printf" in file or "printf" in function:
        return "printf"
    return "other"


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    n = int(sys.argv[1])
    for path in sys.argv[2:]:
        totals = collections.defaultdict(lambda: [0] * 4)
        for counts, name in functions(path):
            for i, count in enumerate(counts):
                totals[group(name)][i] += count
        misses = lambda c: c[1] + c[2] + c[3]
        print(path)
        print(f"  {'group':12s} {'instr':>9s} {'L2 miss':>8s} {'code':>7s} {'data rd':>8s} {'data wr':>8s}   (per workflow)")
        for name, c in sorted(totals.items(), key=lambda kv: -misses(kv[1])):
            print(f"  {name:12s} {c[0] / n / 1000:8.1f}K {misses(c) / n:8.0f} {c[1] / n:7.0f} {c[2] / n:8.0f} {c[3] / n:8.0f}")
        all_counts = [sum(c[i] for c in totals.values()) for i in range(4)]
        print(f"  {'all':12s} {all_counts[0] / n / 1000:8.1f}K {misses(all_counts) / n:8.0f}")


if __name__ == "__main__":
    main()
