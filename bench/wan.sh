#!/usr/bin/env bash
# wan.sh: downloads over simulated wide-area paths, ours beside libtorrent, aria2c and rtorrent.
#
# Every seeder sits behind a relay (bench/relay.py) that adds a round-trip time and caps the
# seeder's upload with a token bucket and a bounded queue; the relay's tracker hands downloaders
# only the relay addresses. Swarms (--swarms):
#   uniform              8 libtorrent seeders (bench/seeder.py), 80 ms, 2 MiB/s each
#   mixed                8 libtorrent seeders, RTTs 30 to 250 ms, uplinks 0.5 to 4 MiB/s
#                        (18 MiB/s in all)
#   transmission         one Transmission 3.00 seeder (bench/realpeer.py), 80 ms, no cap: the
#                        peer that answers in bursts every half second (issue 15)
#   transmission-direct  the same seeder on plain loopback, no relay (the tracker hands out its
#                        own address)
# A Transmission seeder is started afresh for every download (it verifies the data, ~1 s):
# through a relay every downloader comes from 127.0.0.1, and Transmission serves an address
# it has seen before poorly (REAL-PEERS.md), which would favour whoever runs first.
# Clients run one at a time, interleaved (the first rotates each repetition); each output is
# compared with the source. Reported per swarm and client, medians: wall time, its fraction of
# the ideal (size / sum of the seeders' caps: 1.0 is every uplink full from the first instant),
# and time to first byte (the first data in the output file, bench/firstbyte.py).
# Everything is on 127.0.0.0/8; every process started here is stopped by its PID.
set -euo pipefail
# A local swarm: our client's DHT joins no public router and keeps no state.
export TORRENT_DHT_BOOTSTRAP=none XDG_STATE_HOME=${TMPDIR:-/tmp}/torrent-bench-state
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bench/wan.sh [options]

  --size MiB        size of the random file (default 128)
  --reps R          repetitions (default 3)
  --swarms LIST     comma-separated from: uniform, mixed, transmission, transmission-direct
                    (default uniform,mixed)
  --clients LIST    comma-separated from: torrent, libtorrent, aria2, rtorrent (default all)
  --baseline BIN    also run BIN (another build of ours) as torrent-base
  --net A.B.C       the /24 of 127.0.0.0/8 to use (default 127.0.97)
  --port-base P     first port (default 28000)
  --timeout S       give up on a download after S seconds (default 180)
  --keep            keep the work directory
  --build DIR       meson build directory (default: build/)

Environment, for looking into one of our runs: WAN_TORRENT_ARGS adds options to our download
(e.g. "--stats FILE" or "--progress=json", its output kept with --keep), WAN_TORRENT_WRAP puts
a command before it (e.g. "strace -f -tt -o FILE").
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/bench
PY=/usr/bin/python3
size_mib=128 reps=3 swarms=uniform,mixed clients=torrent,libtorrent,aria2,rtorrent baseline=""
net=127.0.97 port_base=28000 run_timeout=180 keep=0 build=$root/build
bench_name=wan.sh
. "$bench/common.sh"
die() {
	echo "wan.sh: $*" >&2
	exit 1
}
log() { echo "$*" >&2; }
while (($#)); do
	case $1 in
	--size) size_mib=${2:?}; shift ;;
	--reps) reps=${2:?}; shift ;;
	--swarms) swarms=${2:?}; shift ;;
	--clients) clients=${2:?}; shift ;;
	--baseline) baseline=${2:?}; shift ;;
	--net) net=${2:?}; shift ;;
	--port-base) port_base=${2:?}; shift ;;
	--timeout) run_timeout=${2:?}; shift ;;
	--keep) keep=1 ;;
	--build) build=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) bench_die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || bench_die "--size: '$size_mib' is not a whole number of MiB"
[[ $reps =~ ^[1-9][0-9]*$ ]] || bench_die "--reps: '$reps' is not a positive number"
[[ $run_timeout =~ ^[1-9][0-9]*$ ]] && ((run_timeout > 10)) ||
	bench_die "--timeout: '$run_timeout' is not a number of seconds above 10"
[[ $port_base =~ ^[1-9][0-9]*$ ]] && ((port_base <= 65000)) ||
	bench_die "--port-base: '$port_base' is not a port up to 65000"
bench_check_net --net "$net" 3
command -v mktorrent >/dev/null || die "needs mktorrent"
$PY -c 'import libtorrent' 2>/dev/null || die "needs $PY with libtorrent (python3-libtorrent)"
IFS=, read -r -a client_list <<<"$clients"
[[ -n $baseline ]] && client_list+=(torrent-base)
for c in "${client_list[@]}"; do
	case $c in
	torrent | libtorrent | torrent-base) ;;
	aria2) command -v aria2c >/dev/null || die "aria2c is not installed (drop it from --clients)" ;;
	rtorrent) [[ -x /usr/bin/rtorrent ]] || die "rtorrent is not installed (drop it from --clients)" ;;
	*) die "--clients: unknown client '$c'" ;;
	esac
