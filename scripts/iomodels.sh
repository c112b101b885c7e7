#!/usr/bin/env bash
# The suite's scripts as `make install` puts them: installed as
# PREFIX/bin/iomodels, beside the six programs.
#
#   iomodels trace [-o DIR] ...     scripts/trace.sh
#   iomodels compare [-o DIR] ...   scripts/compare.sh
#   iomodels demo [-o DIR]          scripts/demo.sh
#
# The scripts live in PREFIX/share/iomodels/scripts, laid out as in the
# source tree: each finds its helpers beside it, and the programs in
# PREFIX/share/iomodels/bin, a link to PREFIX/bin. The installed tree is
# not the user's to write in, so their results go to ./results of the
# current directory unless -o DIR says otherwise.
set -euo pipefail

share=$(cd "$(dirname "$0")/../share/iomodels" 2>/dev/null && pwd) ||
    { echo "iomodels: no $(dirname "$0")/../share/iomodels: run the installed copy (make install)" >&2; exit 2; }
usage() {
    sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
[[ $# -ge 1 ]] || usage
command=$1
shift
case $command in
trace | compare | demo) exec "$share/scripts/$command.sh" -o "$PWD/results" "$@" ;;
*) usage ;;
esac
