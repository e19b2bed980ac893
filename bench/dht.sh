#!/usr/bin/env bash
# dht.sh: how fast a trackerless magnet opens through the DHT, ours side by side with libtorrent
# and aria2c (issue 12).
#
# The network, all on 127.0.0.0/8: N python3-libtorrent DHT nodes (default 50; in processes of
# up to 25 sessions, tests/integration/dhtnodes.py), each on its own address, bootstrapped one
# after the other from nodes already up; one of them seeds a payload and announces it into the
# DHT. Every client opens the same magnet (xt and dn only: no tracker, no peer) knowing only one
# DHT node (a different one each run), interleaved (the first client rotates from one
# repetition to the next), each into a fresh directory.
#
# Measured for every run, in seconds from the client's start:
#   first peer  ours: its first -v peer line or a progress line with dht_peers > 0;
#               libtorrent: its first peer_connect_alert (or a DHT reply with peers);
#               aria2c: its first "Connecting to" a peer in its info log
#   metadata    ours: the --save-torrent file appears; aria2c: its saved <hash>.torrent
#               (--bt-metadata-only); libtorrent: its metadata_received_alert; polled every 5 ms
#   done        ours and libtorrent: the whole payload verified (aria2c stops at the metadata)
# The markdown table of medians goes to standard output, progress to standard error. Nothing
# passes or fails on a number; a failed run shows 'fail' and is left out of the median.
set -euo pipefail
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bench/dht.sh [options]

  --nodes N         libtorrent DHT nodes (default 50, at least 3)
  --reps R          repetitions; every client runs once in each (default 3)
  --clients LIST    comma-separated, from: torrent, libtorrent, aria2 (default: all three)
  --net A.B         the /16 of 127.0.0.0/8 to use (default 127.97): nodes on A.B.1.x and
                    A.B.2.x, clients on A.B.9.x
  --size BYTES      payload size (default 4194304)
  --dir DIR         work directory (default: a new one under /tmp, removed at the end)
  --keep            keep the work directory (every run's log)
  --timeout S       give up on one run after S seconds (default 90)
  --build DIR       meson build directory (default: build/ at the top of the repository)

Needs aria2c and /usr/bin/python3 with python3-libtorrent. Everything listens and connects on
127.0.0.0/8 only; no client is given any router but the loopback nodes. Every process started
here is stopped by its PID at the end, on error and on Ctrl-C.
EOF
}

top=$(cd "$(dirname "$0")/.." && pwd)
bench_name=dht.sh
. "$top/bench/common.sh"
nodes=50 reps=3 clients=torrent,libtorrent,aria2 net=127.97 dir= keep=0 timeout=90
size=4194304 build=$top/build
while [ $# -gt 0 ]; do
	case $1 in
	--nodes) nodes=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--net) net=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) bench_die "unknown option '$1' (see --help)" ;;
	esac
done
bench_check_numbers "$nodes" "$reps" "$timeout" "$size"
[ "$nodes" -ge 3 ] && [ "$nodes" -le 400 ] || bench_die "--nodes must be 3..400"
bench_check_net --net "$net" 2
bench_need /usr/bin/python3 /usr/bin/aria2c
bench_build "$build"
bin=$build/torrent
bench_workdir "$dir" dht-bench
dir=$bench_dir
trap 'bench_remove_workdir "$keep"' EXIT

/usr/bin/python3 - "$top/tests/integration" "$bin" "$dir" "$nodes" "$reps" "$clients" "$net" \
	"$size" "$timeout" <<'PY'
import os, re, signal, statistics, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
import btcommon, dhtnodes, swarm  # btcommon: TORRENT_DHT_BOOTSTRAP=none, a temporary state dir
from upload_common import magnet_uri

