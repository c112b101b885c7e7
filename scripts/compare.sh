#!/usr/bin/env bash
# Races every server variant under the same load, one after another.
#
#   scripts/compare.sh [-c LIST] [-s BYTES] [-d SECONDS] [-m WORD]... [-S] [-o DIR]
#
#   -c LIST     connection counts (default 1,10,100)
#   -s BYTES    message size (default 64)
#   -d SECONDS  time per run (default 3)
#   -m WORD     only the variants whose name has WORD between dashes
#               (-m blocking: the three blocking ones, -m epoll, -m fork);
#               repeat it to add more (-m async -m multiplexing-epoll)
#   -S          also count every system call the server makes (perf)
#   -o DIR      where compare.csv and compare.svg go (default results/)
#
# Each run: start the server, load it with `bin/client bench` (closed loop),
# and read from /proc what the server spent meanwhile: CPU time
# (/proc/PID/stat: user + system, its threads and its reaped children
# included) and read/write system calls (/proc/PID/io: syscr, syscw), and
# how busy the whole machine was (/proc/stat), so that CPU taken by other
# programs shows in the results instead of hiding in them. With two CPUs or
# more, the server runs on CPU 0 and the client on CPU 1, so the two never
# fight for one core. BIN=DIR takes the programs from elsewhere.
#
# /proc/PID/io counts only the read and write family; io_uring's
# io_uring_enter, epoll_wait and recv/send are not in it. -S counts every
# system call with `perf stat -e raw_syscalls:sys_enter` on the server.
#
# The client counts every message (no warm-up), and the server is read
# before the client starts and after every connection has ended: so the
# costs divide exactly what the server spent by every message it echoed.
# (Read in the middle of a run, a server with a hundred busy children
# cannot be caught at one instant.)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${BIN:-$root/bin}
conns_list=1,10,100 size=64 seconds=3 out=$root/results count_all=
only=()

usage() {
    sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while getopts c:s:d:m:So:h flag; do
    case $flag in
    c) conns_list=$OPTARG ;;
    s) size=$OPTARG ;;
    d) seconds=$OPTARG ;;
    m) only+=("$OPTARG") ;;
    S) count_all=1 ;;
    o) out=$OPTARG ;;
    *) usage ;;
    esac
done
[[ $conns_list =~ ^[0-9]+(,[0-9]+)*$ && $size =~ ^[0-9]+$ && $seconds =~ ^[0-9.]+$ ]] ||
    { echo "compare.sh: bad option value" >&2; usage; }
IFS=, read -ra conns_counts <<<"$conns_list"

