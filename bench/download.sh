#!/usr/bin/env bash
# download.sh: how fast, with how much CPU and memory, our client downloads a torrent from a
# local swarm, side by side with aria2c, ctorrent and libtorrent in the same run.
#
# It builds the swarm: opentracker (the torrent's info hash whitelisted), N libtorrent seeders
# (bench/seeder.py, one process each on its own loopback address, every piece marked had and
# verified) and a random file of S MiB in a v1 torrent made by mktorrent. Then, for each of R
# repetitions, every client downloads the file once, in turn (the starting client rotates from
# one repetition to the next), into a fresh directory that is compared with the source (cmp)
# and deleted just before the next client starts. Nothing is dropped from the page cache: the
# source file stays cached for the seeders, and every client writes into the page cache.
#
# Clients (--clients, comma-separated):
#   torrent          ours, given every seeder with --peer and --no-tracker
#   torrent-tracker  ours, finding the seeders through the tracker
#   aria2            aria2c as a one-shot downloader (settings from shared/REAL-PEERS.md)
#   ctorrent         ctorrent -e 0, killed by its -X completion hook (else it lingers ~15 s)
#   libtorrent       bench/ltclient.py: python3-libtorrent, exits when finished
#   rtorrent         rtorrent 0.9.8 headless through bench/realpeer.py (its finished hook ends
#                    the run; the wrapper's python is counted in CPU and RSS)
#   torrent-base     another build of ours (--baseline BIN), run exactly like `torrent`: a
#                    before/after comparison of a change in one run, interleaved
# The others find the seeders through the tracker (none of them takes peer addresses).
#
# Measured for every run: wall time (bash EPOCHREALTIME around GNU time), CPU (user + sys) and
# peak RSS from /usr/bin/time (the python client's include the interpreter), time to first
# byte, the seeders' CPU (utime + stime deltas from /proc/PID/stat, summed over all seeders).
# The markdown report goes to standard output, progress to standard error. Nothing here passes
# or fails on a number; the issue's targets are printed with the verdict for this run.
set -euo pipefail
# A local swarm: our client's DHT joins no public router and keeps no state.
export TORRENT_DHT_BOOTSTRAP=none XDG_STATE_HOME=${TMPDIR:-/tmp}/torrent-bench-state
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bench/download.sh [options]

  --size MiB        size of the random file (default 1024)
  --seeders N       libtorrent seeders (default 8)
  --piece KiB       piece size, a power of two (default 256)
  --big-pieces      the 1 MiB-piece variant: --piece 1024 --seeders 4
  --reps R          repetitions; every client runs once in each (default 3)
  --clients LIST    comma-separated, from: torrent, torrent-tracker, aria2, ctorrent, libtorrent,
                    rtorrent
                    (default: all five above; rtorrent only when named)
  --net A.B.C       the /24 of 127.0.0.0/8 to use (default 127.0.99): tracker .1, aria2 .2,
                    ctorrent .3, libtorrent client .4, ours .5 (its listener), rtorrent .6,
                    seeders .11 on
  --port-base P     ports: P tracker, P+2 to P+5 the clients as above, P+11.. seeders
                    (default 27000)
  --dir DIR         work directory (default: a new one under /tmp, removed at the end)
  --keep            keep the work directory (logs of every run, the swarm's files)
  --perf FILE       after the timed runs, one more `torrent download` (--peer) under
                    `perf record -e cpu-clock -g -o FILE`, and a summary of where its CPU went
  --timeout S       give up on a download after S seconds (default 300)
  --baseline BIN    also run BIN (another build of torrent) as client torrent-base, with the
                    same arguments as torrent; added to the clients when given
  --build DIR       meson build directory (default: build/ at the top of the repository)

Needs: /usr/bin/time (package time), opentracker, mktorrent, /usr/bin/python3 with
python3-libtorrent (for the seeders); aria2c and ctorrent for their rows (skipped with a note
when missing). Everything listens and connects on 127.0.0.0/8 only. Every process started here
is stopped by its PID at the end, on error and on Ctrl-C.
EOF
}

