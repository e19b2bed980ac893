#!/usr/bin/env bash
# parse.sh: how fast, and in how much memory, our client parses a large .torrent, side by side
# with libtorrent-rasterbar, transmission and aria2 in the same run on the same bytes.
#
# bench_parse generates two torrents (N pieces in one file, and the same pieces over K files),
# every parser is checked to report the same info hash, then three things are measured:
#   library   warm, in one process, from memory, median of --lib-reps calls:
#             bt_meta_parse (and bt_benc_parse alone) against libtorrent's torrent_info(bytes);
#   cold      the first read-and-parse in a fresh process, start-up excluded, one process per
#             repetition: bench_parse --read against `lt.torrent_info(path)` timed in Python;
#   command   whole processes, output to /dev/null: `torrent info`, `transmission-show`,
#             `aria2c --show-files`, and python3 + libtorrent, with wall time and peak RSS.
# Processes are interleaved round-robin, so background load falls on every client alike.
# Ratios are theirs / ours: above 1 means we are faster or smaller. The markdown goes to
# standard output, progress to standard error. Nothing here passes or fails on a number.
set -euo pipefail
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bench/parse.sh [--pieces N] [--files K] [--reps R] [--lib-reps L] [--build DIR]

  --pieces N    pieces of 256 KiB in each torrent (default 100000)
  --files K     files in the multi-file torrent (default 20000)
  --reps R      fresh processes per client and measure (default 11)
  --lib-reps L  warm in-process parses per library (default 51)
  --build DIR   meson build directory (default: build/ at the top of the repository)

Needs /usr/bin/time (Debian package `time`); libtorrent (/usr/bin/python3 with
python3-libtorrent), transmission-show (transmission-cli) and aria2c are each skipped with a
note when missing.
EOF
}

pieces=100000
files=20000
reps=11
lib_reps=51
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build

while (($#)); do
	case $1 in
	--pieces) pieces=$2; shift 2 ;;
	--files) files=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--lib-reps) lib_reps=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

log() { printf '%s\n' "$*" >&2; }
die() { log "parse.sh: $*"; exit 1; }

TIME=/usr/bin/time
PY=/usr/bin/python3
[[ -x $TIME ]] || die "needs GNU time at /usr/bin/time (apt-get install -y time)"

if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" "$root" --wrap-mode=nodownload >&2
fi
# Only the two targets we run: a half-edited test elsewhere must not stop the benchmark.
ninja -C "$build" torrent bench/bench_parse >&2
TORRENT=$build/torrent
BENCH=$build/bench/bench_parse

have_lt=0
if [[ -x $PY ]] && $PY -c 'import libtorrent' 2>/dev/null; then have_lt=1; fi
have_tr=0; command -v transmission-show >/dev/null && have_tr=1
have_aria=0; command -v aria2c >/dev/null && have_aria=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The libtorrent side, mirroring bench_parse: "warm" parses bytes already in memory, the first
# call a warm-up, and reports median, min, the step in peak RSS and the info hash; "cold" times
# the first torrent_info(path) of a fresh interpreter, after `import libtorrent`.
cat >"$tmp/lt.py" <<'EOF'
import resource, statistics, sys, time
import libtorrent as lt

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

mode, path = sys.argv[1], sys.argv[2]
if mode == "cold":
    r0 = peak_kib()
    t0 = time.perf_counter()
    ti = lt.torrent_info(path)
    t1 = time.perf_counter()
    print(f"{(t1 - t0) * 1e3:.4f} {peak_kib() - r0} {ti.info_hash()}")
else:
    reps = int(sys.argv[3])
    with open(path, "rb") as f:
        data = f.read()
    r0 = peak_kib()
    ti = lt.torrent_info(data)
    h = str(ti.info_hash())
    del ti
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ti = lt.torrent_info(data)
        t1 = time.perf_counter()
        del ti
        times.append((t1 - t0) * 1e3)
    print(f"{statistics.median(times):.4f} {min(times):.4f} {peak_kib() - r0} {h}")
EOF

