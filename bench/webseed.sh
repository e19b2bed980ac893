#!/usr/bin/env bash
# webseed.sh: one file from one local HTTP server, by curl and by three BitTorrent clients that
# take it from the same server as a web seed (BEP 19): ours, aria2c and libtorrent.
#
# The server is a real one that honours Range (nginx by default; lighttpd or busybox httpd with
# --server) on 127.0.0.1, serving a random file of S MiB. The torrent (made by our `torrent
# create`) has that URL as its url-list and no tracker, so the BitTorrent clients have no peer:
# every byte comes from the web seed. For each of R repetitions every client downloads the file
# once, in turn (the starting client rotates), into a fresh directory that is compared with the
# source (cmp) and deleted just before the next client starts.
#
# Clients (--clients, comma-separated):
#   curl          curl -o FILE URL: the reference, one connection, no verification
#   curl-sync     the same, then `sync FILE` (an fsync): durable on disk, as ours is at its end
#   disk          no network: dd of as many zero bytes into the same directory with
#                 conv=fdatasync, the disk's own durable-write time (a floor for any client
#                 that makes the download durable, as ours does)
#   torrent       ours: torrent download --no-dht
#   aria2         aria2c on the torrent (DHT, LPD and PEX off: the web seed only)
#   libtorrent    bench/ltclient.py (python3-libtorrent) on the torrent
#   torrent-base  another build of ours (--baseline BIN), run exactly like `torrent`
#
# Measured for every run: wall time (bash EPOCHREALTIME around GNU time), CPU (user + sys of the
# client and its children) and peak RSS from /usr/bin/time, the server's CPU (utime + stime,
# children included, from /proc/PID/stat) and the CPU the rest of the machine used meanwhile
# (busy time from /proc/stat less the client's and the server's): the machine is shared, and a
# run with a busy neighbour shows here. For ours, when strace is installed, the time of its
# fsync of the output (strace --seccomp-bpf -e trace=fsync -T: only that call is stopped), so
# that the transfer can be told from the disk's writeback. Each is reported as a median and as a ratio to curl's.
# The markdown report goes to standard output, progress to standard error. Nothing here passes
# or fails on a number; the issue's goal (our wall within 10% of curl's) is printed with its
# verdict for this run.
set -euo pipefail
export TORRENT_DHT_BOOTSTRAP=none XDG_STATE_HOME=${TMPDIR:-/tmp}/torrent-bench-state
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bench/webseed.sh [options]

  --size MiB        size of the random file (default 1024)
  --piece KiB       piece size, a power of two from 16 (default 256)
  --reps R          repetitions; every client runs once in each (default 3)
  --clients LIST    comma-separated, from: curl, curl-sync, disk, torrent, aria2, libtorrent
                    (default: all five; curl is always added, it is the reference)
  --server NAME     nginx, lighttpd or busybox (default nginx)
  --port P          the server's port on 127.0.0.1; P+2, P+4, P+5 for aria2c, libtorrent
                    and ours (default 28800)
  --baseline BIN    also run BIN (another build of torrent) as client torrent-base
  --perf FILE       after the timed runs, one more `torrent download` under
                    `perf record -e cpu-clock -g -o FILE`, and where its CPU went
  --timeout S       give up on a download after S seconds (default 300)
  --keep            keep the work directory (under /tmp)
  --build DIR       meson build directory (default: build/ at the top of the repository)

Needs: /usr/bin/time (package time), the server (nginx-light, lighttpd or busybox), curl;
aria2c and /usr/bin/python3 with python3-libtorrent for their rows (skipped with a note when
missing). Everything listens and connects on 127.0.0.1 only; every process started here is
stopped by its PID at the end, on error and on Ctrl-C. The work directory is under /tmp.
EOF
}

size_mib=1024
piece_kib=256
reps=3
clients=curl,curl-sync,disk,torrent,aria2,libtorrent
server=nginx
port=28800
baseline=
perf_out=
run_timeout=300
keep=0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
cmdline="bench/webseed.sh${*:+ $*}"

log() { printf '%s\n' "$*" >&2; }
die() { log "webseed.sh: $*"; exit 1; }

while (($#)); do
	case $1 in
	--size) size_mib=${2:?}; shift 2 ;;
	--piece) piece_kib=${2:?}; shift 2 ;;
	--reps) reps=${2:?}; shift 2 ;;
	--clients) clients=${2:?}; shift 2 ;;
	--server) server=${2:?}; shift 2 ;;
	--port) port=${2:?}; shift 2 ;;
	--baseline) baseline=${2:?}; shift 2 ;;
	--perf) perf_out=${2:?}; shift 2 ;;
	--timeout) run_timeout=${2:?}; shift 2 ;;
	--keep) keep=1; shift ;;
	--build) build=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