size_mib=1024
nseeders=8
piece_kib=256
reps=3
clients=torrent,torrent-tracker,aria2,ctorrent,libtorrent
net=127.0.99
port_base=27000
workdir=
keep=0
perf_out=
run_timeout=300
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
baseline=
cmdline="bench/download.sh${*:+ $*}"

while (($#)); do
	case $1 in
	--size) size_mib=$2; shift 2 ;;
	--seeders) nseeders=$2; shift 2 ;;
	--piece) piece_kib=$2; shift 2 ;;
	--big-pieces) piece_kib=1024; nseeders=4; shift ;;
	--reps) reps=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--net) net=$2; shift 2 ;;
	--port-base) port_base=$2; shift 2 ;;
	--dir) workdir=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--perf) perf_out=$2; shift 2 ;;
	--timeout) run_timeout=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--baseline) baseline=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

log() { printf '%s\n' "$*" >&2; }
die() { log "download.sh: $*"; exit 1; }

[[ $size_mib =~ ^[1-9][0-9]*$ ]] || die "--size wants a whole number of MiB"
[[ $nseeders =~ ^[1-9][0-9]*$ && $nseeders -le 200 ]] || die "--seeders wants 1 to 200"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive number"
[[ $net =~ ^127\.[0-9]+\.[0-9]+$ ]] || die "--net wants 127.B.C"
piece_log=0
for ((p = piece_kib * 1024; p > 1; p /= 2)); do piece_log=$((piece_log + 1)); done
((piece_kib >= 16 && 1 << piece_log == piece_kib * 1024)) ||
	die "--piece wants a power of two, 16 KiB or more"

TIME=/usr/bin/time
PY=/usr/bin/python3
bench=$root/bench
bench_name=download.sh
. "$bench/common.sh"
[[ -x $TIME ]] || die "needs GNU time at /usr/bin/time (apt-get install -y time)"
command -v opentracker >/dev/null || die "needs opentracker (apt-get install -y opentracker)"
command -v mktorrent >/dev/null || die "needs mktorrent (apt-get install -y mktorrent)"
$PY -c 'import libtorrent' 2>/dev/null ||
	die "needs python3-libtorrent for $PY (apt-get install -y python3-libtorrent)"

[[ -z $baseline || -x $baseline ]] || die "--baseline: '$baseline' is not an executable"
[[ -z $baseline || ,$clients, == *,torrent-base,* ]] || clients+=,torrent-base
IFS=, read -r -a want <<<"$clients"
run_clients=()
notes=()
for c in "${want[@]}"; do
	case $c in
	torrent | torrent-tracker | libtorrent) run_clients+=("$c") ;;
	torrent-base)
		[[ -n $baseline ]] || die "client torrent-base needs --baseline BIN"
		run_clients+=("$c") ;;
	aria2)
		if command -v aria2c >/dev/null; then run_clients+=(aria2)
		else notes+=("aria2c is not installed: no aria2 row"); fi ;;
	ctorrent)
		if command -v ctorrent >/dev/null; then run_clients+=(ctorrent)
		else notes+=("ctorrent is not installed: no ctorrent row"); fi ;;
	rtorrent)
		if [[ -x /usr/bin/rtorrent ]]; then run_clients+=(rtorrent)
		else notes+=("rtorrent is not installed: no rtorrent row"); fi ;;
	*) die "unknown client '$c'" ;;
	esac
