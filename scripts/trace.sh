#!/usr/bin/env bash
# Where does each model wait? Runs one echo server under strace, drives a
# fixed scenario against it, and reports where it waited and who copied.
#
#   scripts/trace.sh [-o DIR] [-s SCENARIO] VARIANT [-- more server options]
#   scripts/trace.sh [-o DIR] [-s SCENARIO] MODEL [-- server options]
#
#   VARIANT   a name from scripts/variants.txt: blocking-iterative,
#             nonblocking-sigio, multiplexing-epoll-edge, async-posix-aio, ...
#   MODEL     blocking | nonblocking | multiplexing | async, the variant
#             picked by its options: --wait sigio, --api select, ...
#   -s lines  (default) a client connects and stays idle for a second, sends
#             three lines half a second apart, a second client connects and
#             sends one, both leave
#   -s burst  a client sends 1 MiB at once and reads its echo until all is
#             back or nothing more comes for a second; a second client sends
#             a line meanwhile (scripts/trace.sh -s burst
#             multiplexing-epoll-edge -- --read-once shows the stall)
#   -o DIR    where the files go (default results/)
#
# TRACE_SCALE=0.2 shrinks every pause (tests); BIN=DIR takes the programs
# from elsewhere than bin/. The report speaks Chinese when LC_ALL, or else
# LANG, starts with zh (LANG=zh_CN.UTF-8 scripts/trace.sh ...).
#
# Files written, NAME being trace- and the variant's name as variants.txt
# spells it, then any options it adds and the scenario if not the default
# (trace-async-posix-aio, trace-multiplexing-epoll-edge-read-once-burst):
#   NAME.strace  the raw trace          NAME.txt   the report printed here
#   NAME.svg     the timeline           NAME.json  the report's numbers (fields:
#                                                  strace_report.py's header)
#   NAME.events  the scenario's events  NAME.log   the server's stderr
# Only these six files are written: a run replaces the files of an earlier
# run of the same variant and scenario, and nothing else in DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${BIN:-$root/bin}
scale=${TRACE_SCALE:-1}
out=$root/results
scenario=lines

usage() {
    sed -n '5,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while getopts o:s:h flag; do
    case $flag in
    o) out=$OPTARG ;;
    s) scenario=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || usage
what=$1
shift
[[ ${1:-} == -- ]] && shift
extra_options=("$@")
case $scenario in
lines | burst) ;;
*) echo "trace.sh: unknown scenario '$scenario' (lines or burst)" >&2; exit 2 ;;
esac

# A variant's line in variants.txt: "name traits program options...".
variant_line() {
    local name command
    while read -r name _ command; do
        [[ -z $name || $name == \#* ]] && continue
        printf '%s\t%s\n' "$name" "$command"
    done <"$here/variants.txt"
}

# The variant: named, or found by the model's program and the options given.
variant='' program='' base_options=()
if [[ $what == *-* ]]; then
    while IFS=$'\t' read -r name command; do
        if [[ $name == "$what" ]]; then
            variant=$name
            read -r -a words <<<"$command"
            program=${words[0]}
            base_options=("${words[@]:1}")
        fi
    done < <(variant_line)
    if [[ -z $variant ]]; then
        echo "trace.sh: unknown variant '$what' (see scripts/variants.txt)" >&2
        exit 2
    fi
    server_options=("${base_options[@]}" "${extra_options[@]}")
    model=${variant%%-*}
    added=("${extra_options[@]}")
else
    model=$what
    program=server-$model
    server_options=("${extra_options[@]}")
    added=("${extra_options[@]}")
    wanted="$program${server_options[*]:+ ${server_options[*]}}"
    while IFS=$'\t' read -r name command; do
        read -r -a words <<<"$command"
        [[ "${words[*]}" == "$wanted" ]] && variant=$name && added=()
    done < <(variant_line)
fi

# Each model is traced with the calls that tell its story, plus the IO and
# the clone calls every model makes (clone tells a thread from a process).
io_calls=socket,fcntl,ioctl,accept,accept4,read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg,shutdown,close
lanes_calls='clone,clone3,?fork,?vfork'
case $model in
blocking) model_calls=wait4 ;;
nonblocking) model_calls='nanosleep,clock_nanosleep,rt_sigsuspend,?pause' ;;
multiplexing) model_calls='?select,pselect6,?poll,ppoll,?epoll_wait,epoll_pwait,epoll_pwait2,epoll_ctl' ;;
async) model_calls=io_uring_setup,io_uring_enter,io_uring_register,rt_sigtimedwait,pread64,pwrite64 ;;
*) echo "trace.sh: unknown model '$model' (blocking, nonblocking, multiplexing or async, or a variant's name)" >&2; exit 2 ;;
esac
syscalls=$io_calls,$lanes_calls,$model_calls