done
[[ -z $baseline || -x $baseline ]] || die "--baseline: '$baseline' is not an executable"

# swarm_spec NAME: one "seeder rtt_ms kib_s" line per seeder: seeder lt (libtorrent, up for
# the whole swarm) or tx (Transmission, fresh for each download); rtt "-" for no relay; kib 0
# for no cap
swarm_spec() {
	case $1 in
	uniform) for _ in 1 2 3 4 5 6 7 8; do echo "lt 80 2048"; done ;;
	mixed) printf 'lt %s\n' "30 4096" "250 512" "60 3072" "200 1024" "100 2560" "150 1536" \
		"45 2048" "120 3584" ;;
	transmission) echo "tx 80 0" ;;
	transmission-direct) echo "tx - 0" ;;
	*) die "--swarms: unknown swarm '$1'" ;;
	esac
}
for sw in ${swarms//,/ }; do swarm_spec "$sw" >/dev/null; done
if [[ ,$swarms, == *,transmission* ]]; then
	[[ -x /usr/bin/transmission-cli ]] || die "the transmission swarms need transmission-cli"
fi

bench_build "$build"
bench_workdir "" bench-wan
work=$bench_dir
cp "$build/torrent" "$work/torrent"
[[ -z $baseline ]] || cp "$baseline" "$work/torrent-base"

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	bench_remove_workdir "$keep"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

size=$((size_mib * 1048576))
tracker=$net.1:$port_base
data=$work/seed/data.bin
tor=$work/data.torrent
mkdir -p "$work/seed"
head -c "$size" /dev/urandom >"$data"
mktorrent -l 18 -a "http://$tracker/announce" -n data.bin -o "$tor" "$data" >/dev/null

# wait_ready LOG S: waits up to S seconds for a line starting with "ready" in LOG
wait_ready() {
	local t
	for ((t = 0; t < $2 * 20; t++)); do grep -qs '^ready' "$1" && return 0; sleep 0.05; done
	return 1
}

# start_swarm NAME: relays, their tracker and the libtorrent seeders; sets swarm_pids, cap_kib
# (0 when a link has no cap: no ideal) and tx_seeders (the "k ip port" of Transmission ones)
start_swarm() {
	local i=0 kind rtt kib args=() ip port lt=()
	cap_kib=0 tx_seeders=()
	local capped=1
	while read -r kind rtt kib; do
		ip=$net.$((11 + i))
		port=$((port_base + 11 + i))
		if [[ $rtt == - ]]; then
			args+=("$ip:$port")
		else
			args+=("$net.$((51 + i)):$((port_base + 51 + i))=$ip:$port,$rtt,$kib")
		fi
		((kib > 0)) || capped=0
		cap_kib=$((cap_kib + kib))
		if [[ $kind == tx ]]; then tx_seeders+=("$i $ip $port"); else lt+=("$i $ip $port"); fi
		i=$((i + 1))
	done < <(swarm_spec "$1")
	((capped)) || cap_kib=0
	$PY "$bench/relay.py" "$tracker" "${args[@]}" >"$work/relay.log" 2>&1 &
	pids+=($!)
	swarm_pids=($!)
	wait_ready "$work/relay.log" 10 || { cat "$work/relay.log" >&2; die "relay.py did not start"; }
	local s k
	for s in "${lt[@]}"; do
		read -r k ip port <<<"$s"
		$PY "$bench/seeder.py" "$tor" "$work/seed" "$ip" "$port" </dev/null >"$work/seeder$k.log" 2>&1 &
		pids+=($!)
		swarm_pids+=($!)
	done
	for s in "${lt[@]}"; do
		read -r k ip port <<<"$s"
		wait_ready "$work/seeder$k.log" 30 || die "seeder $k did not start: $(tail -n 2 "$work/seeder$k.log")"
	done
}

# start_fresh / stop_fresh: the Transmission seeders of the swarm, around each download
fresh_pids=()
start_fresh() {
	local s k ip port
	fresh_pids=()
	for s in "${tx_seeders[@]}"; do
		read -r k ip port <<<"$s"
		rm -rf "$work/tx$k"
		mkdir -p "$work/tx$k"
		$PY "$bench/realpeer.py" transmission-seed "$tor" "$work/seed" "$ip" "$port" \
			"$work/tx$k" </dev/null >"$work/tx$k/seeder.log" 2>&1 &
		pids+=($!)
		fresh_pids+=($!)
	done
	for s in "${tx_seeders[@]}"; do
		read -r k ip port <<<"$s"
		wait_ready "$work/tx$k/seeder.log" 70 ||
			die "Transmission seeder $k did not start: $(tail -n 2 "$work/tx$k/seeder.log")"
	done
}
stop_fresh() {
	stop_pids "${fresh_pids[@]}"
	fresh_pids=()
}

# stop_pids PID...: SIGTERM, up to 3 s, SIGKILL; forgets them in pids
stop_pids() {
	local p
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "$@"; do
		for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	local keep_pids=()
	for p in "${pids[@]}"; do [[ " $* " == *" $p "* ]] || keep_pids+=("$p"); done
	pids=("${keep_pids[@]}")
}

stop_swarm() { stop_pids "${swarm_pids[@]}"; }

# run_one SWARM CLIENT REP: prints "swarm client rep ok wall first"
run_one() {
	local sw=$1 c=$2 rep=$3 out=$work/out run=$work/run-$1-$2-$3 cmd watch
	rm -rf "$out"
	mkdir -p "$out" "$run"
	case $c in
	torrent | torrent-base)
		cmd=(${WAN_TORRENT_WRAP:-} "$work/$c" download -o "$out/data.bin" -p $((port_base + 5)) --listen "$net.5" ${WAN_TORRENT_ARGS:-} "$tor")
		watch=("$out/data.bin.part" "$out/data.bin") ;;
	libtorrent)
		cmd=("$PY" "$bench/ltclient.py" "$tor" "$out" "$net.4" $((port_base + 4)))
		watch=("$out/data.bin") ;;
	aria2)
		cmd=(aria2c --no-conf --seed-time=0 --enable-dht=false --enable-dht6=false
			--bt-enable-lpd=false --enable-peer-exchange=false --file-allocation=none
			--bt-max-peers=0 --interface="$net.2" --listen-port=$((port_base + 2))
			--dir="$out" --console-log-level=warn --summary-interval=0 --allow-overwrite=true
			"$tor")
		watch=("$out/data.bin") ;;
	rtorrent)
		cmd=("$PY" "$bench/realpeer.py" rtorrent "$tor" "$out" "$net.3" $((run_timeout - 5)))
		watch=("$out/data.bin") ;;
	esac
	$PY "$bench/firstbyte.py" "$size" "$run/poll.ready" "${watch[@]}" </dev/null \
		>"$run/poll.out" 2>/dev/null &
	local poll=$! t rc=0
	pids+=("$poll")
	for ((t = 0; t < 500; t++)); do [[ -e $run/poll.ready ]] && break; sleep 0.01; done
	local t0=$EPOCHREALTIME
	timeout -k 5 "$run_timeout" "${cmd[@]}" </dev/null >"$run/stdout" 2>"$run/stderr" || rc=$?
	local t1=$EPOCHREALTIME
	kill -TERM "$poll" 2>/dev/null || true
	wait "$poll" 2>/dev/null || true
	local ok=ok
	if ! cmp -s "$data" "$out/data.bin"; then ok=BAD; elif ((rc)); then ok=exit-$rc; fi
	[[ $ok == ok ]] || { log "   $c: $ok"; tail -n 3 "$run/stderr" >&2; }
	local pf
	pf=$(sed -n 's/.*first=\([0-9.]*\).*/\1/p' "$run/poll.out")
	awk -v s="$sw" -v c="$c" -v r="$rep" -v ok="$ok" -v a="$t0" -v b="$t1" -v f="$pf" \
		'BEGIN {printf "%s %s %s %s %.3f %s\n", s, c, r, ok, b - a, f == "" ? "-" : sprintf("%.3f", f - a)}'
}

