#!/usr/bin/env bash
# memory.sh: our client's peak RSS on a huge torrent of tiny pieces (issue 15: "peak RSS <= 24
# MiB for any torrent size", 16 GiB in 16 KiB pieces, 1,048,576 pieces, a 20 MiB .torrent).
#
# Nothing is hashed: the data is a sparse file of zeros (truncate), so every piece has the same
# SHA-1, and the .torrent is written by a few lines of python. Measured, each from /usr/bin/time
# (its "Maximum resident set size") or from /proc/PID/status (VmHWM):
#   info      `torrent info T`
#   idle      `torrent download T` with no tracker and one --peer where nothing listens,
#             stopped after --idle seconds
#   download  a real download from one libtorrent seeder (bench/seeder.py: every piece marked
#             had, no check) on 127.0.0.1 of a torrent of --download-gib GiB of the same piece
#             size (default: the same torrent), with wall time and CPU
#   magnet    the same seeder serving the big torrent by magnet link (`--no-dht --no-tracker
#             --peer`, so its info dict of 20 MiB is fetched over BEP 9): `torrent info` of the
#             magnet (the metadata fetch alone), then `torrent download` of it, stopped after
#             --magnet-s seconds (0: to the end, a --size GiB download)
# With --smaps, where the idle download's bytes are (/proc/PID/smaps_rollup and the largest
# mappings). A markdown table goes to standard output, progress to standard error.
set -euo pipefail
export TORRENT_DHT_BOOTSTRAP=none XDG_STATE_HOME=${TMPDIR:-/tmp}/torrent-bench-state
export LC_ALL=C
bench_name=memory.sh

usage() {
	cat <<'EOF'
Usage: bench/memory.sh [options]

  --size GiB        size of the torrent's one file of zeros (default 16)
  --piece KiB       piece size (default 16)
  --idle S          how long the idle download runs (default 3; under the ~8 s after which
                    a download whose one peer refuses gives up)
  --download-gib G  size of the torrent for the real download (default: --size; 0: skip it)
  --magnet-s S      how long the magnet download runs (default 30; 0: to the end; -1: skip
                    the magnet runs)
  --net A.B.C       the /24 of 127.0.0.0/8 to use (default 127.0.98): seeder .11
  --port P          the seeder's port (default 27311)
  --smaps           also print where the idle download's memory is
  --timeout S       give up on the download after S seconds (default 1800)
  --dir DIR         work directory (default: a new one under /tmp, removed at the end)
  --keep            keep the work directory
  --build DIR       meson build directory (default: build/ at the top of the repository)

Needs /usr/bin/time and /usr/bin/python3 with python3-libtorrent. The files are sparse and the
download's output is deleted at the end; a full 16 GiB download writes 16 GiB to the disk.
EOF
}

size_gib=16
piece_kib=16
idle_s=3
dl_gib=
magnet_s=30
net=127.0.98
port=27311
smaps=0
run_timeout=1800
workdir=
keep=0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
PY=/usr/bin/python3
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

while (($#)); do
	case $1 in
	--size) size_gib=${2-}; shift 2 ;;
	--piece) piece_kib=${2-}; shift 2 ;;
	--idle) idle_s=${2-}; shift 2 ;;
	--download-gib) dl_gib=${2-}; shift 2 ;;
	--magnet-s) magnet_s=${2-}; shift 2 ;;
	--net) net=${2-}; shift 2 ;;
	--port) port=${2-}; shift 2 ;;
	--smaps) smaps=1; shift ;;
	--timeout) run_timeout=${2-}; shift 2 ;;
	--dir) workdir=${2-}; shift 2 ;;
	--keep) keep=1; shift ;;
	--build) build=${2-}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) bench_die "unknown option '$1' (--help lists them)" ;;
	esac
done
dl_gib=${dl_gib:-$size_gib}
bench_check_numbers "$size_gib" "$piece_kib" "$idle_s" "$dl_gib" "$port" "$run_timeout"
[[ $magnet_s == -1 ]] || bench_check_numbers "$magnet_s"
bench_check_net --net "$net" 3
((size_gib > 0)) || bench_die "--size must be at least 1"
((piece_kib >= 16 && (piece_kib & (piece_kib - 1)) == 0)) ||
	bench_die "--piece must be a power of two of at least 16: '$piece_kib'"
bench_need /usr/bin/time "$PY"
bench_build "$build"
torrent=$build/torrent
bench_workdir "$workdir" torrent-memory
work=$bench_dir
trap 'stop_all "${pids[@]}"; bench_remove_workdir $keep' EXIT
trap 'exit 130' INT TERM