[[ $size_mib =~ ^[1-9][0-9]*$ ]] || die "--size: '$size_mib' is not a whole number of MiB"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps: '$reps' is not a positive number"
[[ $port =~ ^[1-9][0-9]*$ && $port -le 65530 ]] || die "--port: '$port' is not a port below 65531"
[[ $run_timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout: '$run_timeout' is not a number of seconds"
[[ $piece_kib =~ ^[1-9][0-9]*$ && $piece_kib -ge 16 && $((piece_kib & (piece_kib - 1))) -eq 0 ]] ||
	die "--piece: '$piece_kib' is not a power of two from 16"
case $server in
nginx) server_bin=$(command -v nginx || echo /usr/sbin/nginx); pkg=nginx-light ;;
lighttpd) server_bin=$(command -v lighttpd || echo /usr/sbin/lighttpd); pkg=lighttpd ;;
busybox) server_bin=$(command -v busybox || echo /usr/bin/busybox); pkg=busybox ;;
*) die "--server: '$server' is not one of nginx, lighttpd, busybox" ;;
esac
[[ -x $server_bin ]] || die "--server $server: not installed (apt-get install -y $pkg)"

TIME=/usr/bin/time
PY=/usr/bin/python3
bench=$root/bench
bench_name=webseed.sh
. "$bench/common.sh"
[[ -x $TIME ]] || die "needs GNU time at /usr/bin/time (apt-get install -y time)"
command -v curl >/dev/null || die "needs curl"
[[ -z $baseline || -x $baseline ]] || die "--baseline: '$baseline' is not an executable"

IFS=, read -r -a want <<<"curl,$clients${baseline:+,torrent-base}"
run_clients=()
notes=()
for c in "${want[@]}"; do
	[[ " ${run_clients[*]} " == *" $c "* ]] && continue
	case $c in
	curl | curl-sync | disk | torrent) run_clients+=("$c") ;;
	torrent-base)
		[[ -n $baseline ]] || die "client torrent-base needs --baseline BIN"
		run_clients+=("$c") ;;
	aria2)
		if command -v aria2c >/dev/null; then run_clients+=(aria2)
		else notes+=("aria2c is not installed: no aria2 row"); fi ;;
	libtorrent)
		if $PY -c 'import libtorrent' 2>/dev/null; then run_clients+=(libtorrent)
		else notes+=("python3-libtorrent is not installed: no libtorrent row"); fi ;;
	*) die "--clients: unknown client '$c'" ;;
	esac
done

if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" "$root" --wrap-mode=nodownload >&2
fi
ninja -C "$build" torrent >&2 # only what we run: a half-edited test must not stop us

# --- processes and cleanup ------------------------------------------------------------------

# pids, descendants, stop_all and forget: bench/common.sh
cleaned=0
cleanup() {
	((cleaned)) && return
	cleaned=1
	((${#pids[@]})) && stop_all "${pids[@]}"
	wait 2>/dev/null || true
	if [[ -n ${work:-} && -d $work ]]; then
		if ((keep)); then log "work directory kept: $work"; else rm -rf "$work"; fi
	fi
}
trap cleanup EXIT
trap 'log "webseed.sh: interrupted"; exit 130' INT TERM HUP

work=$(mktemp -d /tmp/bench-webseed.XXXXXX)
chmod 755 "$work" # nginx's worker runs as nobody and must reach the file
# a copy of our binary, so a rebuild by someone else in the middle of the run changes nothing
cp "$build/torrent" "$work/torrent"
[[ -z $baseline ]] || cp "$baseline" "$work/torrent-base"
tree_desc="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" --no-optional-locks diff --quiet HEAD -- src include 2>/dev/null || echo ' + uncommitted changes in src/ or include/')"

# --- the file, the server, the torrent -------------------------------------------------------

size=$((size_mib * 1048576))
www=$work/www
data=$www/data.bin
url=http://127.0.0.1:$port/data.bin
tor=$work/data.torrent
mkdir -p "$www"
chmod 755 "$www"
log "== generating $size_mib MiB of random data"
head -c "$size" /dev/urandom >"$data"
chmod 644 "$data"
sync "$data" # its writeback must not fall on the first runs

log "== $server on 127.0.0.1:$port"
curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null &&
	die "something already listens on 127.0.0.1:$port (use --port)"
case $server in
nginx)
	mkdir -p "$work/nginx"
	cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	server { listen 127.0.0.1:$port; root $www; }
}
EOF
	server_cmd=("$server_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log") ;;