done
((${#run_clients[@]})) || die "no client to run"

if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" "$root" --wrap-mode=nodownload >&2
fi
ninja -C "$build" torrent >&2 # only what we run: a half-edited test must not stop us
TORRENT=$build/torrent

# --- processes and cleanup ------------------------------------------------------------------

# Every background process started here, by PID. Cleanup stops them and their descendants
# (found by parent PID): TERM to the clients and seeders first, then to the tracker (so the
# seeders' "stopped" announces get an answer), KILL to whatever is left after 3 s.
# pids, descendants, stop_all and forget: bench/common.sh
cleaned=0
cleanup() {
	((cleaned)) && return
	cleaned=1
	local p rest=()
	for p in "${pids[@]}"; do [[ $p == "${tracker_pid:-}" ]] || rest+=("$p"); done
	((${#rest[@]})) && stop_all "${rest[@]}"
	[[ -n ${tracker_pid:-} ]] && stop_all "$tracker_pid"
	wait 2>/dev/null || true
	if [[ -n ${work:-} && -d $work ]]; then
		if ((keep)); then log "work directory kept: $work"; else rm -rf "$work"; fi
	fi
}
trap cleanup EXIT
trap 'log "download.sh: interrupted"; exit 130' INT TERM HUP

if [[ -n $workdir ]]; then
	mkdir -p "$workdir"
	work=$(cd "$workdir" && pwd)
	keep=1
else
	work=$(mktemp -d /tmp/bench-download.XXXXXX)
fi
chmod 755 "$work"
# a copy of our binary, so a rebuild by someone else in the middle of the run changes nothing
cp "$build/torrent" "$work/torrent"
[[ -z $baseline ]] || cp "$baseline" "$work/torrent-base"
TORRENT=$work/torrent
src_dir=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
	"$build/meson-info/meson-info.json" 2>/dev/null || echo "$root")
if [[ $(cd "$src_dir" && pwd -P) == $(cd "$root" && pwd -P) ]]; then
	tree_desc="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" --no-optional-locks diff --quiet HEAD -- src include 2>/dev/null || echo ' + uncommitted changes in src/ or include/')"
else
	tree_desc="the sources in $src_dir, built in $build"
fi

# --- the swarm -------------------------------------------------------------------------------

size=$((size_mib * 1048576))
tracker_ip=$net.1
tracker_port=$port_base
announce=http://$tracker_ip:$tracker_port/announce
mkdir -p "$work/seed"
data=$work/seed/data.bin
tor=$work/data.torrent

log "== generating $size_mib MiB of random data and the torrent ($piece_kib KiB pieces)"
head -c "$size" /dev/urandom >"$data"
sync "$data" # its writeback must not fall on the first runs
mktorrent -l "$piece_log" -t "$(nproc)" -a "$announce" -n data.bin -o "$tor" "$data" >/dev/null
hash=$("$TORRENT" info "$tor" | sed -n 's/^Info Hash: //p')
[[ $hash =~ ^[0-9a-f]{40}$ ]] || die "cannot read the info hash of $tor"
pieces=$(((size + piece_kib * 1024 - 1) / (piece_kib * 1024)))

log "== opentracker on $tracker_ip:$tracker_port, whitelisting $hash"
# It chroots to -d and drops to nobody: the directory must be searchable and the whitelist
# readable by everyone, and the -w path is relative to the directory.
mkdir -p "$work/tracker"
echo "$hash" >"$work/tracker/whitelist"
chmod 755 "$work/tracker"
chmod 644 "$work/tracker/whitelist"
opentracker -i "$tracker_ip" -p "$tracker_port" -P "$tracker_port" -d "$work/tracker" \
	-w whitelist </dev/null >"$work/tracker.log" 2>&1 &
pids+=($!)
tracker_pid=$!
esc_hash=$(sed 's/../%&/g' <<<"$hash")
for ((i = 0; ; i++)); do
	kill -0 "$tracker_pid" 2>/dev/null || { cat "$work/tracker.log" >&2; die "opentracker exited"; }
	if curl -sf --max-time 2 "http://$tracker_ip:$tracker_port/scrape?info_hash=$esc_hash" \
		-o "$work/scrape" 2>/dev/null && grep -q files "$work/scrape"; then break; fi
	((i < 100)) || die "opentracker does not answer a scrape"
	sleep 0.05
done

log "== $nseeders libtorrent seeders on $net.11 onwards"
seeder_pids=()
seeder_addrs=()
for ((i = 0; i < nseeders; i++)); do
	ip=$net.$((11 + i))
	port=$((port_base + 11 + i))
	$PY "$bench/seeder.py" "$tor" "$work/seed" "$ip" "$port" </dev/null \
		>"$work/seeder$i.log" 2>&1 &
	pids+=($!)
	seeder_pids+=($!)
	seeder_addrs+=("$ip:$port")
done
for ((i = 0; i < nseeders; i++)); do
	for ((t = 0; ; t++)); do
		grep -q '^ready' "$work/seeder$i.log" 2>/dev/null && break
		if ! kill -0 "${seeder_pids[i]}" 2>/dev/null || ((t > 600)); then
			cat "$work/seeder$i.log" >&2
			die "seeder ${seeder_addrs[i]} did not start"
		fi
		sleep 0.05
	done
done
curl -sf --max-time 2 "http://$tracker_ip:$tracker_port/scrape?info_hash=$esc_hash" -o "$work/scrape"
seeds_listed=$(sed -n 's/.*8:completei\([0-9]*\)e.*/\1/p' "$work/scrape")
[[ $seeds_listed == "$nseeders" ]] ||
	die "the tracker lists ${seeds_listed:-no} seeders, not $nseeders"

# --- one run ---------------------------------------------------------------------------------

clk_tck=$(getconf CLK_TCK)
seeders_ticks() {
	local p sum=0 f
	for p in "${seeder_pids[@]}"; do
		# fields 14 and 15 (utime, stime): the 12th and 13th after the ")" ending the name
		read -r -a f < <(sed 's/.*) //' "/proc/$p/stat")
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

# The ctorrent completion hook: ctorrent runs -X in a forked child of itself, through sh -c, so
# the hook walks up its ancestors and kills every ctorrent among them; SIGKILL, because after
# SIGTERM it still lingers ~15 s. Every piece is written by then (cmp checks it each run).
cat >"$work/ctorrent-done.sh" <<'EOF'
#!/bin/sh
p=$PPID
victims=
while [ "$p" -gt 1 ] && [ -r "/proc/$p/stat" ]; do
	[ "$(cat "/proc/$p/comm")" = ctorrent ] && victims="$victims $p"
	p=$(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f2)
done
[ -n "$victims" ] && kill -KILL $victims
EOF
chmod 755 "$work/ctorrent-done.sh"

peer_args=()
for a in "${seeder_addrs[@]}"; do peer_args+=(--peer "$a"); done
# ours listens for peers too: keep that on our own address and port where it can be told to
ours_listen=(-p $((port_base + 5)))
if "$TORRENT" download --help 2>&1 | grep -q -- '--listen'; then
	ours_listen+=(--listen "$net.5")
fi

# client_cmd CLIENT OUTDIR: the command line, in the array `cmd`; `watch` the files to poll
client_cmd() {
	local c=$1 out=$2
	case $c in
	torrent)
		cmd=("$TORRENT" download -o "$out/data.bin" "${peer_args[@]}" --no-tracker
			"${ours_listen[@]}" --progress=json "$tor")
		watch=("$out/data.bin.part" "$out/data.bin") ;;
	torrent-base)
		cmd=("$work/torrent-base" download -o "$out/data.bin" "${peer_args[@]}" --no-tracker
			"${ours_listen[@]}" --progress=json "$tor")
		watch=("$out/data.bin.part" "$out/data.bin") ;;
	torrent-tracker)
		cmd=("$TORRENT" download -o "$out/data.bin" "${ours_listen[@]}" --progress=json "$tor")
		watch=("$out/data.bin.part" "$out/data.bin") ;;
	aria2)
		cmd=(aria2c --no-conf --seed-time=0 --enable-dht=false --enable-dht6=false
			--bt-enable-lpd=false --enable-peer-exchange=false --file-allocation=none
			--bt-max-peers=0 --interface="$net.2" --listen-port=$((port_base + 2))
			--dir="$out" --console-log-level=warn --summary-interval=0 --allow-overwrite=true
			"$tor")
		watch=("$out/data.bin") ;;
	ctorrent)
		cmd=(ctorrent -e 0 -i "$net.3" -p $((port_base + 3)) -s data.bin
			-X "$work/ctorrent-done.sh" "$tor")
		watch=("$out/data.bin") ;;
	libtorrent)
		cmd=("$PY" "$bench/ltclient.py" "$tor" "$out" "$net.4" $((port_base + 4)))
		watch=("$out/data.bin") ;;
	rtorrent)
		cmd=("$PY" "$bench/realpeer.py" rtorrent "$tor" "$out" "$net.6" 300)
		watch=("$out/data.bin") ;;
	esac
}

