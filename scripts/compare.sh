#!/usr/bin/env bash
# Races every server variant under the same load, one after another.
#
#   scripts/compare.sh [-c LIST] [-s BYTES] [-d SECONDS] [-r RUNS] [-m WORD]... [-S] [-o DIR]
#   scripts/compare.sh -L [-l RATES] [-k LIMIT] [-c CONNS] ...   latency against offered load
#   scripts/compare.sh -i LIST [-c CONNS] ...                      cost against idle connections
#
#   -c LIST     connection counts (default 1,10,100; -L and -i take one, default 10)
#   -s BYTES    message size (default 64)
#   -d SECONDS  time per run, or per step of -L (default 3)
#   -r RUNS     run everything RUNS times; each figure is the median, with
#               the spread (min to max) beside it (default 3)
#   -m WORD     only the variants whose name has WORD between dashes
#               (-m blocking: the three blocking ones, -m epoll, -m fork),
#               or =NAME for that variant alone (-m =async-uring);
#               repeat it to add more (-m async -m multiplexing-epoll)
#   -S          also count every system call the server makes (perf)
#   -o DIR      where the results go (default results/)
#   -L          open loop: each variant at offered rates from light load to
#               past saturation: 10% to 130% of its own closed-loop maximum
#   -l RATES    -L at these rates instead (msgs/s, comma-separated)
#   -k LIMIT    -L's knee: the highest offered rate whose p99 stays under
#               LIMIT: Nx (N times the variant's p99 at the lightest load,
#               default 5x) or a number of microseconds
#   -i LIST     hold this many idle connections open during each run
#               (e.g. 0,100,1000,10000); default variants: select, poll,
#               epoll, io_uring
#
# Files: compare.{csv,svg} (the race), sweep.{csv,svg} (-L), idle.{csv,svg}
# (-i), and each one's raw measurements (*.raw.tsv).
#
# Each run: start the server, load it with `bin/client bench` (closed loop,
# or --rate for -L), and read from /proc what the server spent meanwhile:
# CPU time (/proc/PID/stat: user + system, its threads and its reaped
# children included), read/write system calls (/proc/PID/io: syscr, syscw)
# and resident memory (VmRSS), and how busy the whole machine was
# (/proc/stat), so that CPU taken by other programs shows in the results
# instead of hiding in them. With two CPUs or more, the server runs on CPU 0
# and the clients on CPU 1, so the two never fight for one core. BIN=DIR
# takes the programs from elsewhere.
#
# /proc/PID/io counts only the read and write family; io_uring's
# io_uring_enter, epoll_wait and recv/send are not in it. -S counts every
# system call with `perf stat -e raw_syscalls:sys_enter` on the server.
#
# The client counts every message (no warm-up), and the server is read
# before the client starts and after every connection has ended: so the
# costs divide exactly what the server spent by every message it echoed.
# (Read in the middle of a run, a server with a hundred busy children
# cannot be caught at one instant.) With -i, `bin/client hold` opens the
# idle connections first and the server is read after they are all in, so
# their setup is not charged to the messages.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${BIN:-$root/bin}
conns_list='' size=64 seconds=3 runs=3 out=$root/results count_all='' sweep='' rates='' knee=5x idle_list=''
only=()

usage() {
    sed -n '4,27p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while getopts c:s:d:r:m:So:Ll:k:i:h flag; do
    case $flag in
    c) conns_list=$OPTARG ;;
    s) size=$OPTARG ;;
    d) seconds=$OPTARG ;;
    r) runs=$OPTARG ;;
    m) only+=("$OPTARG") ;;
    S) count_all=1 ;;
    o) out=$OPTARG ;;
    L) sweep=1 ;;
    l) sweep=1 rates=$OPTARG ;;
    k) knee=$OPTARG ;;
    i) idle_list=$OPTARG ;;
    *) usage ;;
    esac