lighttpd)
	cat >"$work/lighttpd.conf" <<EOF
server.document-root = "$www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$work/lighttpd.log"
EOF
	server_cmd=("$server_bin" -D -f "$work/lighttpd.conf") ;;
busybox)
	server_cmd=("$server_bin" httpd -f -p "127.0.0.1:$port" -h "$www") ;;
esac
"${server_cmd[@]}" </dev/null >"$work/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
for ((i = 0; ; i++)); do
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "$server exited"; }
	curl -sf --max-time 2 -r 0-0 -o /dev/null "$url" 2>/dev/null && break
	((i < 100)) || die "$server does not answer on $url"
	sleep 0.05
done
got=$(curl -sf --max-time 5 -r 1-4 "$url" | od -An -tx1 | tr -d ' \n')
want_bytes=$(head -c 5 "$data" | tail -c 4 | od -An -tx1 | tr -d ' \n')
[[ $got == "$want_bytes" ]] || die "$server does not honour Range on $url"

log "== the torrent ($piece_kib KiB pieces, url-list $url, no tracker)"
"$work/torrent" create -q -l $((piece_kib * 1024)) -w "$url" -o "$tor" "$data" >/dev/null
pieces=$(((size + piece_kib * 1024 - 1) / (piece_kib * 1024)))

# --- one run ---------------------------------------------------------------------------------

clk_tck=$(getconf CLK_TCK)
# proc_ticks PID...: utime + stime + cutime + cstime of each and its live descendants
proc_ticks() {
	local p sum=0 f
	for p in $(for q in "$@"; do descendants "$q"; echo "$q"; done); do
		# fields 14 to 17: the 12th to 15th after the ")" ending the name
		read -r -a f < <(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || echo)
		((${#f[@]} > 14)) && sum=$((sum + f[11] + f[12] + f[13] + f[14]))
	done
	echo "$sum"
}
# busy_ticks: the whole machine's non-idle time (user nice system irq softirq steal)
busy_ticks() {
	awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

# client_cmd CLIENT OUTDIR: the command line, in the array `cmd`
client_cmd() {
	local c=$1 out=$2
	case $c in
	curl) cmd=(curl -sS -f -o "$out/data.bin" "$url") ;;
	curl-sync)
		# shellcheck disable=SC2016
		cmd=(sh -c 'curl -sS -f -o "$1" "$2" && sync "$1"' sh "$out/data.bin" "$url") ;;
	disk)
		# Zeros, not the data: its bytes are not compared (see check_output).
		cmd=(dd if=/dev/zero of="$out/data.bin" bs=1M count="$size_mib" conv=fdatasync
			status=none) ;;
	torrent | torrent-base)
		cmd=("${fsync_trace[@]}" "$work/$c" download --no-dht -o "$out/data.bin"
			-p $((port + 5)) --listen 127.0.0.1 "$tor") ;;
	aria2)
		cmd=(aria2c --no-conf --seed-time=0 --enable-dht=false --enable-dht6=false
			--bt-enable-lpd=false --enable-peer-exchange=false --file-allocation=none
			--listen-port=$((port + 2)) --dir="$out" --console-log-level=warn
			--summary-interval=0 --allow-overwrite=true "$tor") ;;
	libtorrent)
		cmd=("$PY" "$bench/ltclient.py" "$tor" "$out" 127.0.0.1 $((port + 4))) ;;
	esac
}

results=$work/runs.tsv
: >"$results"

fsync_trace=()
command -v strace >/dev/null && fsync_trace=(strace -f --seccomp-bpf -qq -e trace=fsync -T -o "$work/fsync.trace")