binary, W = sys.argv[2], sys.argv[3]
n_nodes, reps, clients = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].split(',')
net, size, timeout = sys.argv[7], int(sys.argv[8]), int(sys.argv[9])
btcommon.TORRENT = binary
for c in clients:
    if c not in ('torrent', 'libtorrent', 'aria2'):
        sys.exit('dht.sh: unknown client %r' % c)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def on_signal(signum, frame):
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, on_signal)
src = os.path.join(W, 'src')
os.makedirs(src, exist_ok=True)
root = swarm.make_single(src, 'dht-bench.bin', size, 77)
meta = swarm.make_torrent(root, os.path.join(W, 'dht-bench.torrent'), 256 * 1024)
uri = magnet_uri(meta)
want = swarm.sha1_file(root)
ips = ['%s.%d.%d' % (net, 1 + i // 200, 11 + i % 200) for i in range(n_nodes)]
client_ips = swarm.IpPool('%s.9.' % net)
groups = []
try:
    t = time.monotonic()
    for k in range(0, n_nodes, 25):
        boot = groups[0].nodes[:3] if groups else []
        groups.append(dhtnodes.LtDht(ips[k:k + 25], W, bootstrap=boot, name='bench'))
    all_nodes = [n for g in groups for n in g.nodes]
    seeder = groups[0].seed(0, meta, src)
    groups[-1].wait_findable(len(groups[-1].nodes) - 1, meta.info_hash_hex, seeder, 60)
    log('dht.sh: %d nodes up, the seeder %s findable, in %.1f s'
        % (len(all_nodes), seeder, time.monotonic() - t))

    def run_ours(entry, out):
        ip = client_ips.take()
        saved = os.path.join(out, 'saved.torrent')
        argv = [binary, 'download', uri, '-o', os.path.join(out, 'payload'), '--listen', ip,
                '-p', str(swarm.free_port(ip, udp_too=True)), '--dht-bootstrap', entry,
                '--save-torrent', saved, '--stall-timeout', str(timeout), '-v',
                '--progress=json']
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        res = {}

        def reader():
            log_file = open(os.path.join(out, 'torrent.log'), 'wb')
            for line in p.stderr:
                log_file.write(line)
                now = time.monotonic() - t0
                if 'first_peer' not in res and (line.startswith(b'torrent: peer ') or
                                                re.search(rb'"dht_peers": *[1-9]', line)):
                    res['first_peer'] = now
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        try:
            while p.poll() is None and time.monotonic() - t0 < timeout:
                if 'metadata' not in res and os.path.exists(saved):
                    res['metadata'] = time.monotonic() - t0
                time.sleep(0.005)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
            th.join(5)
        if p.returncode == 0 and swarm.sha1_file(os.path.join(out, 'payload')) == want:
            res['done'] = time.monotonic() - t0
        else:
            res['fail'] = 'rc %s' % p.returncode
        return res

    def run_lt(entry, out):
        c = dhtnodes.LtDhtClient(client_ips.take(), uri, out, [entry], W)
        res = {}
        try:
            for ev in ('first_peer', 'metadata', 'done'):
                res[ev] = c.wait_event(ev, timeout)
        except (TimeoutError, RuntimeError) as e:
            res['fail'] = str(e)[:80]
        finally:
            c.stop()
        if 'done' in res and swarm.sha1_file(os.path.join(out, meta.name)) != want:
            res['fail'] = 'wrong data'
            del res['done']
        return res

    def run_aria2(entry, out):
        a = dhtnodes.Aria2DhtMagnet(client_ips.take(), uri, out, entry, W, metadata_only=True,
                                    self_stop=timeout + 10)
        res = {}
        saved = a.saved_torrent(meta.info_hash_hex)
        try:
            while a.proc.alive() and time.monotonic() - a.started < timeout:
                now = time.monotonic() - a.started
                if 'metadata' not in res and os.path.exists(saved):
                    res['metadata'] = now
                if 'first_peer' not in res:
                    try:
                        with open(a.log_path, 'rb') as f:
                            if re.search(rb'Connecting to \d+\.\d+\.\d+\.\d+:\d+', f.read()):
                                res['first_peer'] = now
                    except OSError:
                        pass
                time.sleep(0.005)
            if 'metadata' not in res and os.path.exists(saved):
                res['metadata'] = time.monotonic() - a.started
        finally:
            a.stop()
        if 'metadata' not in res:
            res['fail'] = 'no metadata'
        return res

    runners = {'torrent': run_ours, 'libtorrent': run_lt, 'aria2': run_aria2}
    results = {c: [] for c in clients}
    k = 0
    for rep in range(reps):
        order = clients[rep % len(clients):] + clients[:rep % len(clients)]
        for c in order:
            entry = all_nodes[(7 * k + 3) % len(all_nodes)]
            k += 1
            out = os.path.join(W, 'run-%d-%s' % (rep, c))
            os.makedirs(out)
            r = runners[c](entry, out)
            results[c].append(r)
            log('dht.sh: rep %d %-10s entry %-20s %s' % (rep + 1, c, entry, ' '.join(
                '%s=%s' % (key, ('%.2f' % v) if isinstance(v, float) else v)
                for key, v in sorted(r.items()))))

    def med(runs, key):
        vals = [r[key] for r in runs if key in r]
        if not vals:
            return 'fail' if any('fail' in r for r in runs) else '-'
        s = '%.2f' % statistics.median(vals)
        return s if len(vals) == len(runs) else '%s (%d/%d)' % (s, len(vals), len(runs))

    print('\nTrackerless magnet (%d bytes) through a loopback DHT of %d libtorrent nodes; '
          'medians of %d runs, seconds from start\n' % (size, len(all_nodes), reps))
    print('| client | first peer s | metadata s | done s |')
    print('|---|---:|---:|---:|')
    names = {'torrent': 'ours', 'libtorrent': 'libtorrent 2.0.8', 'aria2': 'aria2c 1.36'}
    for c in clients:
        done = '-' if c == 'aria2' else med(results[c], 'done')
        print('| %s | %s | %s | %s |' % (names[c], med(results[c], 'first_peer'),
                                          med(results[c], 'metadata'), done))
finally:
    for g in groups:
        g.stop()
    swarm.kill_all_children()
PY
