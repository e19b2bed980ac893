#!/usr/bin/env bash
# two.sh: what several torrents in one process cost. Two torrents (A: one file, B: a folder of
# files, different piece sizes) are seeded by N `torrent seed --assume-valid` processes on
# 127.0.0.X, each serving both; then `torrent download` fetches A alone, B alone, and A and B in
# one process, R times each in turn. Reported: medians of wall time, CPU and peak RSS, and
# whether the pair's peak RSS stays within the sum of the single runs' (it should: the
# assembly budget is per torrent, everything else is shared). Every output is compared with
# its source. Traffic stays on 127.0.0.0/8; every process started is stopped by its PID.
set -euo pipefail
# A local swarm: our client's DHT joins no public router and keeps no state.
export TORRENT_DHT_BOOTSTRAP=none XDG_STATE_HOME=${TMPDIR:-/tmp}/torrent-bench-state
export LC_ALL=C

size_mib=256
nseeders=4
reps=3
net=127.0.98
port_base=28000
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build

usage() {
	cat <<'EOF'
Usage: bench/two.sh [--size MiB] [--seeders N] [--reps R] [--net 127.B.C] [--port-base P]
                    [--build DIR]

  --size MiB     size of each torrent (default 256)
  --seeders N    seeders, each serving both torrents (default 4), on NET.11, NET.12, ...
  --reps R       repetitions of the three runs (default 3)
EOF
}

while (($#)); do
	case $1 in
	--size) size_mib=$2; shift 2 ;;
	--seeders) nseeders=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--net) net=$2; shift 2 ;;
	--port-base) port_base=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || { echo "two.sh: --size wants MiB" >&2; exit 2; }
[[ $net =~ ^127\.[0-9]+\.[0-9]+$ ]] || { echo "two.sh: --net wants 127.B.C" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "two.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

ninja -C "$build" torrent >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/two-bench.XXXXXX")
T=$work/torrent
cp "$build/torrent" "$T"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/src/bee"
head -c $((size_mib << 20)) /dev/urandom >"$work/src/ay.bin"
for i in 1 2 3 4; do
	head -c $((size_mib << 18)) /dev/urandom >"$work/src/bee/part$i.bin"
done
"$T" create -q -o "$work/a.torrent" --piece-length 256K "$work/src/ay.bin" >/dev/null
"$T" create -q -o "$work/b.torrent" --piece-length 1M "$work/src/bee" >/dev/null

peers=()
for ((i = 0; i < nseeders; i++)); do
	ip=$net.$((11 + i)) port=$((port_base + 11 + i))
	"$T" seed -q --no-tracker --assume-valid --listen "$ip" -p "$port" --dir "$work/src" \
		"$work/a.torrent" "$work/b.torrent" &
	pids+=($!)
	peers+=(--peer "$ip:$port")
done
sleep 1

# run NAME TORRENT...: one download into a fresh directory; appends "name wall cpu rss" to
# $work/results and checks every output against its source.
run() {
	local name=$1
	shift
	local out=$work/out
	rm -rf "$out"
	mkdir "$out"
	local t0 t1
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%U %S %M' -o "$work/time" "$T" download -q --no-tracker \
		--listen "$net.5" -p $((port_base + 5)) "${peers[@]}" --dir "$out" "$@" >/dev/null
	t1=$EPOCHREALTIME
	for tor in "$@"; do
		case $tor in
		*a.torrent) cmp "$out/ay.bin" "$work/src/ay.bin" ;;
		*b.torrent) diff -r "$out/bee" "$work/src/bee" >/dev/null ;;
		esac
	done
	read -r user sys rss <"$work/time"
	awk -v n="$name" -v a="$t0" -v b="$t1" -v u="$user" -v s="$sys" -v r="$rss" \
		'BEGIN {printf "%s %.3f %.2f %.1f\n", n, b - a, u + s, r / 1024}' >>"$work/results"
	echo "  $(tail -n1 "$work/results")" >&2
}

for ((r = 1; r <= reps; r++)); do
	echo "== repetition $r" >&2
	run A "$work/a.torrent"
	run B "$work/b.torrent"
	run A+B "$work/a.torrent" "$work/b.torrent"
done

med() { awk -v n="$1" -v f="$2" '$1 == n {print $f}' "$work/results" | sort -g |
	awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "## Two torrents in one process: ${size_mib} MiB each, $nseeders seeders (torrent seed), medians of $reps"
echo
echo "| run | wall s | CPU s | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for n in A B A+B; do
	echo "| $n | $(med "$n" 2) | $(med "$n" 3) | $(med "$n" 4) |"
done
sum=$(awk -v a="$(med A 4)" -v b="$(med B 4)" 'BEGIN {printf "%.1f", a + b}')
echo
echo "Peak RSS of A+B: $(med A+B 4) MiB; A's plus B's: $sum MiB."