# run_one CLIENT REP: one download, one line in $results:
#   client rep ok wall user sys rss_kib server_cpu others_cpu fsync
run_one() {
	local c=$1 rep=$2
	local out=$work/out/$c run=$work/run-$c-$rep
	mkdir -p "$run"
	# The previous output is deleted only now, just before this client starts (see
	# bench/download.sh: memory freed for seconds goes back to the host, and touching it
	# again costs system time charged to whoever writes there next).
	rm -rf "$work/out"
	mkdir -p "$out"
	local cmd
	client_cmd "$c" "$out"
	rm -f "$work/fsync.trace"

	local s0 s1 b0 b1 t0 t1 rc=0
	s0=$(proc_ticks "$server_pid")
	b0=$(busy_ticks)
	t0=$EPOCHREALTIME
	(cd "$out" && exec "$TIME" -f '%e %U %S %M' -o "$run/time" \
		timeout -k 5 "$run_timeout" "${cmd[@]}" \
		</dev/null >"$run/stdout" 2>"$run/stderr") &
	local tp=$!
	pids+=("$tp")
	wait "$tp" || rc=$?
	forget "$tp"
	t1=$EPOCHREALTIME
	b1=$(busy_ticks)
	s1=$(proc_ticks "$server_pid")

	local ok=ok
	if [[ $c == disk ]] && (($(stat -c %s "$out/data.bin" 2>/dev/null || echo 0) != size)); then
		ok=BAD
		log "   disk: dd wrote a file of the wrong size"
	elif [[ $c != disk ]] && ! cmp -s "$data" "$out/data.bin"; then
		ok=BAD
		log "   $c: output differs from the source (exit status $rc); its stderr:"
		tail -n 5 "$run/stderr" >&2
	elif ((rc != 0)); then
		ok="exit-$rc"
		log "   $c: exit status $rc; its stderr:"
		tail -n 5 "$run/stderr" >&2
	fi
	local wall user sys rss scpu ocpu
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
	read -r _ user sys rss < <(tail -n 1 "$run/time")
	scpu=$(awk -v a="$s0" -v b="$s1" -v hz="$clk_tck" 'BEGIN {printf "%.2f", (b - a) / hz}')
	ocpu=$(awk -v a="$b0" -v b="$b1" -v hz="$clk_tck" -v u="$user" -v s="$sys" -v sc="$scpu" \
		'BEGIN {o = (b - a) / hz - u - s - sc; printf "%.2f", o < 0 ? 0 : o}')
	# the output's fsync (the longest one: a state file's is short)
	local fs=-
	[[ -f $work/fsync.trace ]] &&
		fs=$(sed -n 's/.*fsync(.*<\([0-9.]*\)>$/\1/p' "$work/fsync.trace" | sort -g | tail -n 1)
	[[ -n $fs ]] || fs=-
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$rep" "$ok" "$wall" "$user" "$sys" \
		"$rss" "$scpu" "$ocpu" "$fs" >>"$results"
	log "$(printf '   %-12s rep %d: %s, wall %6.2f s, CPU %5.2f s, RSS %5.1f MiB, server CPU %s s, rest of the machine %s s, fsync %s s' \
		"$c" "$rep" "$ok" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" \
		"$(awk -v r="$rss" 'BEGIN {print r / 1024}')" "$scpu" "$ocpu" "$fs")"
}

# --- the runs --------------------------------------------------------------------------------

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')
n=${#run_clients[@]}
mkdir -p "$work/out"
head -c "$size" /dev/zero >"$work/out/warm-up" # the first client too starts after a delete
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
	curl) echo "curl -o" ;;
	curl-sync) echo "curl -o, then sync FILE" ;;
	disk) echo "disk: dd conv=fdatasync (no network)" ;;
	torrent) echo "**torrent** (web seed)" ;;
	torrent-base) echo "torrent (baseline)" ;;
	aria2) echo "aria2c (web seed)" ;;
	libtorrent) echo "libtorrent (python, web seed)" ;;
	esac
}
# version, buildtype: bench/common.sh

declare -A W CPU RSS SCPU OCPU FS WNF
for c in "${run_clients[@]}"; do
	W[$c]=$(med "$c" '$4')
	CPU[$c]=$(med "$c" '$5 + $6')
	RSS[$c]=$(med "$c" '$7 / 1024')
	SCPU[$c]=$(med "$c" '$8')
	OCPU[$c]=$(med "$c" '$9')
	FS[$c]=$(med "$c" '$10')
	WNF[$c]=$(med "$c" '($10 == "-" ? "-" : $4 - $10)')
done