results=$work/runs.tsv
: >"$results"

# run_one CLIENT REP: one download, one line in $results:
#   client rep ok wall user sys rss_kib first_byte first_on_disk all_data seeders_cpu
run_one() {
	local c=$1 rep=$2
	local out=$work/out/$c run=$work/run-$c-$rep
	mkdir -p "$run"
	# The previous run's output is deleted only now, just before this client starts: in this
	# VM, memory freed for a few seconds goes back to the host (virtio-balloon free page
	# reporting) and touching it again costs ~1.5 s of system time per GiB, charged to
	# whichever client writes there. Freed just before, the pages are still warm for everyone.
	rm -rf "$work/out"
	mkdir -p "$out"
	local cmd watch
	client_cmd "$c" "$out"

	# the outside observer of the output file, running before the client starts
	$PY "$bench/firstbyte.py" "$size" "$run/poll.ready" "${watch[@]}" </dev/null \
		>"$run/poll.out" 2>"$run/poll.err" &
	local poll=$!
	pids+=("$poll")
	local t
	for ((t = 0; t < 500; t++)); do [[ -e $run/poll.ready ]] && break; sleep 0.01; done

	local s0 s1 t0 t1 rc=0
	s0=$(seeders_ticks)
	t0=$EPOCHREALTIME
	(cd "$out" && exec "$TIME" -f '%e %U %S %M' -o "$run/time" \
		timeout -k 5 "$run_timeout" "${cmd[@]}" \
		</dev/null >"$run/stdout" 2>"$run/stderr") &
	local tp=$!
	pids+=("$tp")
	wait "$tp" || rc=$?
	forget "$tp"
	t1=$EPOCHREALTIME
	s1=$(seeders_ticks)
	# the observer exits by itself once it has seen the last byte; else it reports now
	kill -TERM "$poll" 2>/dev/null || true
	wait "$poll" 2>/dev/null || true
	forget "$poll"

	local ok=ok
	if ! cmp -s "$data" "$out/data.bin"; then
		ok=BAD
		log "   $c: output differs from the source (exit status $rc); its stderr:"
		tail -n 5 "$run/stderr" >&2
	elif ((rc != 0)) && [[ $c != ctorrent ]]; then
		ok="exit-$rc"
		log "   $c: exit status $rc; its stderr:"
		tail -n 5 "$run/stderr" >&2
	fi

	local wall user sys rss
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
	read -r _ user sys rss < <(tail -n 1 "$run/time")
	local pf pl first disk alldata
	pf=$(sed -n 's/.*first=\([0-9.]*\).*/\1/p' "$run/poll.out")
	pl=$(sed -n 's/.*last=\([0-9.]*\).*/\1/p' "$run/poll.out")
	disk=$(awk -v a="$t0" -v b="$pf" 'BEGIN {if (b == "") print "-"; else printf "%.3f", b - a}')
	alldata=$(awk -v a="$t0" -v b="$pl" 'BEGIN {if (b == "") print "-"; else printf "%.3f", b - a}')
	first=$disk
	case $c in
	torrent | torrent-tracker | torrent-base)
		# ours: first_byte from the JSON summary (seconds from the start of the torrent's
		# engine to the first block received); all data = the progress line that reached
		# the total (seconds since the command started)
		first=$(sed -n 's/.*"event":"summary".*"first_byte":\([0-9.]*\).*/\1/p' "$run/stderr")
		alldata=$(awk -v total="$size" '
			match($0, /"done":[0-9]+/) {
				d = substr($0, RSTART + 7, RLENGTH - 7)
				if (d + 0 == total && match($0, /"elapsed":[0-9.]+/)) {
					print substr($0, RSTART + 10, RLENGTH - 10); exit
				}
			}' "$run/stderr")
		[[ -n $first ]] || first=-
		[[ -n $alldata ]] || alldata=- ;;
	esac
	local scpu
	scpu=$(awk -v a="$s0" -v b="$s1" -v hz="$clk_tck" 'BEGIN {printf "%.2f", (b - a) / hz}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$rep" "$ok" "$wall" "$user" \
		"$sys" "$rss" "$first" "$disk" "$alldata" "$scpu" >>"$results"
	log "$(printf '   %-16s rep %d: %s, wall %6.2f s, CPU %5.2f s, RSS %4d MiB, first byte %s s, all data %s s, seeders CPU %s s' \
		"$c" "$rep" "$ok" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" \
		$((rss / 1024)) "$first" "$alldata" "$scpu")"
	sleep 0.5 # let the seeders see the disconnections before the next client
}