# Every variant, from the table the tests share (scripts/variants.txt):
# "NAME PROGRAM OPTIONS...". The extra modes of io_uring (docs/async.md) run
# only when -m names them (-m async, -m uring, -m sqpoll...), so that the
# full race stays short.
variants=() more_variants=()
while read -r name traits command; do
    [[ -z $name || $name == \#* ]] && continue
    if [[ ,$traits, == *,extra,* ]]; then
        more_variants+=("$name $command")
    else
        variants+=("$name $command")
    fi
done <"$here/variants.txt"

if ((${#only[@]})); then
    chosen=()
    for line in "${variants[@]}" "${more_variants[@]}"; do
        for word in "${only[@]}"; do
            if [[ -${line%% *}- == *-"$word"-* ]]; then
                chosen+=("$line")
                break
            fi
        done
    done
    ((${#chosen[@]})) || { echo "compare.sh: no variant is named after '${only[*]}'" >&2; exit 2; }
    variants=("${chosen[@]}")
fi
if [[ -n $count_all ]] && ! perf stat -x, -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
    echo "compare.sh: -S needs perf able to count raw_syscalls:sys_enter (perf_event_paranoid, or run as root)" >&2
    exit 1
fi

ticks_per_second=$(getconf CLK_TCK)
ns_per_tick=$((1000000000 / ticks_per_second))
server_cpu='' client_cpu=''
if (($(nproc) >= 2)); then
    server_cpu="taskset -c 0" client_cpu="taskset -c 1"
fi

mkdir -p "$out"
raw=$out/compare.raw.tsv
work=$(mktemp -d)
server_pid='' client_pid='' perf_pid=''
cleanup() {
    [[ -n $client_pid ]] && kill -KILL "$client_pid" 2>/dev/null
    [[ -n $perf_pid ]] && kill -KILL "$perf_pid" 2>/dev/null
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT # so that Ctrl-C (or TERM) also leaves no server behind
trap 'exit 143' TERM
printf 'variant\tconns\tstatus\tstarted\tended\tcpu_ns\tsyscr\tsyscw\tbusy_ticks\tbench_json\tsyscalls\n' >"$raw"

# "CPU_NS SYSCR SYSCW" spent so far by the server and its threads, and by
# its children once reaped (cutime and cstime in /proc/PID/stat; the
# kernel adds their io counters to the parent's too).
server_counters() {
    local pid=$1 line cpu_ns=0 reads=0 writes=0
    local -a fields
    while read -r line; do
        case $line in
        syscr:*) reads=${line#syscr: } ;;
        syscw:*) writes=${line#syscw: } ;;
        *") "*) # the stat line: after the command name, which may hold spaces
            read -ra fields <<<"${line##*) }"
            cpu_ns=$(((fields[11] + fields[12] + fields[13] + fields[14]) * ns_per_tick)) ;;
        esac
    done < <(cat /proc/"$pid"/stat /proc/"$pid"/io)
    echo "$cpu_ns $reads $writes"
}

has_children() {
    local list kids
    for list in /proc/"$1"/task/*/children; do
        kids=
        read -r kids 2>/dev/null <"$list" # /proc files have no size: read them
        [[ -n $kids ]] && return 0
    done
    return 1
}

# Ticks all CPUs spent doing anything (the first line of /proc/stat, less idle and iowait).
machine_busy_ticks() {
    local _label user nice system _idle _iowait irq softirq steal _rest
    read -r _label user nice system _idle _iowait irq softirq steal _rest </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# Waits (bounded) for the readiness line; prints the port, or nothing.
wait_ready() {
    local ready=$1 pid=$2 tries address
    for ((tries = 0; tries < 200; tries++)); do
        address=$(sed -n 's/^listening on //p' "$ready")
        [[ -n $address ]] && { echo "${address##*:}"; return; }
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
}

# Stops the server with SIGTERM (KILL if it ignores it for 5 s).
stop_server() {
    local tries
    kill -TERM "$server_pid" 2>/dev/null || true
    for ((tries = 0; tries < 100; tries++)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# Runs one variant at one connection count; appends its row to $raw.
run_one() {
    local name=$1 program=$2 conns=$3
    shift 3
    local status=ok json="" before after busy_before busy_after started ended port tries client_status=0
    # A program named alone is in bin/; a path (multiplexing/selectors_echo.py) is from the root.
    if [[ $program == */* ]]; then program=$root/$program; else program=$bin/$program; fi
    if [[ ! -x $program ]]; then
        printf '%s\t%s\tnot built\t\t\t\t\t\t\t\t\n' "$name" "$conns" >>"$raw"
        echo "not built"
        return
    fi
    : >"$work/ready" # emptied here, not by the background job: never read the last run's port
    # shellcheck disable=SC2086 # $server_cpu is a command prefix or nothing
    $server_cpu "$program" -p 0 -q --max-clients $((conns + 16)) "$@" >"$work/ready" 2>"$work/log" &
    server_pid=$!
    port=$(wait_ready "$work/ready" "$server_pid")
    if [[ -z $port ]]; then
        status="unavailable: $(head -n 1 "$work/log" | tr '\t' ' ')"
        printf '%s\t%s\t%s\t\t\t\t\t\t\t\t\n' "$name" "$conns" "$status" >>"$raw"
        stop_server
        echo "$status"
        return
    fi
    if [[ -n $count_all ]]; then
        # perf follows the server's threads and the children it forks from now on.
        perf stat -x, -e raw_syscalls:sys_enter -p "$server_pid" -o "$work/perf" &
        perf_pid=$!
        sleep 0.3 # perf attaches before the load starts
    fi
    started=$EPOCHREALTIME
    before=$(server_counters "$server_pid")
    busy_before=$(machine_busy_ticks)
    # shellcheck disable=SC2086
    timeout $((${seconds%.*} + 30)) $client_cpu "$bin/client" bench "127.0.0.1:$port" \
        -c "$conns" -s "$size" -d "$seconds" --warmup 0 --json >"$work/bench" 2>"$work/bench.err" &
    client_pid=$!
    wait "$client_pid" || client_status=$?
    ended=$EPOCHREALTIME
    client_pid=
    busy_after=$(machine_busy_ticks)
    # A forked child's CPU reaches the parent's cutime when it is reaped.
    for ((tries = 0; tries < 100; tries++)); do
        has_children "$server_pid" || break
        sleep 0.05
    done
    after=$(server_counters "$server_pid")
    local syscalls=
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf_pid=
        syscalls=$(sed -n 's/^\([0-9][0-9]*\),.*raw_syscalls:sys_enter.*/\1/p' "$work/perf")
    fi
    has_children "$server_pid" && status="children not reaped in 5 s: CPU and calls undercounted"
    kill -0 "$server_pid" 2>/dev/null || status="server died"
    stop_server
    json=$(tail -n 1 "$work/bench")
    if [[ $client_status -ne 0 ]]; then
        status="client exit $client_status: $(head -n 1 "$work/bench.err" | tr '\t' ' ')"
    fi
    read -r t0 r0 w0 <<<"$before"
    read -r t1 r1 w1 <<<"$after"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$status" "$started" "$ended" \
        $((t1 - t0)) $((r1 - r0)) $((w1 - w0)) $((busy_after - busy_before)) "$json" "$syscalls" >>"$raw"
    local rate stalled
    rate=$(sed -n 's/.*"msgs_per_sec":\([0-9.]*\).*/\1/p' <<<"$json")
    stalled=$(sed -n 's/.*"stalled":\([0-9]*\).*/\1/p' <<<"$json")
    [[ $stalled == 0 ]] && stalled=
    [[ $status == ok ]] && status=
    rate=${rate%.*} # whole messages per second are precise enough to read
    echo "${rate:-?} msgs/s${stalled:+, $stalled stalled}${status:+ ($status)}"
}

total=$((${#variants[@]} * ${#conns_counts[@]}))
echo "compare: ${#variants[@]} variants x connections ${conns_list}, ${size}-byte messages," \
    "${seconds} s each${server_cpu:+, server on CPU 0, client on CPU 1}" >&2
done_runs=0
for conns in "${conns_counts[@]}"; do
    for line in "${variants[@]}"; do
        read -ra words <<<"$line"
        done_runs=$((done_runs + 1))
        printf '[%2d/%d] %-24s %4d conns ... ' "$done_runs" "$total" "${words[0]}" "$conns" >&2
        run_one "${words[0]}" "${words[1]}" "$conns" "${words[@]:2}" >&2
    done
done

python3 "$here/compare_report.py" "$raw" --ticks-per-second "$ticks_per_second" --baseline multiplexing-epoll \
    --csv "$out/compare.csv" --svg "$out/compare.svg"
echo "files: $out/compare.csv $out/compare.svg (raw measurements: $raw)" >&2