# make_torrent GIB PATH: a torrent of one file of GIB GiB of zeros, named zeros.bin
make_torrent() {
	$PY - "$1" "$((piece_kib * 1024))" "$2" <<'EOF'
import hashlib, sys
size, plen, path = int(sys.argv[1]) << 30, int(sys.argv[2]), sys.argv[3]
n = (size + plen - 1) // plen
full = hashlib.sha1(bytes(plen)).digest()
last = size - (n - 1) * plen
hashes = full * (n - 1) + hashlib.sha1(bytes(last)).digest()
def s(b): return b'%d:' % len(b) + b
info = (b'd6:lengthi%de4:name9:zeros.bin12:piece lengthi%de6:pieces' % (size, plen)
        + s(hashes) + b'e')
with open(path, 'wb') as f:
    f.write(b'd10:created by' + s(b'bench/memory.sh') + b'4:info' + info + b'e')
EOF
}

# peak_of LOG: the "Maximum resident set size" of a /usr/bin/time -v log, in MiB
peak_of() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }
cpu_of() { awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.1f", u + s}' "$1"; }

# start_seeder TORRENT GIB: bench/seeder.py on $net.11:$port serving TORRENT from a sparse file
# of GIB GiB of zeros, with libtorrent's limits on a .torrent raised: its defaults refuse one of
# more than 10 MB ("metadata too large")
start_seeder() {
	truncate -s "${2}G" "$work/seed/zeros.bin"
	ip=$net.11
	echo "$bench_name: a libtorrent seeder of ${2} GiB at $ip:$port" >&2
	$PY -c 'import runpy, sys, libtorrent as lt
load = lt.torrent_info
lt.torrent_info = lambda path: load(path, {"max_buffer_size": 64 << 20, "max_pieces": 1 << 22})
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$root/bench/seeder.py" \
		"$1" "$work/seed" "$ip" "$port" </dev/null >"$work/seeder.log" 2>&1 &
	seeder_pid=$!
	pids+=("$seeder_pid")
	for ((i = 0; i < 1200; i++)); do
		grep -q '^ready' "$work/seeder.log" && break
		kill -0 "$seeder_pid" 2>/dev/null || { cat "$work/seeder.log" >&2; bench_die "the seeder died"; }
		sleep 0.1
	done
	grep -q '^ready' "$work/seeder.log" || bench_die "the seeder was not ready in 120 s"
}

stop_seeder() {
	stop_all "$seeder_pid"
	wait "$seeder_pid" 2>/dev/null || true
	forget "$seeder_pid"
	rm -f "$work/seed/zeros.bin"
}

echo "$bench_name: writing a ${size_gib} GiB torrent of ${piece_kib} KiB pieces" >&2
mkdir -p "$work/seed" "$work/out"
make_torrent "$size_gib" "$work/big.torrent"
tsize=$(stat -c %s "$work/big.torrent")
pieces=$(((size_gib << 30) / (piece_kib * 1024)))
rows=()

echo "$bench_name: torrent info" >&2
/usr/bin/time -v -o "$work/info.time" "$torrent" info "$work/big.torrent" >"$work/info.out"
rows+=("| info | $(peak_of "$work/info.time") | $(cpu_of "$work/info.time") | – |")

echo "$bench_name: an idle download for ${idle_s} s" >&2
"$torrent" download "$work/big.torrent" --peer "$net.12:9" --no-tracker --no-dht \
	--stall-timeout 3600 -q \
	-o "$work/out/idle.bin" >"$work/idle.log" 2>&1 &
idle_pid=$!
pids+=("$idle_pid")
sleep "$idle_s"
if ! kill -0 "$idle_pid" 2>/dev/null; then
	cat "$work/idle.log" >&2
	bench_die "the idle download ended early (log above)"
fi
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$idle_pid/status")
rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$idle_pid/status")
if ((smaps)); then
	{
		echo "smaps_rollup of the idle download:"
		grep -E '^(Rss|Pss|Shared|Private|Anonymous)' "/proc/$idle_pid/smaps_rollup"
		echo "largest mappings by Rss (kB, mapping):"
		awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6 ? $6 : "[anon]"} /^Rss:/ {rss[name] += $2}
			END {for (n in rss) print rss[n], n}' "/proc/$idle_pid/smaps" | sort -rn | head -12
	} >&2
