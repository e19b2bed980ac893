# bench/common.sh: what the bench scripts share, sourced (not run): option checks that name
# the bad value, the check for needed tools, building ours, the work directory, the tracking
# and stopping of the processes a script starts, and the report's medians and ratios.
#
# The sourcing script sets bench_name (its name in messages) first. Errors in the options exit
# with status 2 and one line "NAME: what is wrong" on standard error.

bench_die() {
	echo "$bench_name: $*" >&2
	exit 2
}

# bench_check_numbers VALUE...: each a whole number (0 included)
bench_check_numbers() {
	local v
	for v; do
		case $v in '' | *[!0-9]*) bench_die "not a number: '$v'" ;; esac
	done
}

# bench_check_net OPTION VALUE PARTS: VALUE is the first PARTS (2 or 3) numbers of an address
# in 127.0.0.0/8, e.g. 127.0.97 for PARTS 3; everything a bench script starts stays on loopback
bench_check_net() {
	local re='^127(\.[0-9]{1,3}){'$(($3 - 1))'}$'
	[[ $2 =~ $re ]] || bench_die "$1 must be in 127.0.0.0/8, as $3 numbers: '$2'"
}

# bench_need PATH...: each an executable (installed by scripts/install-deps)
bench_need() {
	local t
	for t; do
		[ -x "$t" ] || bench_die "$t is missing (scripts/install-deps)"
	done
}

# bench_build BUILD_DIR: brings our client up to date in the meson build directory
bench_build() {
	ninja -C "$1" torrent >&2
}

# bench_workdir DIR PREFIX: sets bench_dir to DIR, or to a new /tmp/PREFIX-XXXXXX if DIR is
# empty (bench_made_dir=1: the script made it, so bench_remove_workdir may remove it)
bench_workdir() {
	bench_made_dir=0
	bench_dir=$1
	if [ -z "$bench_dir" ]; then
		bench_dir=$(mktemp -d "/tmp/$2-XXXXXX")
		bench_made_dir=1
	fi
	mkdir -p "$bench_dir"
}

# bench_remove_workdir KEEP: removes the work directory made by bench_workdir unless KEEP is 1
# (or the caller gave the directory); says where it is when kept
bench_remove_workdir() {
	if [ "$1" = 1 ]; then
		echo "$bench_name: work directory kept: $bench_dir" >&2
	elif [ "$bench_made_dir" = 1 ]; then
		rm -rf "$bench_dir"
	fi
}

# --- processes: every background process a script starts, by PID -----------------------------

pids=()
# descendants PID: its children, grandchildren..., deepest first (found by parent PID)
descendants() {
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do
		descendants "$c"
		echo "$c"
	done
}
# stop_all PID...: TERM to each and its descendants, wait up to 3 s, then KILL the rest
stop_all() {
	local all="" p i alive
	for p in "$@"; do
		kill -0 "$p" 2>/dev/null && all="$all $(descendants "$p") $p"
	done
	[[ -n ${all// /} ]] || return 0
	# shellcheck disable=SC2086
	kill -TERM $all 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do
		alive=0
		for p in $all; do kill -0 "$p" 2>/dev/null && { alive=1; break; }; done
		((alive)) || return 0
		sleep 0.05
	done
	# shellcheck disable=SC2086
	kill -KILL $all 2>/dev/null || true
}
# forget PID: drop a process that has been waited for, so its PID, which the system may give
# to someone else's process, is never signalled
forget() {
	local p keep_pids=()
	for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep_pids+=("$p"); done
	pids=("${keep_pids[@]}")
}

# --- the report: medians and ratios over a TSV of runs (client, rep, result, columns...) -------

# median: of the numbers on standard input, "-" lines left out; "-" when there are none
median() {
	{ grep -v '^-$' || true; } | sort -g | awk '{v[NR] = $1}
		END {if (NR == 0) print "-"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# med CLIENT EXPR: the median over the client's good runs in $results of an awk expression of
# the columns
med() {
	awk -F'\t' -v c="$1" '$1 == c && $3 == "ok" {print '"$2"'}' "$results" | median
}
# fmt VALUE FORMAT: printf of a number, "–" for none
fmt() { awk -v v="$1" -v f="$2" 'BEGIN {if (v == "-" || v == "") print "–"; else printf f, v}'; }
# ratio A B: A / B to two decimals, "–" when either is missing or B is 0
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f", a / b}'
}
# nok CLIENT: its good runs in $results
nok() { awk -F'\t' -v c="$1" '$1 == c && $3 == "ok"' "$results" | wc -l; }
# version CMD...: the first line it prints
version() { "$@" 2>&1 | head -n1 || true; }
# buildtype: the meson build type of $build, run through $PY
buildtype() {
	$PY -c 'import json, sys
print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' \
		"$build/meson-info/intro-buildoptions.json" 2>/dev/null || echo unknown
}