# --- the runs --------------------------------------------------------------------------------

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')
n=${#run_clients[@]}
# the first client, too, starts right after an output-sized file is deleted (see run_one)
mkdir -p "$work/out"
head -c "$size" /dev/zero >"$work/out/warm-up"
log "== $reps repetitions of: ${run_clients[*]}"
for ((r = 1; r <= reps; r++)); do
	for ((k = 0; k < n; k++)); do
		run_one "${run_clients[(k + r - 1) % n]}" "$r"
	done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the report ------------------------------------------------------------------------------

# median, med, fmt, ratio, nok: bench/common.sh

label() {
	case $1 in
	torrent) echo "**torrent** (--peer)" ;;
	torrent-tracker) echo "torrent (tracker)" ;;
	torrent-base) echo "torrent (baseline)" ;;
	aria2) echo "aria2c" ;;
	ctorrent) echo "ctorrent" ;;
	libtorrent) echo "libtorrent (python)" ;;
	rtorrent) echo "rtorrent" ;;
	esac
}

declare -A W CPU RSS FB DISK ALL SC
for c in "${run_clients[@]}"; do
	W[$c]=$(med "$c" '$4')
	CPU[$c]=$(med "$c" '$5 + $6')
	RSS[$c]=$(med "$c" '$7 / 1024')
	FB[$c]=$(med "$c" '$8')
	DISK[$c]=$(med "$c" '$9')
	ALL[$c]=$(med "$c" '$10')
	SC[$c]=$(med "$c" '$11')