# median and min of the numbers on standard input, one a line
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
minimum() { sort -g | head -n1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f", a / b}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ms() { awk -v v="$1" 'BEGIN {printf (v < 0.01 ? "%.4f" : v < 10 ? "%.3f" : "%.1f"), v}'; }

# stats FUNCTION FILE: "median min step_kib" from bench_parse's two lines for FUNCTION
stats() {
	local t m
	t=$(sed -n "s/^$1: median \([0-9.]*\) ms, min \([0-9.]*\) ms.*/\1 \2/p" "$2")
	m=$(sed -n "s/^$1: peak RSS [0-9]* KiB, +\([0-9]*\) KiB.*/\1/p" "$2")
	[[ -n $t && -n $m ]] || die "cannot read $1's results from $2"
	echo "$t $m"
}

# One timed run of a command: appends "wall_ms peak_rss_kib" to $1. Wall time comes from
# EPOCHREALTIME (GNU time's %e has 10 ms steps); it includes time's own fork and exec, which is
# the same for every client. %M is the child's peak RSS.
measure() {
	local out=$1; shift
	local t0 t1
	t0=$EPOCHREALTIME
	if ! $TIME -f '%e %M' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/stderr"; then
		cat "$tmp/stderr" >&2
		die "failed: $*"
	fi
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" -v m="$(tail -n1 "$tmp/time" | awk '{print $2}')" \
		'BEGIN {printf "%.3f %d\n", (b - a) * 1e3, m}' >>"$out"
}

# check NAME HASH CMD...: runs CMD once (which also warms the page cache) and insists that its
# output names the info hash.
check() {
	local name=$1 hash=$2; shift 2
	if ! "$@" >"$tmp/out" 2>&1 || ! grep -qi -- "$hash" "$tmp/out"; then
		head -n 20 "$tmp/out" >&2
		die "$name does not report info hash $hash"
	fi
}

# row GROUP PARSER MEDIAN MIN OURS_MEDIAN MEM_KIB OURS_MEM_KIB
row() {
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(ms "$3")" "$(ms "$4")" \
		"$(ratio "$3" "$5")" "$(mib "$6")" "$(ratio "$6" "$7")"
}

# bench_one LABEL FILES BENCH_PARSE-ARGS...: everything for one torrent; prints its section.
bench_one() {
	local label=$1 nfiles=$2; shift 2
	local d=$tmp/$label t=$tmp/$label.torrent
	mkdir -p "$d"

	log "== $label: generating and timing our library"
	$BENCH "$@" --reps 1 --only benc --write "$t" >"$d/gen"
	local hash size
	hash=$(sed -n 's/.*info hash \([0-9a-f]*\).*/\1/p' "$d/gen")
	size=$(stat -c %s "$t")
	$BENCH "$@" --reps "$lib_reps" --only meta >"$d/meta"
	$BENCH "$@" --reps "$lib_reps" --only benc >"$d/benc"
	local meta_med meta_min meta_mem benc_med benc_min benc_mem
	read -r meta_med meta_min meta_mem <<<"$(stats bt_meta_parse "$d/meta")"
	read -r benc_med benc_min benc_mem <<<"$(stats bt_benc_parse "$d/benc")"

	log "== $label: checking that every parser reports info hash $hash"
	check "torrent info" "$hash" "$TORRENT" info "$t"
	check "bench_parse --read" "$hash" "$BENCH" --read "$t" --reps 1 --only benc
	((have_lt)) && check "libtorrent" "$hash" $PY "$tmp/lt.py" cold "$t"
	((have_tr)) && check "transmission-show" "$hash" transmission-show "$t"
	((have_aria)) && check "aria2c" "$hash" aria2c --show-files "$t"

	local lt_line=""
	if ((have_lt)); then
		log "== $label: libtorrent, warm, $lib_reps parses in one process"
		lt_line=$($PY "$tmp/lt.py" warm "$t" "$lib_reps")
	fi

	log "== $label: $reps rounds of fresh processes"
	: >"$d/cold_ours"; : >"$d/cold_lt"
	: >"$d/cmd_ours"; : >"$d/cmd_tr"; : >"$d/cmd_aria"; : >"$d/cmd_py"
	for ((i = 1; i <= reps; i++)); do
		$BENCH --read "$t" --reps 1 --only benc >"$d/cold_out"
		sed -n 's/^cold: .*: \([0-9.]*\) ms, +\([0-9]*\) KiB.*/\1 \2/p' "$d/cold_out" >>"$d/cold_ours"
		((have_lt)) && $PY "$tmp/lt.py" cold "$t" | awk '{print $1, $2}' >>"$d/cold_lt"
		measure "$d/cmd_ours" "$TORRENT" info "$t"
		((have_tr)) && measure "$d/cmd_tr" transmission-show "$t"
		((have_aria)) && measure "$d/cmd_aria" aria2c --show-files "$t"
		((have_lt)) && measure "$d/cmd_py" $PY -c \
			'import sys, libtorrent as lt; lt.torrent_info(sys.argv[1])' "$t"
		log "   round $i/$reps"
	done

	# col FILE N: median and min of column N, and median of column 2 (memory)
	col_med() { awk -v c="$2" '{print $c}' "$1" | median; }
	col_min() { awk -v c="$2" '{print $c}' "$1" | minimum; }

	# shellcheck disable=SC2016 # the backquotes are markdown
	printf '\n### %s: %s pieces of 256 KiB, %s file(s), %s bytes, info hash `%s`\n\n' \
		"$label" "$pieces" "$nfiles" "$size" "$hash"
	echo '| measure | parser | time median (ms) | time min (ms) | time × ours | memory (MiB) | memory × ours |'
	echo '|---|---|---:|---:|---:|---:|---:|'
	row "library, warm" "**ours**: bt_meta_parse" "$meta_med" "$meta_min" "$meta_med" "$meta_mem" "$meta_mem"
	row "library, warm" "ours: bt_benc_parse alone" "$benc_med" "$benc_min" "$meta_med" "$benc_mem" "$meta_mem"
	if [[ -n $lt_line ]]; then
		local lmed lmin lmem
		read -r lmed lmin lmem _ <<<"$lt_line"
		row "library, warm" "libtorrent: torrent_info(bytes)" "$lmed" "$lmin" "$meta_med" "$lmem" "$meta_mem"
	fi
	local cmed cmem
	cmed=$(col_med "$d/cold_ours" 1); cmem=$(col_med "$d/cold_ours" 2)
	row "first call, cold" "**ours**: read + bt_meta_parse" "$cmed" "$(col_min "$d/cold_ours" 1)" "$cmed" "$cmem" "$cmem"
	((have_lt)) && row "first call, cold" "libtorrent: torrent_info(path)" \
		"$(col_med "$d/cold_lt" 1)" "$(col_min "$d/cold_lt" 1)" "$cmed" "$(col_med "$d/cold_lt" 2)" "$cmem"
	local wmed wmem
	wmed=$(col_med "$d/cmd_ours" 1); wmem=$(col_med "$d/cmd_ours" 2)
	row "whole command" "**ours**: \`torrent info\`" "$wmed" "$(col_min "$d/cmd_ours" 1)" "$wmed" "$wmem" "$wmem"
	((have_tr)) && row "whole command" "\`transmission-show\`" \
		"$(col_med "$d/cmd_tr" 1)" "$(col_min "$d/cmd_tr" 1)" "$wmed" "$(col_med "$d/cmd_tr" 2)" "$wmem"
	((have_aria)) && row "whole command" "\`aria2c --show-files\`" \
		"$(col_med "$d/cmd_aria" 1)" "$(col_min "$d/cmd_aria" 1)" "$wmed" "$(col_med "$d/cmd_aria" 2)" "$wmem"
	((have_lt)) && row "whole command" "\`python3\` + libtorrent" \
		"$(col_med "$d/cmd_py" 1)" "$(col_min "$d/cmd_py" 1)" "$wmed" "$(col_med "$d/cmd_py" 2)" "$wmem"
	return 0
}

version() { "$@" 2>&1 | head -n1 || true; }
buildtype() {
	python3 -c 'import json, sys
print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' \
		"$build/meson-info/intro-buildoptions.json" 2>/dev/null || echo unknown
}

{
	echo "## Parse benchmark"
	echo
	echo "- command: \`bench/parse.sh --pieces $pieces --files $files --reps $reps --lib-reps $lib_reps\`"
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); tree: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" --no-optional-locks diff --quiet HEAD -- src include 2>/dev/null || echo ' + uncommitted changes in src/ or include/')"
	echo "- machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r); load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- build: $(buildtype) ($(version cc --version))"
	echo "- others: libtorrent $( ((have_lt)) && $PY -c 'import libtorrent as lt; print(lt.__version__)' || echo 'not installed'); $( ((have_tr)) && version transmission-show --version || echo 'transmission-show not installed'); $( ((have_aria)) && version aria2c --version || echo 'aria2c not installed')"
} >"$tmp/header"

bench_one single 1 --pieces "$pieces" >"$tmp/single.md"
bench_one multi "$files" --pieces "$pieces" --files "$files" >"$tmp/multi.md"

cat "$tmp/header"
echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$tmp/single.md" "$tmp/multi.md"
cat <<'EOF'

Time × ours and memory × ours are theirs / ours (above 1: we are faster or smaller; for the
bt_benc_parse row, its share of bt_meta_parse). Memory is, for "library" and "first call", how
far the parse pushed the process's peak RSS up (ru_maxrss after minus before; for the warm rows
that includes the warm-up call), and for "whole command" the process's peak RSS (GNU time's %M). "first call" times exclude process start-up and, for
libtorrent, `import libtorrent`; "whole command" times include everything, output to /dev/null.
`torrent info` prints every piece hash (one 41-byte line per piece); transmission-show and
aria2c print only the file list.
EOF
