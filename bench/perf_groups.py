"""Groups a flat `perf report` (overhead, symbol) by where the time went; prints % and ms/wf."""
import collections
import re
import sys

GROUPS = [
    ("lua (C)", r"^(lua[A-Z_]|luaV|luaH|luaS|luaC|luaD|luaF|luaG|luaK|luaL|luaM|luaO|luaT|luaU|luaY|luaX|lua_)"),
    ("mlua", r"mlua"),
    ("tempest", r"tempest"),
    ("serde", r"serde"),
    ("tokio/mio", r"tokio|mio::"),
    ("gRPC (h2/hyper/tonic/tower)", r"h2::|hyper|tonic|tower"),
    ("prost", r"prost"),
    ("Temporal Core", r"temporalio"),
    ("allocator/memcpy", r"malloc|free|memmove|memcpy|memset|memcmp|_int_|unlink_chunk|consolidate|realloc"),
    ("tracing", r"tracing"),
]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    totals = collections.Counter()
    cpu_ns = 0.0
    for line in sys.stdin:
        count = re.match(r"# Event count \(approx\.\): (\d+)", line)
        if count:  # cpu-clock: nanoseconds
            cpu_ns = float(count.group(1))
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        share, space, symbol = float(m.group(1)), m.group(2), m.group(3)
        group = "kernel" if space == "k" else next((g for g, rx in GROUPS if re.search(rx, symbol)), "other")
        totals[group] += share
    per_wf = cpu_ns / 1e6 / n if n else 0.0
    print(f"{'where':30s} {'share':>7s} {'ms/wf':>7s}   (total {per_wf:.2f} ms CPU per workflow)")
    for group, share in totals.most_common():
        print(f"{group:30s} {share:6.2f}% {per_wf * share / 100:7.3f}")


if __name__ == "__main__":
    main()
