#!/usr/bin/env bash
# magnet.sh: how fast a magnet link opens, ours side by side with libtorrent and aria2c.
#
# The swarm, all on 127.0.0.0/8: opentracker, N libtorrent seeders (tests/integration/swarm.py,
# one process each on its own loopback address, every piece marked had and verified) of a
# multi-file torrent whose info dict is over 1 MiB (about 2,600 small files with long names,
# 16 KiB pieces: more than 64 metadata blocks, so several peers can serve them at once). Every
# client opens the same magnet (xt, dn, tr= the tracker, x.pe= every seeder), interleaved (the
# first client rotates from one repetition to the next), each into a fresh directory that is
# compared with the source and then deleted.
#
# Measured for every run, in seconds from the client's start:
#   metadata     ours and aria2c: when the saved .torrent appears (--save-torrent FILE,
#                --bt-save-metadata), polled every 5 ms; libtorrent: its metadata_received_alert
#   first data   ours and aria2c: when the files under their output directory first hold a
#                written block (st_blocks > 0, polled every 5 ms; both write sparsely);
#                libtorrent: its first piece_finished_alert
#   done         the client's exit (libtorrent: the torrent finished and flushed)
# The markdown table of medians goes to standard output, progress to standard error. Nothing
# here passes or fails on a number; a client that fails a run shows its exit status instead.
set -euo pipefail
# A local swarm: our client's DHT joins no public router and keeps no state.
export TORRENT_DHT_BOOTSTRAP=none XDG_STATE_HOME=${TMPDIR:-/tmp}/torrent-bench-state
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bench/magnet.sh [options]

  --seeders N       libtorrent seeders (default 8)
  --reps R          repetitions; every client runs once in each (default 3)
  --clients LIST    comma-separated, from: torrent, libtorrent, aria2 (default: all three)
  --net A.B.C       the /24 of 127.0.0.0/8 to use (default 127.0.98): clients .2 to .4,
                    seeders .11 on (the tracker listens on 127.0.0.1)
  --dir DIR         work directory (default: a new one under /tmp, removed at the end)
  --keep            keep the work directory (every run's log)
  --timeout S       give up on one run after S seconds (default 120)
  --build DIR       meson build directory (default: build/ at the top of the repository)

Needs opentracker, aria2c and /usr/bin/python3 with python3-libtorrent. Everything listens and
connects on 127.0.0.0/8 only. Every process started here is stopped by its PID at the end, on
error and on Ctrl-C (the Python driver's cleanup).
EOF
}

top=$(cd "$(dirname "$0")/.." && pwd)
bench_name=magnet.sh
. "$top/bench/common.sh"
seeders=8 reps=3 clients=torrent,libtorrent,aria2 net=127.0.98 dir= keep=0 timeout=120
build=$top/build
while [ $# -gt 0 ]; do
	case $1 in
	--seeders) seeders=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--net) net=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) bench_die "unknown option '$1' (see --help)" ;;
	esac
done
bench_check_numbers "$seeders" "$reps" "$timeout"
bench_check_net --net "$net" 3
bench_need /usr/bin/python3 /usr/bin/opentracker /usr/bin/aria2c
bench_build "$build"
bin=$build/torrent
bench_workdir "$dir" magnet-bench
dir=$bench_dir
trap 'bench_remove_workdir "$keep"' EXIT

# The driver: Python, for libtorrent in-process and the test support package's swarm.
/usr/bin/python3 - "$top/tests/integration" "$bin" "$dir" "$seeders" "$reps" "$clients" "$net" \
	"$timeout" <<'PY'
import os, shutil, signal, statistics, subprocess, sys, threading, time

sys.path.insert(0, sys.argv[1])
import btcommon, swarm  # noqa: E402
from upload_common import Aria2Magnet, Tracker, add_announce, magnet_uri  # noqa: E402

bin_, work, n_seeders, reps, clients, net, timeout = (
    sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].split(','),
    sys.argv[7], int(sys.argv[8]))
btcommon.TORRENT = bin_
for c in clients:
    if c not in ('torrent', 'libtorrent', 'aria2'):
        sys.exit('magnet.sh: unknown client %r' % c)
log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731


def poll(pred, t0, deadline, out):
    """A thread: records in out[0] the seconds since t0 when pred() first holds."""
    def run():
        while time.monotonic() < deadline and out[0] is None:
            try:
                if pred():
                    out[0] = time.monotonic() - t0
                    return
            except OSError:
                pass
            time.sleep(0.005)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def has_data(d, skip):
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            if p not in skip and not f.endswith(('.torrent', '.aria2')) and \
                    os.lstat(p).st_blocks > 0:
                return True
    return False


def check(out_dir):
    return swarm.tree(os.path.join(out_dir, META.name)) == SRC_TREE


def run_ours(uri, out, ip, port):
    saved = os.path.join(out, 'saved.torrent')
    argv = [bin_, 'download', '--dir', out, '--listen', ip, '-p', str(port), '--progress=json',
            '--save-torrent', saved, uri]
    t0 = time.monotonic()
    deadline = t0 + timeout
    meta_t, data_t = [None], [None]
    threads = [poll(lambda: os.path.exists(saved), t0, deadline, meta_t),
               poll(lambda: has_data(out, {saved}), t0, deadline, data_t)]
    p = swarm.Proc(argv, out + '.log')
    try:
        rc = p.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        rc = 'timeout'
    done = time.monotonic() - t0
    p.stop()
    for t in threads:
        t.join(1)
    ok = rc == 0 and check(out)
    return ok, meta_t[0], data_t[0], done, rc, p.read_log(300)


