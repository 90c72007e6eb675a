"""`python -m bench`: not yet written (see the benchmarks issue)."""

import sys

print("No benchmarks yet: the benchmark suite is its own piece of work.", file=sys.stderr)
sys.exit(1)