results=$work/runs.txt
: >"$results"
declare -A ideal
IFS=, read -r -a swarm_list <<<"$swarms"
for sw in "${swarm_list[@]}"; do
	log "== swarm $sw"
	start_swarm "$sw"
	ideal[$sw]=$(awk -v s="$size" -v k="$cap_kib" 'BEGIN {if (k == 0) print "-"; else printf "%.3f", s / (k * 1024)}')
	n=${#client_list[@]}
	for ((r = 0; r < reps; r++)); do
		for ((k = 0; k < n; k++)); do
			c=${client_list[(k + r) % n]}
			start_fresh
			line=$(run_one "$sw" "$c" "$r")
			stop_fresh
			log "   $line"
			echo "$line" >>"$results"
		done
	done
	stop_swarm
done

# median: bench/common.sh
echo "$size_mib MiB, 256 KiB pieces, medians of $reps; ideal = size / sum of the seeders' caps"
echo
echo "| swarm | client | runs ok | wall s | fraction of ideal | first byte s |"
echo "|---|---|---|---|---|---|"
for sw in "${swarm_list[@]}"; do
	for c in "${client_list[@]}"; do
		oks=$(awk -v s="$sw" -v c="$c" '$1 == s && $2 == c && $4 == "ok"' "$results" | wc -l)
		wall=$(awk -v s="$sw" -v c="$c" '$1 == s && $2 == c && $4 == "ok" {print $5}' "$results" | median)
		first=$(awk -v s="$sw" -v c="$c" '$1 == s && $2 == c && $6 != "-" {print $6}' "$results" | median)
		frac=$(awk -v i="${ideal[$sw]}" -v w="$wall" 'BEGIN {if (w == "-" || i == "-") print "-"; else printf "%.2f", i / w}')
		label="$sw (ideal ${ideal[$sw]} s)"
		[[ ${ideal[$sw]} != - ]] || label="$sw (no cap)"
		echo "| $label | $c | $oks/$reps | $wall | $frac | $first |"
	done
done
