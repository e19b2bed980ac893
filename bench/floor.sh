#!/usr/bin/env bash
# floor.sh: what any client pays on this machine for a download, whatever its design: hashing
# the data (SHA-1, as `openssl speed -evp sha1` does it), receiving it over loopback TCP (a bare
# recv loop into one buffer, the data discarded), writing it through the page cache (dd), and
# making it durable (dd with fdatasync: the disk). Issue 15's CPU and wall targets are measured
# against these; a client's CPU above SHA-1 + receive + write is its own work.
# Everything stays on 127.0.0.1; the file written is removed.
set -euo pipefail
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bench/floor.sh [--size MiB] [--reps R]

  --size MiB   data per measurement (default 1024)
  --reps R     repetitions; medians are shown (default 3)
Writes into $TMPDIR (default /tmp).
EOF
}
root=$(cd "$(dirname "$0")/.." && pwd)
bench_name=floor.sh
. "$root/bench/common.sh"
size_mib=1024 reps=3
while (($#)); do
	case $1 in
	--size) size_mib=${2:?}; shift ;;
	--reps) reps=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) bench_die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
bench_check_numbers "$size_mib" "$reps"
((size_mib > 0 && reps > 0)) || bench_die "--size and --reps must be above 0"
bench_need /usr/bin/python3 /usr/bin/openssl /usr/bin/dd
file=${TMPDIR:-/tmp}/floor-$$.bin
trap 'rm -f "$file"' EXIT

# sha1: CPU-s for the size, from openssl's rate on 16 KiB blocks
sha1() {
	openssl speed -evp sha1 -bytes 16384 -seconds 2 2>/dev/null |
		awk -v mib="$size_mib" '$1 == "sha1" {r = $NF; sub(/k$/, "", r);
			printf "%.3f\n", mib * 1048576 / (r * 1000)}'
}

# recv: "user sys" of a process receiving the size over one loopback connection
recv() {
	/usr/bin/python3 - "$size_mib" <<'PY'
import os, resource, socket, sys
n = int(sys.argv[1]) << 20
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(1)
pid = os.fork()
if pid == 0:
    c = socket.create_connection(srv.getsockname())
    buf, sent = bytes(1 << 20), 0
    while sent < n:
        sent += c.send(buf[:min(len(buf), n - sent)])
    c.close()
    os._exit(0)
conn, _ = srv.accept()
mv, got = memoryview(bytearray(256 << 10)), 0
r0 = resource.getrusage(resource.RUSAGE_SELF)
while got < n:
    k = conn.recv_into(mv)
    if not k:
        break
    got += k
r1 = resource.getrusage(resource.RUSAGE_SELF)
os.waitpid(pid, 0)
if got != n:
    sys.exit('floor.sh: received %d of %d bytes' % (got, n))
print('%.3f %.3f' % (r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime))
PY
}

# write [fdatasync]: "wall user sys" of dd writing the size into a new file
write() {
	rm -f "$file"
	local out
	out=$({ /usr/bin/time -f '%e %U %S' dd if=/dev/zero of="$file" bs=256K \
		count=$((size_mib * 4)) ${1:+conv=fdatasync} status=none; } 2>&1)
	rm -f "$file"
	echo "$out"
}

declare -a s r_user r_sys w_wall w_sys d_wall
for ((i = 0; i < reps; i++)); do
	s+=("$(sha1)")
	read -r u y < <(recv)
	r_user+=("$u") r_sys+=("$y")
	read -r wa _ sy < <(write)
	w_wall+=("$wa") w_sys+=("$sy")
	read -r wa _ _ < <(write fdatasync)
	d_wall+=("$wa")
done
sha=$(printf "%s\n" "${s[@]}" | median)
rs=$(printf "%s\n" "${r_sys[@]}" | median)
ws=$(printf "%s\n" "${w_sys[@]}" | median)
echo "$size_mib MiB, medians of $reps; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| what | CPU s | wall s |"
echo "|---|---:|---:|"
echo "| SHA-1 (openssl speed -evp sha1, 16 KiB blocks) | $sha | |"
echo "| receive over loopback TCP (bare recv loop): user + system | $(printf "%s\n" "${r_user[@]}" | median) + $rs | |"
echo "| write through the page cache (dd bs=256K): system | $ws | $(printf "%s\n" "${w_wall[@]}" | median) |"
echo "| write and fdatasync (dd conv=fdatasync) | | $(printf "%s\n" "${d_wall[@]}" | median) |"
awk -v a="$sha" -v b="$rs" -v c="$ws" 'BEGIN {
	printf "\nfloor for a client that hashes, receives and writes through the page cache: %.2f CPU-s = %.2f x SHA-1\n",
		a + b + c, (a + b + c) / a }'