done
ref=torrent
[[ -n ${W[torrent]:-} ]] || ref=${run_clients[0]}

# version, buildtype: bench/common.sh

echo "## Download: $size_mib MiB from $nseeders libtorrent seeders, $piece_kib KiB pieces"
echo
echo "- command: \`$cmdline\`"
echo "- date: $date_start; tree: $tree_desc (the binary was copied at the start)"
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r); load average at start $load_start, at the end $load_end"
echo "- build: $(buildtype) ($(version cc --version))"
echo "- others: libtorrent $($PY -c 'import libtorrent as lt; print(lt.__version__)'); $(command -v aria2c >/dev/null && version aria2c --version || echo 'aria2c not installed'); $(command -v ctorrent >/dev/null && (ctorrent -h 2>&1 | grep -m1 -i 'ctorrent' || true) || echo 'ctorrent not installed'); $(dpkg-query -W -f '${Package} ${Version}' opentracker 2>/dev/null || echo opentracker)"
echo "- swarm: $pieces pieces, info hash \`$hash\`, seeders on ${seeder_addrs[0]} … ${seeder_addrs[nseeders - 1]}, tracker $announce"
echo "- $reps repetitions, each running every client once, in turn (the first client rotating)"
for note in "${notes[@]}"; do echo "- note: $note"; done
echo
echo "| client | wall s | wall × ours | MB/s | first byte s | first data on disk s | all data s | transfer MB/s | CPU s | CPU × ours | peak RSS MiB | RSS × ours | seeders' CPU s | good runs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in "${run_clients[@]}"; do
	mbps=$(awk -v s="$size" -v w="${W[$c]}" 'BEGIN {if (w == "-") print "-"; else printf "%.0f", s / w / 1e6}')
	xfer=$(awk -v s="$size" -v a="${ALL[$c]}" -v f="${DISK[$c]}" -v g="${FB[$c]}" -v c="$c" 'BEGIN {
		if (c ~ /^torrent/) f = g  # ours: first_byte is from its engine start, as is "all data" near enough
		if (a == "-" || f == "-" || a - f <= 0) print "-"; else printf "%.0f", s / (a - f) / 1e6}')
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |\n' \
		"$(label "$c")" "$(fmt "${W[$c]}" %.2f)" "$(ratio "${W[$c]}" "${W[$ref]}")" \
		"$(fmt "$mbps" %s)" "$(fmt "${FB[$c]}" %.3f)" "$(fmt "${DISK[$c]}" %.3f)" \
		"$(fmt "${ALL[$c]}" %.2f)" "$(fmt "$xfer" %s)" "$(fmt "${CPU[$c]}" %.2f)" \
		"$(ratio "${CPU[$c]}" "${CPU[$ref]}")" "$(fmt "${RSS[$c]}" %.1f)" \
		"$(ratio "${RSS[$c]}" "${RSS[$ref]}")" "$(fmt "${SC[$c]}" %.2f)" "$(nok "$c")" "$reps"