fi
stop_all "$idle_pid"
wait "$idle_pid" 2>/dev/null || true
forget "$idle_pid"
rm -f "$work/out/idle.bin"*
rows+=("| idle ${idle_s} s (VmHWM; VmRSS at the end $rss) | $hwm | – | – |")

if ((dl_gib > 0)); then
	if ((dl_gib != size_gib)); then
		make_torrent "$dl_gib" "$work/dl.torrent"
	else
		cp "$work/big.torrent" "$work/dl.torrent"
	fi
	start_seeder "$work/dl.torrent" "$dl_gib"
	t0=$EPOCHREALTIME
	rc=0
	/usr/bin/time -v -o "$work/dl.time" timeout "$run_timeout" "$torrent" download \
		"$work/dl.torrent" --peer "$ip:$port" --no-tracker --no-dht -q \
		-o "$work/out/zeros.bin" >"$work/dl.log" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
	got=$(stat -c %s "$work/out/zeros.bin" 2>/dev/null || echo 0)
	verdict=ok
	((rc == 0 && got == dl_gib << 30)) || verdict="failed (exit $rc, $got bytes)"
	# The time log's RSS is of `timeout`'s child: our client (timeout itself is tiny).
	rows+=("| download ${dl_gib} GiB from one seeder: $verdict, ${wall} s | $(peak_of "$work/dl.time") | $(cpu_of "$work/dl.time") | $wall |")
	rm -f "$work/out/zeros.bin"*
	stop_seeder
fi

if ((magnet_s >= 0)); then
	# The info hash: SHA-1 of the info dict, which make_torrent writes last but for the final 'e'
	ih=$($PY -c 'import hashlib, sys
d = open(sys.argv[1], "rb").read()
print(hashlib.sha1(d[d.index(b"4:info") + 6:-1]).hexdigest())' "$work/big.torrent")
	start_seeder "$work/big.torrent" "$size_gib"
	uri="magnet:?xt=urn:btih:$ih&dn=zeros.bin&x.pe=$ip:$port"
	echo "$bench_name: torrent info of the magnet (the metadata fetch)" >&2
	rc=0
	/usr/bin/time -v -o "$work/minfo.time" timeout "$run_timeout" "$torrent" info "$uri" \
		>"$work/minfo.out" 2>&1 || rc=$?
	verdict=ok
	((rc == 0)) || { cat "$work/minfo.out" >&2; verdict="failed (exit $rc)"; }
	rows+=("| magnet: info (fetches the $((tsize >> 20)) MiB info dict): $verdict | $(peak_of "$work/minfo.time") | $(cpu_of "$work/minfo.time") | – |")
	limit=$run_timeout what="the whole ${size_gib} GiB"
	((magnet_s == 0)) || { limit=$magnet_s what="the first ${magnet_s} s"; }
	echo "$bench_name: torrent download of the magnet, $what" >&2
	rc=0
	t0=$EPOCHREALTIME
	/usr/bin/time -v -o "$work/mdl.time" timeout -s INT "$limit" "$torrent" download "$uri" \
		--peer "$ip:$port" --no-tracker --no-dht -q -o "$work/out/zeros.bin" \
		>"$work/mdl.log" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
	rm -f "$work/out/zeros.bin"*
	stop_seeder
	# How much came (the output is preallocated, so its size says nothing): the seeder's total
	got=$(awk '/^uploaded/ {printf "%.2f", $2 / 2^30}' "$work/seeder.log")
	if ((magnet_s == 0)); then
		verdict=ok
		((rc == 0)) || verdict="failed (exit $rc)"
	else
		verdict="stopped after ${magnet_s} s"
		((rc == 124 || rc == 130 || rc == 0)) || verdict="failed (exit $rc)"
	fi
	verdict="$verdict, ${got:-?} GiB received"
	((rc == 0 || rc == 124 || rc == 130)) || cat "$work/mdl.log" >&2
	rows+=("| magnet: download, $what: $verdict | $(peak_of "$work/mdl.time") | $(cpu_of "$work/mdl.time") | $wall |")
fi

echo "### Peak RSS, ${size_gib} GiB in ${piece_kib} KiB pieces ($pieces pieces, a $((tsize >> 20)) MiB .torrent)"
echo
echo "- command: bench/memory.sh --size $size_gib --piece $piece_kib --download-gib $dl_gib --magnet-s $magnet_s"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); tree: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'); binary: $torrent; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | peak RSS (MiB) | CPU (s) | wall (s) |"
echo "|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
