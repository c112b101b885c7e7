#!/usr/bin/env bash
# The classroom tour behind `make demo`: the five IO models in Stevens'
# order, each drawn (scripts/diagrams.py) and traced under strace (its
# report says where it waited), then the models raced side by side, then
# one page that shows it all: results/index.html (scripts/page.py).
# About a minute on two cores.
#
#   scripts/demo.sh [-o DIR]     (DIR: where everything goes, default results/)
#
#   DEMO_SECONDS=N   each comparison run lasts N seconds (default 0.5)
#   TRACE_SCALE=X    scale the trace scenario's pauses (default 0.5: half
#                    of trace.sh's own, the same story in half the time)
#   LANG=zh_CN.UTF-8 the tour, the reports and the page in Chinese
#
# The variants are named as in scripts/variants.txt (trace.sh reads it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$here")/results
while getopts o:h flag; do
    case $flag in
    o) out=$OPTARG ;;
    *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
seconds=${DEMO_SECONDS:-0.5}
export TRACE_SCALE=${TRACE_SCALE:-0.5}
lang=en
case ${LC_ALL:-${LC_MESSAGES:-${LANG:-}}} in zh*) lang=zh ;; esac

# say EN ZH: one line of the tour in the chosen language.
say() {
    if [[ $lang == zh ]]; then echo "$2"; else echo "$1"; fi
}

section() {
    echo
    echo "=============================================================================="
    echo "  $(say "$1" "$2")"
    echo "=============================================================================="
}

# Draw a model for the terminal, then trace one of its variants.
model() {
    local figure=$1 variant=$2
    python3 "$here/diagrams.py" --text "$figure" --lang "$lang"
    say "  (the picture: docs/figures/$figure.svg)" "  （图：docs/figures/zh/$figure.svg）"
    echo
    "$here/trace.sh" -o "$out" "$variant"
}

section "1/6  blocking IO: one thread, blocking accept and read (blocking-iterative)" \
        "1/6  阻塞 IO：单线程，阻塞的 accept 和 read (blocking-iterative)"
model model-1-blocking blocking-iterative
section "2/6  nonblocking IO: one loop that asks every socket again and again (nonblocking-spin)" \
        "2/6  非阻塞 IO：一个循环一遍又一遍地询问每个套接字 (nonblocking-spin)"
model model-2-nonblocking nonblocking-spin
section "3/6  IO multiplexing: one thread waits for every socket at once (multiplexing-epoll)" \
        "3/6  IO 多路复用：一个线程同时等待所有套接字 (multiplexing-epoll)"
model model-3-multiplexing multiplexing-epoll
section "3/6  ... edge-triggered, reading once per event: a burst stalls with its bytes in the buffer" \
        "3/6  ……边缘触发、每个事件只读一次：一次突发的数据停在缓冲区里，连接卡住"
"$here/trace.sh" -o "$out" -s burst multiplexing-epoll-edge -- --read-once
section "3/6  ... what select cannot watch: 1100 clients, past FD_SETSIZE (1024)" \
        "3/6  ……select 监视不了的：1100 个客户端，超过 FD_SETSIZE (1024)"
"$here/crowd.py" --clients 1100 --json "$out/crowd.json"
section "4/6  signal-driven IO: SIGIO says when IO can start (nonblocking-sigio)" \
        "4/6  信号驱动 IO：SIGIO 通知何时可以开始 IO (nonblocking-sigio)"
model model-4-signal-driven nonblocking-sigio
section "5/6  asynchronous IO: told when the IO is complete (async-uring, async-posix-aio)" \
        "5/6  异步 IO：通知的是 IO 已完成 (async-uring, async-posix-aio)"
python3 "$here/diagrams.py" --text model-5-asynchronous --lang "$lang"
if ! model model-5-io_uring async-uring; then
    say "(io_uring is not usable here: only the POSIX AIO engine is traced)" \
        "（此处无法使用 io_uring：只跟踪 POSIX AIO 引擎）"
fi
model model-5-posix_aio async-posix-aio
section "6/6  side by side: every variant under the same load" \
        "6/6  并排比较：相同负载下的每个变体"
"$here/compare.sh" -c 1,100 -d "$seconds" -r 1 -o "$out"

echo
page=$(python3 "$here/page.py" -r "$out" --lang "$lang")
say "The page to project (every diagram, timeline, verdict and chart, offline): ${page#page: }" \
    "投影用的页面（所有图、时间线、结论和图表，可离线查看）：${page#page: }"
say "Open it in a browser: xdg-open ${page#page: }   The lesson: docs/models.md; the labs: docs/labs.md" \
    "用浏览器打开：xdg-open ${page#page: }   讲解：docs/zh/models.md；实验：docs/zh/labs.md"