done
cat <<EOF

Medians over the good runs (output identical to the source). The × columns are theirs / ours
(above 1: we are faster, leaner or smaller). MB/s = $size bytes / wall time, in 10^6 bytes/s.
- **wall**: from launch to exit, bash's EPOCHREALTIME around \`/usr/bin/time\`; **CPU**: user +
  sys of the client and its children (GNU time's %U + %S; for libtorrent the whole python3
  process); **peak RSS**: GNU time's %M (libtorrent maps the file, so its RSS counts the mapped
  pages of the download).
- **first byte**: ours from its JSON summary (\`first_byte\`: from the start of its engine, after
  the torrent is parsed and the output created, to the first block received); the others have
  no such report, so for them it is the **first data on disk** column.
- **first data on disk**: seconds from launch until the output file holds downloaded data, seen
  from outside by \`bench/firstbyte.py\` polling every 2 ms: allocated blocks
  (st_blocks) and then a non-zero byte inside a data region (SEEK_DATA/SEEK_HOLE; the payload
  is random). Blocks reserved by fallocate (ours) are holes to SEEK_DATA on ext4, so they do
  not count. A client that writes only verified pieces (ours, ctorrent) shows up one piece
  later than one that writes blocks as they arrive, and python start-up counts for libtorrent.
- **all data**: when the last byte is in place; ours from its progress line that reaches the
  total (seconds since the command started), the others from the same observer: the moment the
  file's allocated size reaches the torrent's size. **transfer MB/s** = size / (all data − first
  byte). The difference between wall and all data is each client's ending: for ours, fsync of
  the output (and, through the tracker, the stopped announce); for aria2 its shutdown; for
  libtorrent its session teardown; ctorrent is killed by its completion hook.
- **seeders' CPU**: the sum over all seeders of their utime + stime growth during the run
  (/proc/PID/stat); it shows how hard each client makes the other side work.
EOF

# the issue's targets, against the fastest / leanest of the other clients in this run
others=()
for c in "${run_clients[@]}"; do [[ $c == torrent* ]] || others+=("$c"); done
if [[ -n ${W[torrent]:-} && ${#others[@]} -gt 0 ]]; then
	best_w=- best_c=- best_wn='' best_cn=''
	for c in "${others[@]}"; do
		if [[ ${W[$c]} != - ]] && { [[ $best_w == - ]] || awk -v a="${W[$c]}" -v b="$best_w" 'BEGIN {exit !(a < b)}'; }; then best_w=${W[$c]}; best_wn=$c; fi
		if [[ ${CPU[$c]} != - ]] && { [[ $best_c == - ]] || awk -v a="${CPU[$c]}" -v b="$best_c" 'BEGIN {exit !(a < b)}'; }; then best_c=${CPU[$c]}; best_cn=$c; fi
	done
	verdict() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-") print "–"; else print (a <= b) ? "**met**" : "**not met**"}'; }
	lim_w=$(awk -v b="$best_w" 'BEGIN {if (b == "-") print "-"; else printf "%.2f", 0.8 * b}')
	lim_c=$(awk -v b="$best_c" 'BEGIN {if (b == "-") print "-"; else printf "%.2f", 0.6 * b}')
	echo
	echo "Targets from the issue (ours = the \`--peer\` row):"
	echo
	echo "| target | limit | ours | verdict |"
	echo "|---|---:|---:|---|"
	echo "| wall ≤ 0.8 × the fastest other ($best_wn, $(fmt "$best_w" %.2f) s) | $(fmt "$lim_w" %.2f) s | $(fmt "${W[torrent]}" %.2f) s | $(verdict "${W[torrent]}" "$lim_w") |"
	echo "| time to first byte ≤ 0.3 s with --peer | 0.300 s | $(fmt "${FB[torrent]}" %.3f) s | $(verdict "${FB[torrent]}" 0.3) |"
	echo "| CPU ≤ 0.6 × the lowest other ($best_cn, $(fmt "$best_c" %.2f) s) | $(fmt "$lim_c" %.2f) s | $(fmt "${CPU[torrent]}" %.2f) s | $(verdict "${CPU[torrent]}" "$lim_c") |"
	echo "| peak RSS ≤ 32 MiB | 32.0 MiB | $(fmt "${RSS[torrent]}" %.1f) MiB | $(verdict "${RSS[torrent]}" 32) |"
fi

echo
echo "<details><summary>Every run</summary>"
echo
echo "| client | rep | result | wall s | user s | sys s | peak RSS MiB | first byte s | first data on disk s | all data s | seeders' CPU s |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 / 1024, $8, $9, $10, $11}' "$results"
echo
echo "</details>"

# --- an optional profile of ours ---------------------------------------------------------------

if [[ -n $perf_out ]]; then
	log "== one more download of ours under perf record -e cpu-clock -g"
	out=$work/out/perf
	rm -rf "$work/out" # just before, as in run_one
	mkdir -p "$out"
	perf record -q -e cpu-clock -g -o "$perf_out" -- "$TORRENT" download -o "$out/data.bin" \
		"${peer_args[@]}" --no-tracker "${ours_listen[@]}" --quiet "$tor" >&2 2>"$work/perf.log" ||
		die "perf record failed: $(tail -n 3 "$work/perf.log")"
	cmp -s "$data" "$out/data.bin" || log "   perf run: output differs from the source"
	rm -rf "$out"
	echo
	total_ms=$(perf report -i "$perf_out" --stdio --sort dso 2>/dev/null |
		sed -n 's/^# Event count (approx.): \([0-9]*\).*/\1/p' | awk '{printf "%.0f", $1 / 1e6}')
	echo "### perf: where \`torrent download\` spends its CPU (cpu-clock, ${total_ms} ms sampled)"
	echo
	echo "By object (self):"
	echo
	echo '```'
	perf report -i "$perf_out" --no-children --sort dso --stdio 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 8
	echo '```'
	echo
	echo "Inclusive, for the system calls and faults that carry the data (children included):"
	echo
	echo '```'
	perf report -i "$perf_out" --children --sort sym --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9.]+%' |
		grep -E '\] (__libc_pwrite|__GI___readv|__GI___writev|asm_exc_page_fault|fsync|fallocate64|__brk|epoll_wait|__x64_sys_munmap)$' || true
	echo '```'
	echo
	echo "Top symbols (self; libcrypto has no symbols here, its addresses are summed into one line,"
	echo "which is SHA-1):"
	echo
	echo '```'
	perf report -i "$perf_out" --no-children --sort dso,sym --stdio 2>/dev/null |
		grep -E '^ +[0-9.]+%' | awk '
		$2 ~ /libcrypto/ && $4 ~ /^0x/ {crypto += $1; next}
		{sub(/%/, "", $1); printf "%7.2f%%  %-28s %s\n", $1, $2, $4; n++}
		END {printf "%7.2f%%  %-28s %s\n", crypto, "libcrypto.so.3", "(unnamed addresses: SHA-1)"}' |
		sort -rn | head -n 25
	echo '```'
fi