done
((OPTIND > $#)) || { echo "compare.sh: unexpected argument '${!OPTIND}'" >&2; usage; }
list='^[0-9]+(,[0-9]+)*$'
[[ -n $sweep && -n $idle_list ]] && { echo "compare.sh: -L and -i are separate runs" >&2; usage; }
if [[ -n $sweep || -n $idle_list ]]; then
    conns_list=${conns_list:-10}
    [[ $conns_list =~ ^[0-9]+$ ]] || { echo "compare.sh: -L and -i take one connection count" >&2; usage; }
fi
conns_list=${conns_list:-1,10,100}
[[ $conns_list =~ $list && $size =~ ^[0-9]+$ && $seconds =~ ^[0-9.]+$ && $runs =~ ^[1-9][0-9]*$ ]] ||
    { echo "compare.sh: bad option value" >&2; usage; }
[[ -z $rates || $rates =~ $list ]] || { echo "compare.sh: -l expects rates like 1000,5000" >&2; usage; }
[[ $knee =~ ^[0-9.]+x?$ ]] || { echo "compare.sh: -k expects Nx or microseconds, not '$knee'" >&2; usage; }
[[ -z $idle_list || $idle_list =~ $list ]] || { echo "compare.sh: -i expects counts like 0,100,1000" >&2; usage; }
IFS=, read -ra conns_counts <<<"$conns_list"

# Every variant, from the table the tests share (scripts/variants.txt):
# "NAME TRAITS PROGRAM OPTIONS...". The extra modes of io_uring
# (docs/async.md) run only when -m names them (-m async, -m uring, -m
# sqpoll...), so that the full race stays short.
variants=() more_variants=()
while read -r name traits command; do
    [[ -z $name || $name == \#* ]] && continue
    if [[ ,$traits, == *,extra,* ]]; then
        more_variants+=("$name $command")
    else
        variants+=("$name $command")
    fi
done <"$here/variants.txt"

if ((${#only[@]} == 0)) && [[ -n $idle_list ]]; then
    # The four the C10K curve is about, by their exact names.
    chosen=()
    for line in "${variants[@]}"; do
        case ${line%% *} in
        multiplexing-select | multiplexing-poll | multiplexing-epoll | async-uring) chosen+=("$line") ;;
        esac
    done
    variants=("${chosen[@]}")
elif ((${#only[@]})); then
    chosen=()
    for line in "${variants[@]}" "${more_variants[@]}"; do
        for word in "${only[@]}"; do
            if [[ -${line%% *}- == *-"$word"-* || =${line%% *} == "$word" ]]; then
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

# glibc's FD_SETSIZE (<sys/select.h>): select cannot watch a descriptor
# number at or above it, so the select server refuses such connections.
fd_setsize=1024
fd_note=''
if [[ -n $idle_list ]]; then
    # Every idle connection costs a descriptor in the server and in the client.
    IFS=, read -ra idle_counts <<<"$idle_list"
    wanted=0
    for n in "${idle_counts[@]}"; do ((n > wanted)) && wanted=$n; done
    wanted=$((wanted + conns_list + 64))
    soft=$(ulimit -Sn) hard=$(ulimit -Hn)
    if [[ $soft != unlimited ]] && ((soft < wanted)); then
        if [[ $hard == unlimited ]] || ((hard >= wanted)); then
            ulimit -Sn "$wanted"
            fd_note="RLIMIT_NOFILE raised from $soft to $wanted for this run"
        else
            ulimit -Sn "$hard"
            fd_note="RLIMIT_NOFILE can only be raised to its hard limit $hard (raise it as root for more): counts above about $((hard - conns_list - 64)) are skipped"
        fi
        echo "compare: $fd_note" >&2
    fi
fi

mkdir -p "$out"
work=$(mktemp -d)
server_pid='' client_pid='' perf_pid='' hold_pid='' port='' start_error='' held='' max=0
cleanup() {
    [[ -n $client_pid ]] && kill -KILL "$client_pid" 2>/dev/null
    [[ -n $hold_pid ]] && kill -KILL "$hold_pid" 2>/dev/null
    [[ -n $perf_pid ]] && kill -KILL "$perf_pid" 2>/dev/null
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT # so that Ctrl-C (or TERM) also leaves no server behind
trap 'exit 143' TERM

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

server_rss_kib() {
    sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/"$server_pid"/status 2>/dev/null
}

has_children() {
    local list kids
    for list in /proc/"$1"/task/*/children; do
        kids=''
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

# Waits (bounded, in 50 ms steps) until FILE has a line matching PATTERN
# or PID is gone; prints the first match (sed -n s///p), or nothing.
wait_line() {
    local file=$1 pattern=$2 pid=$3 tries=$4 found
    for ((; tries > 0; tries--)); do
        found=$(sed -n "$pattern" "$file" | head -n 1)
        [[ -n $found ]] && { echo "$found"; return; }
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
}

# Starts a variant's server; sets port, or leaves it empty and says why in start_error.
start_server() {
    local program=$1 clients=$2
    shift 2
    port='' start_error=''
    # A program named alone is in bin/; a path (multiplexing/selectors_echo.py) is from the root.
    if [[ $program == */* ]]; then program=$root/$program; else program=$bin/$program; fi
    if [[ ! -x $program ]]; then
        start_error="not built"
        return
    fi
    : >"$work/ready" # emptied here, not by the background job: never read the last run's port
    # shellcheck disable=SC2086 # $server_cpu is a command prefix or nothing
    $server_cpu "$program" -p 0 -q --max-clients "$clients" "$@" >"$work/ready" 2>"$work/log" &
    server_pid=$!
    port=$(wait_line "$work/ready" 's/^listening on .*://p' "$server_pid" 300)
    if [[ -z $port ]]; then
        start_error="unavailable: $(head -n 1 "$work/log" | tr '\t' ' ')"
        stop_server
    fi
}

# Stops the server with SIGTERM (KILL if it ignores it for 5 s).
stop_server() {
    local tries
    [[ -n $server_pid ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for ((tries = 0; tries < 100; tries++)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=''
}

# Holds N idle connections to the server (bin/client hold); sets held to
# how many it holds, or leaves it empty if it failed.
start_hold() {
    local port=$1 n=$2
    rm -f "$work/hold.out"
    : >"$work/hold.out"
    # shellcheck disable=SC2086
    $client_cpu "$bin/client" hold -n "$n" "127.0.0.1:$port" <"$work/hold.in" >"$work/hold.out" 2>"$work/hold.err" &
    hold_pid=$!
    held=$(wait_line "$work/hold.out" 's/^holding \([0-9]*\) of .*/\1/p' "$hold_pid" $((700 + n / 10)))
}

stop_hold() {
    [[ -n $hold_pid ]] || return 0
    kill -TERM "$hold_pid" 2>/dev/null || true
    wait "$hold_pid" 2>/dev/null || true
    hold_pid=''
}

# Empty fields for a run that did not happen.
no_row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\n' "$1" "$2" "$3" "$4" "$5" "$6" >>"$raw"
}

# One client run against the running server; appends its row to $raw and
# prints the progress word. Arguments: name conns rate idle run held, then
# the client's extra options.
measure() {
    local name=$1 conns=$2 rate=$3 idle=$4 run=$5 held=$6 port=$7
    shift 7
    local status=ok json="" before after busy_before busy_after started ended tries client_status=0 rss syscalls=''
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
        -c "$conns" -s "$size" -d "$seconds" --warmup 0 --json "$@" >"$work/bench" 2>"$work/bench.err" &
    client_pid=$!
    wait "$client_pid" || client_status=$?
    ended=$EPOCHREALTIME
    client_pid=''
    busy_after=$(machine_busy_ticks)
    rss=$(server_rss_kib)
    # A forked child's CPU reaches the parent's cutime when it is reaped.
    for ((tries = 0; tries < 100; tries++)); do
        has_children "$server_pid" || break
        sleep 0.05
    done
    after=$(server_counters "$server_pid")
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf_pid=''
        syscalls=$(sed -n 's/^\([0-9][0-9]*\),.*raw_syscalls:sys_enter.*/\1/p' "$work/perf")
    fi
    has_children "$server_pid" && status="children not reaped in 5 s: CPU and calls undercounted"
    kill -0 "$server_pid" 2>/dev/null || status="server died"
    json=$(tail -n 1 "$work/bench")
    if [[ $client_status -ne 0 ]]; then
        status="client exit $client_status: $(head -n 1 "$work/bench.err" | tr '\t' ' ')"
    fi
    local t0 r0 w0 t1 r1 w1
    read -r t0 r0 w0 <<<"$before"
    read -r t1 r1 w1 <<<"$after"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$rate" "$idle" \
        "$run" "$status" "$held" "$started" "$ended" $((t1 - t0)) $((r1 - r0)) $((w1 - w0)) \
        $((busy_after - busy_before)) "$rss" "$json" "$syscalls" >>"$raw"
    local achieved stalled served
    achieved=$(sed -n 's/.*"msgs_per_sec":\([0-9.]*\).*/\1/p' <<<"$json")
    stalled=$(sed -n 's/.*"stalled":\([0-9]*\).*/\1/p' <<<"$json")
    served=$(sed -n 's/.*"conns_served":\([0-9]*\).*/\1/p' <<<"$json")
    [[ $stalled == 0 ]] && stalled=''
    [[ $status == ok ]] && status=''
    achieved=${achieved%.*} # whole messages per second are precise enough to read
    echo "${achieved:-?} msgs/s${served:+, $served/$conns served}${stalled:+, $stalled stalled}${status:+ ($status)}"
}

header='variant\tconns\trate\tidle\trun\tstatus\tidle_held\tstarted\tended\tcpu_ns\tsyscr\tsyscw\tbusy_ticks\trss_kib\tbench_json\tsyscalls\n'
done_runs=0
progress() { # the run's number and name, before its result
    done_runs=$((done_runs + 1))
    printf '[%2d/%d] %-24s %s ... ' "$done_runs" "$total" "$1" "$2" >&2
}

# Runs a closed-loop race of one variant at one connection count.
race_one() {
    local name=$1 program=$2 conns=$3 run=$4
    shift 4
    progress "$name" "$(printf '%4d conns' "$conns")"
    start_server "$program" $((conns + 16)) "$@"
    if [[ -z $port ]]; then
        no_row "$name" "$conns" "" 0 "$run" "$start_error"
        echo "$start_error" >&2
        return
    fi
    measure "$name" "$conns" "" 0 "$run" "" "$port" >&2
    stop_server
}

# Sets max to the closed-loop maximum of a variant, whole msgs/s (0 if it failed).
probe_rate() {
    local program=$1 conns=$2
    shift 2
    max=0
    start_server "$program" $((conns + 16)) "$@"
    [[ -n $port ]] || return 0
    local saved=$raw
    raw=$work/probe.tsv
    measure probe "$conns" "" 0 0 "" "$port" >/dev/null
    raw=$saved
    stop_server
    max=$(sed -n 's/.*"msgs_per_sec":\([0-9]*\).*/\1/p' "$work/bench")
    max=${max:-0}
}

# Runs one variant at each offered rate of its sweep, on one server.
sweep_one() {
    local name=$1 program=$2 conns=$3 run=$4 rate
    shift 4
    local -a steps
    IFS=, read -ra steps <<<"${sweep_rates[$name]}"
    start_server "$program" $((conns + 16)) "$@"
    for rate in "${steps[@]}"; do
        progress "$name" "$(printf '%8d msgs/s offered' "$rate")"
        if [[ -z $port ]]; then
            no_row "$name" "$conns" "$rate" 0 "$run" "$start_error"
            echo "$start_error" >&2
            continue
        fi
        measure "$name" "$conns" "$rate" 0 "$run" "" "$port" --rate "$rate" >&2
    done
    stop_server
}

# Runs one variant with N idle connections held open.
idle_one() {
    local name=$1 program=$2 conns=$3 run=$4 n=$5
    shift 5
    progress "$name" "$(printf '%6d idle' "$n")"
    if [[ " $* " == *" --api select "* ]] && ((n + conns + 8 > fd_setsize)); then
        no_row "$name" "$conns" "" "$n" "$run" "beyond FD_SETSIZE: select watches descriptors below $fd_setsize only"
        echo "skipped: select stops at FD_SETSIZE ($fd_setsize descriptors)" >&2
        return
    fi
    if [[ $(ulimit -Sn) != unlimited ]] && ((n + conns + 64 > $(ulimit -Sn))); then
        no_row "$name" "$conns" "" "$n" "$run" "skipped: RLIMIT_NOFILE $(ulimit -Sn)"
        echo "skipped: RLIMIT_NOFILE is $(ulimit -Sn)" >&2
        return
    fi
    start_server "$program" $((n + conns + 16)) "$@"
    if [[ -z $port ]]; then
        no_row "$name" "$conns" "" "$n" "$run" "$start_error"
        echo "$start_error" >&2
        return
    fi
    start_hold "$port" "$n"
    if [[ -z $held ]]; then
        no_row "$name" "$conns" "" "$n" "$run" "client hold failed: $(head -n 1 "$work/hold.err")"
        echo "client hold failed" >&2
    else
        measure "$name" "$conns" "" "$n" "$run" "$held" "$port" >&2
    fi
    stop_hold
    stop_server
}

knee_args=(--knee "$knee")
if [[ -n $sweep ]]; then
    conns=${conns_counts[0]}
    raw=$out/sweep.raw.tsv
    # shellcheck disable=SC2059 # the format is ours
    printf "$header" >"$raw"
    declare -A sweep_rates
    steps_per_variant=10
    [[ -n $rates ]] && steps_per_variant=$(tr ',' '\n' <<<"$rates" | wc -l)
    total=$((${#variants[@]} * runs * steps_per_variant))
    echo "compare -L: ${#variants[@]} variants x $runs runs, $conns connections, open loop, ${size}-byte messages," \
        "${seconds} s per step${server_cpu:+, server on CPU 0, client on CPU 1}" >&2
    for line in "${variants[@]}"; do
        read -ra words <<<"$line"
        if [[ -n $rates ]]; then
            sweep_rates[${words[0]}]=$rates
        else
            # Steps from the variant's own closed-loop maximum, so that each
            # curve covers light load, the knee and saturation.
            probe_rate "${words[1]}" "$conns" "${words[@]:2}"
            ((max > 0)) || max=1000
            offered=''
            for percent in 10 25 50 70 80 90 100 110 120 130; do
                offered+=${offered:+,}$((max * percent / 100 > 0 ? max * percent / 100 : 1))
            done
            sweep_rates[${words[0]}]=$offered
            echo "  ${words[0]}: closed-loop maximum $max msgs/s; offered $offered" >&2
        fi
        for ((run = 1; run <= runs; run++)); do
            sweep_one "${words[0]}" "${words[1]}" "$conns" "$run" "${words[@]:2}"
        done
    done
    python3 "$here/compare_report.py" sweep "$raw" --ticks-per-second "$ticks_per_second" "${knee_args[@]}" \
        --csv "$out/sweep.csv" --svg "$out/sweep.svg"
    echo "files: $out/sweep.csv $out/sweep.svg (raw measurements: $raw)" >&2
elif [[ -n $idle_list ]]; then
    conns=${conns_counts[0]}
    raw=$out/idle.raw.tsv
    # shellcheck disable=SC2059
    printf "$header" >"$raw"
    mkfifo "$work/hold.in"
    exec 3<>"$work/hold.in" # held open read-write: client hold sees no end of input
    total=$((${#variants[@]} * runs * ${#idle_counts[@]}))
    echo "compare -i: ${#variants[@]} variants x $runs runs x idle ${idle_list}, $conns busy connections," \
        "${size}-byte messages, ${seconds} s each${server_cpu:+, server on CPU 0, clients on CPU 1}" >&2
    for ((run = 1; run <= runs; run++)); do
        for n in "${idle_counts[@]}"; do
            for line in "${variants[@]}"; do
                read -ra words <<<"$line"
                idle_one "${words[0]}" "${words[1]}" "$conns" "$run" "$n" "${words[@]:2}"
            done
        done
    done
    python3 "$here/compare_report.py" idle "$raw" --ticks-per-second "$ticks_per_second" \
        ${fd_note:+--note "$fd_note"} --csv "$out/idle.csv" --svg "$out/idle.svg"
    echo "files: $out/idle.csv $out/idle.svg (raw measurements: $raw)" >&2
else
    raw=$out/compare.raw.tsv
    # shellcheck disable=SC2059
    printf "$header" >"$raw"
    total=$((${#variants[@]} * ${#conns_counts[@]} * runs))
    echo "compare: ${#variants[@]} variants x connections ${conns_list} x $runs runs, ${size}-byte messages," \
        "${seconds} s each${server_cpu:+, server on CPU 0, client on CPU 1}" >&2
    # Repeats outermost: a disturbance of the machine spreads over all the
    # variants instead of landing on one.
    for ((run = 1; run <= runs; run++)); do
        for conns in "${conns_counts[@]}"; do
            for line in "${variants[@]}"; do
                read -ra words <<<"$line"
                race_one "${words[0]}" "${words[1]}" "$conns" "$run" "${words[@]:2}"
            done
        done
    done
    python3 "$here/compare_report.py" race "$raw" --ticks-per-second "$ticks_per_second" --baseline multiplexing-epoll \
        --csv "$out/compare.csv" --svg "$out/compare.svg"
    echo "files: $out/compare.csv $out/compare.svg (raw measurements: $raw)" >&2
fi