# The file name: the variant's own name, then what the options add, spelled
# the same way ("--engine auto" -> auto, "--read-once" -> read-once).
name=trace-${variant:-$model}
for ((i = 0; i < ${#added[@]}; i++)); do
    word=${added[i]}
    next=${added[i + 1]:-}
    previous=
    ((i > 0)) && previous=${added[i - 1]}
    if [[ $previous == -H || $previous == --host ]]; then
        continue # where it listens is not part of the variant
    elif [[ $word != -* ]]; then
        name+=-${word//[^A-Za-z0-9.-]/_}
    elif [[ -z $next || $next == -* ]]; then
        name+=-${word##--} # a flag without a value: --read-once -> read-once
    fi
done
[[ $scenario == lines ]] || name+=-$scenario

for tool in strace python3; do
    command -v $tool >/dev/null || { echo "trace.sh: $tool is not installed" >&2; exit 1; }
done
if [[ $program == */* ]]; then
    server=$root/$program # a program outside the C suite, by its path from the root
else
    server=$bin/$program
fi
for needed in "$server" "$bin/client"; do
    [[ -x $needed ]] || { echo "trace.sh: $needed is not built (run make)" >&2; exit 1; }
done
mkdir -p "$out"
base=$out/$name
rm -f "$base".strace "$base".events
: >"$base.ready" # exists (empty) before the server starts: no stale or missing readiness line

strace_pid='' server_pid=''
stop_everything() {
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    [[ -n $strace_pid ]] && kill -KILL "$strace_pid" 2>/dev/null
    return 0
}
trap stop_everything EXIT
trap 'exit 130' INT # so that Ctrl-C (or TERM) also leaves no server behind
trap 'exit 143' TERM

# -f follows threads and children, -tt stamps each line with the time of day,
# -T adds the time spent inside each call, -y names what a descriptor is
# (socket or file), -s 32 keeps the data shown short.
echo "tracing: $server -p 0 -q ${server_options[*]}" >&2
echo "strace -f -tt -T -y -s 32 -e trace=$syscalls" >&2
strace -f -tt -T -y -s 32 -e trace="$syscalls" -o "$base.strace" \
    "$server" -p 0 -q "${server_options[@]}" >"$base.ready" 2>"$base.log" &
strace_pid=$!

# Wait (bounded) for the readiness line; strace slows the start a little.
address=
for ((tries = 0; tries < 200; tries++)); do
    address=$(sed -n 's/^listening on //p' "$base.ready")
    [[ -n $address ]] && break
    kill -0 "$strace_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ -z $address ]]; then
    echo "trace.sh: the server did not get ready; its messages:" >&2
    cat "$base.log" >&2
    exit 1
fi
server_pid=$(cat "/proc/$strace_pid/task/$strace_pid/children")
server_pid=${server_pid%% *}
port=${address##*:}

echo "scenario on port $port (pauses x$scale)..." >&2
scenario_status=0
python3 "$here/scenario.py" "$address" --client "$bin/client" --events "$base.events" \
    --scale "$scale" --scenario "$scenario" || scenario_status=$?

# SIGTERM: the server prints its summary and exits 0; strace follows it out.
# (KILL after 10 s, so that a server that ignores it still gets a report.)
kill -TERM "$server_pid" 2>/dev/null || true
for ((tries = 0; tries < 200; tries++)); do
    kill -0 "$strace_pid" 2>/dev/null || break
    sleep 0.05
done
kill -KILL "$server_pid" 2>/dev/null || true
wait "$strace_pid" || true
strace_pid='' server_pid=''

title="${variant:-$model}${added[*]:+ ${added[*]}}${variant:+ ($program${server_options[*]:+ ${server_options[*]}})}"
python3 "$here/strace_report.py" "$base.strace" --events "$base.events" --title "$title" \
    --svg "$base.svg" --json "$base.json" | tee "$base.txt"
echo >&2
echo "files: $base.{strace,txt,svg,json,events,log}" >&2
rm -f "$base.ready"
if [[ $scenario_status -ne 0 ]]; then
    echo "trace.sh: the scenario failed (see above): the report shows what the server did" >&2
    exit 1
fi
