#!/usr/bin/env bash
# The classroom tour behind `make demo`: where each model blocks (a short
# strace of each, its report), then the models raced side by side (a short
# comparison, its table). About a minute on two cores. The raw traces, the
# timelines and the comparison chart are left in results/.
#
# DEMO_SECONDS=N makes each comparison run last N seconds (default 1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
seconds=${DEMO_SECONDS:-1}

section() {
    echo
    echo "=============================================================================="
    echo "  $*"
    echo "=============================================================================="
}

section "1/5  blocking: one thread, blocking accept and read (--concurrency iterative)"
"$here/trace.sh" blocking -- --concurrency iterative
section "2/5  nonblocking: one loop that asks every socket again and again (--wait spin)"
"$here/trace.sh" nonblocking -- --wait spin
section "3/5  multiplexing: one thread waits for many sockets at once (--api epoll)"
"$here/trace.sh" multiplexing -- --api epoll
section "4/5  async: the kernel does the IO and reports completions (--engine auto)"
"$here/trace.sh" async -- --engine auto
section "5/5  side by side: every variant under the same load"
"$here/compare.sh" -c 1,100 -d "$seconds"

echo
echo "Pictures: $root/results/trace-*.svg (timelines) and $root/results/compare.svg; the lesson: docs/models.md"