echo "## Web seed: $size_mib MiB from one local $server, $piece_kib KiB pieces"
echo
echo "- command: \`$cmdline\`"
echo "- date: $date_start; tree: $tree_desc (the binary was copied at the start)"
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r); load average at start $load_start, at the end $load_end"
echo "- build: $(buildtype) ($(version cc --version))"
echo "- server: $(version "${server_cmd[0]}" -v) $([[ $server == busybox ]] && echo httpd); $url"
echo "- others: $(version curl --version); $(command -v aria2c >/dev/null && version aria2c --version || echo 'aria2c not installed'); libtorrent $($PY -c 'import libtorrent as lt; print(lt.__version__)' 2>/dev/null || echo 'not installed')"
echo "- torrent: $pieces pieces, url-list $url, no tracker; $reps repetitions, each running every client once, in turn (the first client rotating)"
for note in "${notes[@]}"; do echo "- note: $note"; done
echo
echo "| client | wall s | wall × curl | MB/s | fsync s | wall − fsync × curl | CPU s | CPU × curl | peak RSS MiB | RSS × curl | server CPU s | rest of the machine CPU s | good runs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in "${run_clients[@]}"; do
	mbps=$(awk -v s="$size" -v w="${W[$c]}" 'BEGIN {if (w == "-") print "-"; else printf "%.0f", s / w / 1e6}')
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |\n' \
		"$(label "$c")" "$(fmt "${W[$c]}" %.2f)" "$(ratio "${W[$c]}" "${W[curl]}")" \
		"$(fmt "$mbps" %s)" "$(fmt "${FS[$c]}" %.2f)" "$(ratio "${WNF[$c]}" "${W[curl]}")" \
		"$(fmt "${CPU[$c]}" %.2f)" "$(ratio "${CPU[$c]}" "${CPU[curl]}")" \
		"$(fmt "${RSS[$c]}" %.1f)" "$(ratio "${RSS[$c]}" "${RSS[curl]}")" \
		"$(fmt "${SCPU[$c]}" %.2f)" "$(fmt "${OCPU[$c]}" %.2f)" "$(nok "$c")" "$reps"
done
cat <<EOF

Medians over the good runs (output identical to the source, cmp). The × columns are the
client's / curl's (above 1: slower, more CPU, more memory than curl). MB/s = $size bytes /
wall time, in 10^6 bytes/s.
- **wall**: launch to exit (bash's EPOCHREALTIME around \`/usr/bin/time\`); ours includes
  hashing every piece and the fsync and rename at the end; curl verifies nothing.
- **CPU**: user + sys of the client (GNU time's %U + %S; libtorrent's is the whole python3
  process); **peak RSS**: GNU time's %M (libtorrent maps the file, so its RSS counts the
  mapped pages of the download).
- **fsync**: ours only (strace); the median of the time its fsync of the output took, and the
  median of wall less that over curl's wall: the transfer and verification alone. The
  \`curl-sync\` row is curl made to do the same durable write.
- **server CPU**: the server process and its children during the run (/proc/PID/stat).
- **rest of the machine**: busy CPU time of the whole machine during the run (/proc/stat)
  less the client's and the server's: what other people's work took from the 2 cores.
EOF
if [[ ${W[torrent]:-} && ${W[curl]:-} && ${W[torrent]} != - && ${W[curl]} != - ]]; then
	lim=$(awk -v c="${W[curl]}" 'BEGIN {printf "%.2f", 1.1 * c}')
	verdict=$(awk -v a="${W[torrent]}" -v b="$lim" 'BEGIN {print (a <= b) ? "**met**" : "**not met**"}')
	echo
	echo "The issue's goal: our wall within 10% of curl's ($(fmt "${W[curl]}" %.2f) s): at most $lim s; ours $(fmt "${W[torrent]}" %.2f) s: $verdict."
	if [[ ${WNF[torrent]} != - ]]; then
		v2=$(awk -v a="${WNF[torrent]}" -v b="$lim" 'BEGIN {print (a <= b) ? "met" : "not met"}')
		echo "Without our fsync (which curl does not do): $(fmt "${WNF[torrent]}" %.2f) s, $v2."
	fi
fi
echo
echo "<details><summary>Every run</summary>"
echo
echo "| client | rep | result | wall s | user s | sys s | peak RSS MiB | server CPU s | rest of the machine CPU s | fsync s |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 / 1024, $8, $9, $10}' "$results"
echo
echo "</details>"

# --- an optional profile of ours ---------------------------------------------------------------

if [[ -n $perf_out ]]; then
	log "== one more download of ours under perf record -e cpu-clock -g"
	rm -rf "$work/out"
	mkdir -p "$work/out/perf"
	perf record -q -e cpu-clock -g -o "$perf_out" -- "$work/torrent" download --no-dht \
		-o "$work/out/perf/data.bin" -p $((port + 5)) --listen 127.0.0.1 --quiet "$tor" \
		>"$work/perf.log" 2>&1 || die "perf record failed: $(tail -n 3 "$work/perf.log")"
	cmp -s "$data" "$work/out/perf/data.bin" || log "   perf run: output differs from the source"
	rm -rf "$work/out"
	echo
	echo "### perf: where \`torrent download\` spends its CPU (cpu-clock)"
	echo
	echo "By object (self):"
	echo
	echo '```'
	perf report -i "$perf_out" --no-children --sort dso --stdio 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 8
	echo '```'
	echo
	echo "Top symbols (self):"
	echo
	echo '```'
	perf report -i "$perf_out" --no-children --sort dso,sym --stdio 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 25
	echo '```'
fi