def run_aria2(uri, out, ip, port):
    t0 = time.monotonic()
    deadline = t0 + timeout
    a = Aria2Magnet(ip, uri, out, work)
    saved = a.saved_torrent(META.info_hash_hex)
    meta_t, data_t = [None], [None]
    threads = [poll(lambda: os.path.exists(saved), t0, deadline, meta_t),
               poll(lambda: has_data(out, {saved}), t0, deadline, data_t)]
    try:
        rc = a.proc.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        rc = 'timeout'
    done = time.monotonic() - t0
    a.stop()
    for t in threads:
        t.join(1)
    return rc == 0 and check(out), meta_t[0], data_t[0], done, rc, a.proc.read_log(300)


def run_libtorrent(uri, out, ip, port):
    import libtorrent as lt
    t0 = time.monotonic()
    cat = lt.alert.category_t
    s = lt.session({
        'listen_interfaces': '%s:%d' % (ip, port), 'outgoing_interfaces': ip,
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
        'enable_natpmp': False, 'enable_incoming_utp': False, 'enable_outgoing_utp': False,
        'allow_multiple_connections_per_ip': True,
        'alert_mask': cat.status_notification | cat.error_notification |
        cat.piece_progress_notification})
    atp = lt.parse_magnet_uri(uri)
    atp.save_path = out
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = s.add_torrent(atp)
    meta_t = data_t = None
    rc = 'timeout'
    while time.monotonic() - t0 < timeout:
        s.wait_for_alert(50)
        for a in s.pop_alerts():
            now = time.monotonic() - t0
            if isinstance(a, lt.metadata_received_alert) and meta_t is None:
                meta_t = now
            elif isinstance(a, lt.piece_finished_alert) and data_t is None:
                data_t = now
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                rc = a.message()
        if h.status().is_seeding:
            h.flush_cache()
            end = time.monotonic() + 10
            while time.monotonic() < end and not any(
                    isinstance(a, lt.cache_flushed_alert) for a in s.pop_alerts()):
                s.wait_for_alert(50)
            rc = 0
            break
    done = time.monotonic() - t0
    s.remove_torrent(h)
    del s
    return rc == 0 and check(out), meta_t, data_t, done, rc, ''


RUNNERS = {'torrent': run_ours, 'libtorrent': run_libtorrent, 'aria2': run_aria2}
CLIENT_IP = {'torrent': net + '.2', 'libtorrent': net + '.3', 'aria2': net + '.4'}

src = os.path.join(work, 'src')
os.makedirs(src, exist_ok=True)
log('magnet.sh: making the payload and its torrent')
root, META = swarm.make_big_info(src, 'magnet-bench', 11)
SRC_TREE = swarm.tree(root)
info_len = META.root.spans[b'info'][1] - META.root.spans[b'info'][0]
seeders = []
tracker = None
results = {c: [] for c in clients}
try:
    tracker = Tracker([META.info_hash_hex], work)
    META = add_announce(META, tracker.url)
    log('magnet.sh: starting %d libtorrent seeders' % n_seeders)
    seeders = swarm.start_all([
        (lambda ip=ip: swarm.LibtorrentSeeder(ip, [META], src, work, announce=True))
        for ip in ['%s.%d' % (net, 11 + i) for i in range(n_seeders)]], timeout=120)
    tracker.wait_seeders(META.info_hash_hex, n_seeders, timeout=30)
    uri = magnet_uri(META, trackers=[tracker.url], peers=[s.address for s in seeders])
    for rep in range(reps):
        order = clients[rep % len(clients):] + clients[:rep % len(clients)]
        for c in order:
            out = os.path.join(work, '%s-%d' % (c, rep))
            os.makedirs(out)
            ip = CLIENT_IP[c]
            r = RUNNERS[c](uri, out, ip, swarm.free_port(ip))
            results[c].append(r)
            ok, m, d, done, rc, tail = r
            fmt = lambda v: '-' if v is None else '%.2f' % v  # noqa: E731
            log('rep %d %-10s metadata %s  first data %s  done %s  %s' % (
                rep + 1, c, fmt(m), fmt(d), fmt(done),
                'ok' if ok else 'FAILED (%s) %s' % (rc, tail.strip().replace('\n', ' | '))))
            shutil.rmtree(out, ignore_errors=True)
finally:
    for s in seeders:
        s.stop()
    if tracker is not None:
        tracker.stop()
    swarm.kill_all_children()


def med(values):
    values = [v for v in values if v is not None]
    return '%.2f' % statistics.median(values) if values else '-'


print('### Opening a magnet: %d libtorrent seeders, info dict %d bytes (%d files, %d pieces '
      'of %d KiB), medians of %d' % (n_seeders, info_len, len(META.files), META.num_pieces,
                                    META.piece_length // 1024, reps))
print()
print('| client | ok | metadata s | first data s | done s |')
print('|---|---:|---:|---:|---:|')
for c in clients:
    rs = results[c]
    okr = [r for r in rs if r[0]]
    print('| %s | %d/%d | %s | %s | %s |' % (
        c, len(okr), len(rs), med([r[1] for r in rs]), med([r[2] for r in okr]),
        med([r[3] for r in okr])))
PY
