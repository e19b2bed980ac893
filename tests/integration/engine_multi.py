"""The engine's session as users meet it, against real software on loopback: several torrents
in one `torrent download --dir` / `torrent seed --dir` process (one port, one peer id), the
handshake router (an incoming connection for an unknown info hash, or garbage, is closed before
we send a byte), no connection to ourselves (a tracker entry equal to our listen address is
never dialled; a peer whose peer id is ours is dropped and never dialled again), and the usage
errors of the new options.

Real parts: libtorrent seeders and a libtorrent downloader (python3-libtorrent), an aria2c
downloader, Debian's opentracker. Every process has its own 127.0.21.x (one seed listens on
every address, as by default, its traffic still on loopback), is started by this
script and stopped by PID (swarm.py's Proc / Client, which also kill them at exit). Payloads
are small (1-3 MiB) so that the whole file runs in well under a minute.

Run as: /usr/bin/python3 engine_multi.py <path to torrent binary>
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402
from upload_common import (SELF_STOP_S, Aria2Downloader, Background, Tracker,  # noqa: E402
                           add_announce, lt_add, lt_session, lt_wait_seeding, stop_on_sigterm)

IPS = swarm.IpPool('127.0.21.')
W = None  # the module's temporary directory
SRC = None  # every payload, at SRC/<name> (so SRC also serves as a `seed --dir`)
TRACKER = None
T = {}  # key -> swarm.Meta
TIMEOUT = 60  # any one download
PROTOCOL = b'\x13BitTorrent protocol'

# key: (name, files (None: one file of `size`), size, piece length, tool, tracked)
PAYLOADS = {
    # 1: two torrents in one download process, from libtorrent through opentracker
    't1-single': ('t1-single.bin', None, 3 * MiB + 4321, 256 * KiB, 'mktorrent', True),
    't1-multi': ('t1-multi', [('a/one.bin', MiB + 7), ('two.bin', 900001),
                              ('b/c/three.bin', 333333), ('empty.txt', 0)], None, 64 * KiB,
                 'mktorrent', True),
    # 2: one completes, the other cannot
    't2-good': ('t2-good.bin', None, 3 * MiB + 77, 128 * KiB, 'mktorrent', True),
    't2-bad': ('t2-bad', [('x.bin', 300001), ('y/z.bin', 200003)], None, 32 * KiB,
               'mktorrent', False),
    't2-bad-single': ('t2-bad-single.bin', None, 400009, 32 * KiB, 'mktorrent', False),
    # 3: one seed process, two torrents, a libtorrent and an aria2c downloader
    't3-lt': ('t3-lt.bin', None, 2 * MiB + 1, 64 * KiB, 'mktorrent', True),
    't3-aria2': ('t3-aria2', [('p/one.bin', 700001), ('two.bin', 800003)], None, 128 * KiB,
                 'mktorrent', True),
    # 4: the handshake router
    't4-a': ('t4-a.bin', None, 512 * KiB + 3, 32 * KiB, 'mktorrent', False),
    't4-b': ('t4-b', [('one.bin', 100001), ('d/two.bin', 99999)], None, 16 * KiB,
             'libtorrent', False),
    # 5: no connection to ourselves
    't5-seed': ('t5-seed.bin', None, MiB + 5, 64 * KiB, 'mktorrent', True),
    't5-dl': ('t5-dl.bin', None, 2 * MiB + 9, 64 * KiB, 'mktorrent', True),
    # 6: download --dir, then seed --dir
    't6-multi': ('t6-multi', [('a.bin', 1000003), ('s/b.bin', 600001), ('s/t/c.bin', 17)],
                 None, 256 * KiB, 'mktorrent', False),
}


def setUpModule():
    """Payloads and torrents, then opentracker with the tracked ones whitelisted, then its URL
    written into those torrents (their info hashes unchanged)."""
    global W, SRC, TRACKER
    W = tempfile.mkdtemp(prefix='engine-multi-')
    try:
        SRC = os.path.join(W, 'src')
        os.makedirs(SRC)
        tdir = os.path.join(W, 'torrents')
        os.makedirs(tdir)
        for seed, (key, (name, files, size, plen, tool, _)) in enumerate(sorted(
                PAYLOADS.items())):
            if files is None:
                path = swarm.make_single(SRC, name, size, 2100 + seed)
            else:
                path = swarm.make_multi(SRC, name, files, 2100 + seed)
            T[key] = swarm.make_torrent(path, os.path.join(tdir, key + '.torrent'), plen,
                                        tool=tool)
        tracked = [k for k, v in PAYLOADS.items() if v[5]]
        TRACKER = Tracker([T[k].info_hash_hex for k in tracked], W)
        for k in tracked:
            T[k] = add_announce(T[k], TRACKER.url)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if TRACKER:
        TRACKER.stop()
    if W:
        shutil.rmtree(W, ignore_errors=True)


# --- helpers ----------------------------------------------------------------------------------

def src(key):
    return os.path.join(SRC, T[key].name)


def same_content(meta, source, out):
    """None if `out` (file, or directory of a multi-file torrent) is exactly the source (paths,
    sizes, bytes); else what differs."""
    if not os.path.exists(out):
        return '%s does not exist' % out
    if meta.multi:
        got, want = swarm.tree(out), swarm.tree(source)
        if got != want:
            return 'tree %s differs: %r' % (out, {k: (got.get(k), want.get(k))
                                                  for k in set(got) | set(want)
                                                  if got.get(k) != want.get(k)})
        return None
    if os.path.isdir(out) or swarm.sha1_file(out) != swarm.sha1_file(source):
        return '%s differs from %s' % (out, source)
    return None


def compact_peers(blob):
    return ['%s:%d' % (socket.inet_ntoa(blob[i:i + 4]), struct.unpack('>H', blob[i + 4:i + 6])[0])
            for i in range(0, len(blob) - len(blob) % 6, 6)]


def tracker_announce(meta, source_ip, port, event='started', left=1, peer_id=None):
    """Our own HTTP announce to opentracker from source_ip (opentracker records the TCP source
    address and `port`). Returns the peers of its reply as 'ip:port' strings."""
    q = urllib.parse.urlencode({'info_hash': meta.info_hash,
                                'peer_id': peer_id or b'-EM0001-' + os.urandom(12),
                                'port': port, 'uploaded': 0, 'downloaded': 0, 'left': left,
                                'compact': 1, 'numwant': 200, 'event': event},
                               quote_via=urllib.parse.quote)
    status, body = swarm.http_get(swarm.LOOPBACK, TRACKER.port, '/announce?' + q, source_ip)
    if status != 200:
        raise AssertionError('opentracker answered HTTP %d' % status)
    r = btcommon.bdecode(body)
    if b'failure reason' in r:
        raise AssertionError('opentracker: %r' % r[b'failure reason'])
    return compact_peers(r.get(b'peers', b''))


def tracker_lists(meta, address):
    """Whether opentracker's peer list for meta includes `address` (asked from an address of
    its own, which is then removed again with a 'stopped' announce)."""
    ip = '127.0.21.250'
    try:
        return address in tracker_announce(meta, ip, 9)
    finally:
        tracker_announce(meta, ip, 9, event='stopped')


def raw_exchange(ip, port, payload, source_ip, timeout=5.0, want=None):
    """Connects from source_ip, sends payload, and reads until the other side closes (EOF or
    RST), `want` bytes arrived, or `timeout` s passed. Returns (bytes received, closed, seconds
    until closed or None)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    start = time.monotonic()
    try:
        s.bind((source_ip, 0))
        s.settimeout(timeout)
        s.connect((ip, port))
        if payload:
            s.sendall(payload)
        got = b''
        end = start + timeout
        while want is None or len(got) < want:
            left = end - time.monotonic()
            if left <= 0:
                return got, False, None
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return got, False, None
            except ConnectionResetError:
                return got, True, time.monotonic() - start
            if not chunk:
                return got, True, time.monotonic() - start
            got += chunk
        return got, False, None
    finally:
        s.close()


def handshake(meta_or_hash):
    ih = meta_or_hash if isinstance(meta_or_hash, bytes) else meta_or_hash.info_hash
    return PROTOCOL + bytes(8) + ih + b'-EM0001-' + os.urandom(12)


def start_seed(keys, ip, port=None, tracker=False, extra=()):
    """`torrent seed --dir SRC --listen ip -p port -v --progress=json` for several torrents."""
    port = port or swarm.free_port(ip)
    args = ['seed', '--dir', SRC, '--listen', ip, '-p', port, '-v', '--progress=json',
            '--seed-time', SELF_STOP_S]
    if not tracker:
        args.append('--no-tracker')
    args += list(extra) + [T[k].path for k in keys]
    return Background(*args, ip=ip, port=port, ready='torrent: seeding on port %d' % port)


class Forwarder:
    """A TCP forwarder written here: listens on ip:port and pipes each connection from
    `only_from` (an IP) to `target` (dialled from ip); others are closed at once. It records
    every connection it accepted."""

    def __init__(self, ip, target, only_from):
        self.ip = ip
        self.target = target
        self.only_from = only_from
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = []  # (time, peer address)
        self.closing = False
        self.socks = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closing:
            try:
                c, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.append((time.monotonic(), '%s:%d' % addr))
            if addr[0] != self.only_from:
                c.close()
                continue
            try:
                up = socket.create_connection(self.target, timeout=3,
                                              source_address=(self.ip, 0))
            except OSError:
                c.close()
                continue
            self.socks += [c, up]
            for a, b in ((c, up), (up, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            a.settimeout(None)
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def close(self):
        self.closing = True
        self.sock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(5)


class Listener:
    """A plain TCP listener written here that accepts and holds connections (records who
    connected and the first bytes they sent)."""

    def __init__(self, ip):
        self.ip = ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = []  # (peer address, first bytes)
        self.closing = False
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closing:
            try:
                c, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            c.settimeout(2)
            try:
                first = c.recv(68)
            except OSError:
                first = b''
            self.accepted.append(('%s:%d' % addr, first))

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def close(self):
        self.closing = True
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


def _proc_addr(field):
    ip_hex, port_hex = field.split(':')
    return '%s:%d' % (socket.inet_ntoa(struct.pack('<I', int(ip_hex, 16))), int(port_hex, 16))


def self_connections(ip, port):
    """TCP sockets (any state, TIME_WAIT included: it lasts 60 s after a close) between
    ip:<other port> and ip:port, from /proc/net/tcp: a connection from a process on `ip` to
    its own listening port. Nothing else in these tests uses `ip`. Returns [(local, remote)]."""
    me = '%s:%d' % (ip, port)
    out = []
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = _proc_addr(fields[1]), _proc_addr(fields[2]), fields[3]
            if state == '0A':  # LISTEN
                continue
            ends = {local, remote}
            if me in ends and all(e.rsplit(':', 1)[0] == ip for e in ends) and local != remote:
                out.append((local, remote))
    return out


def summaries(r):
    return [o for o in r.json_lines() if o.get('event') == 'summary']


def progress_objects(r):
    return [o for o in r.json_lines() if 'event' not in o and not o.get('seeding')]


def peer_lines(text, address):
    """The -v lines about one peer address ('torrent: peer ADDR: ...')."""
    return [line for line in text.splitlines()
            if line.startswith('torrent: peer %s: ' % address)]


class Case(btcommon.CliTestCase):

    def tmpdir(self, label):
        return tempfile.mkdtemp(prefix=label + '-', dir=W)

    def assertSame(self, meta, source, out, ctx=''):
        diff = same_content(meta, source, out)
        if diff:
            self.fail('%s\n%s' % (diff, ctx))


# --- 1. two torrents in one download process ---------------------------------------------------

class TwoTorrentsOneProcess(Case):

    def test_two_torrents_from_libtorrent_through_opentracker(self):
        """A single-file and a multi-file torrent (256 KiB and 64 KiB pieces), each seeded by
        its own libtorrent that announced to one opentracker, downloaded by one `download
        --dir` process: both byte for byte, exit 0, a Downloaded line and a named summary for
        each, each torrent's bytes from its own seeder only."""
        a, b = T['t1-single'], T['t1-multi']
        ip_a, ip_b, ip_me = IPS.take(), IPS.take(), IPS.take()
        seeders = swarm.start_all([
            lambda: swarm.LibtorrentSeeder(ip_a, [a], SRC, W, announce=True),
            lambda: swarm.LibtorrentSeeder(ip_b, [b], SRC, W, announce=True)])
        try:
            for m in (a, b):
                TRACKER.wait_seeders(m.info_hash_hex, 1)
            out = self.tmpdir('t1')
            # --max-down: long enough (~2 s) for the per-second progress objects
            r = run_client('download', '--dir', out, '--listen', ip_me, '--progress=json',
                           '--max-down', '3M', a.path, b.path, timeout=TIMEOUT)
        finally:
            for s in seeders:
                s.stop()
        self.assertEqual(r.returncode, 0, r)
        self.assertSame(a, src('t1-single'), os.path.join(out, a.name), r)
        self.assertSame(b, src('t1-multi'), os.path.join(out, b.name), r)
        self.assertEqual(sorted(os.listdir(out)), sorted([a.name, b.name]), r)
        self.assertEqual(sorted(r.out.splitlines()), sorted([
            'Downloaded %s to %s.' % (a.path, os.path.join(out, a.name)),
            'Downloaded %s to %s.' % (b.path, os.path.join(out, b.name))]), r)
        sums = {s.get('name'): s for s in summaries(r)}
        self.assertEqual(len(summaries(r)), 2, r)
        self.assertEqual(set(sums), {a.name, b.name}, r)
        for m, seeder in ((a, seeders[0]), (b, seeders[1])):
            s = sums[m.name]
            self.assertEqual(s['verified'], m.total, s)
            self.assertEqual(s['total'], m.total, s)
            self.assertGreaterEqual(s['received'], m.total, s)
            self.assertLessEqual(s['received'], m.total + m.piece_length, s)
            # each torrent's peers: its own seeder (it may also have dialled us: libtorrent
            # allows several connections per address), never the other seeder, never us
            addrs = [p['address'] for p in s['peers']]
            self.assertIn(seeder.address, addrs, s)
            self.assertEqual({x.rsplit(':', 1)[0] for x in addrs}, {seeder.ip}, s)
            self.assertEqual(sum(p['bytes'] for p in s['peers']), s['received'], s)
        self.assertGreaterEqual(sum(s['received'] for s in sums.values()), a.total + b.total)
        # per-second progress: one object per torrent, each carrying its name
        names = {o.get('name') for o in progress_objects(r)}
        self.assertTrue(names, r)
        self.assertLessEqual(names, {a.name, b.name}, r)


    def test_one_seeder_with_both_torrents(self):
        """The same two torrents, both from one libtorrent seeder given with --peer (one
        address, a connection per torrent): both complete from it."""
        a, b = T['t1-single'], T['t1-multi']
        seeder = swarm.LibtorrentSeeder(IPS.take(), [a, b], SRC, W)
        out = self.tmpdir('t1b')
        try:
            r = run_client('download', '--dir', out, '--listen', IPS.take(), '--no-tracker',
                           '--peer', seeder.address, '--progress=json', b.path, a.path,
                           timeout=TIMEOUT)
        finally:
            seeder.stop()
        self.assertEqual(r.returncode, 0, r)
        self.assertSame(a, src('t1-single'), os.path.join(out, a.name), r)
        self.assertSame(b, src('t1-multi'), os.path.join(out, b.name), r)
        self.assertEqual(len(r.out.splitlines()), 2, r)
        sums = {s.get('name'): s for s in summaries(r)}
        self.assertEqual(set(sums), {a.name, b.name}, r)
        for m in (a, b):
            self.assertIn(seeder.address, [p['address'] for p in sums[m.name]['peers']], r)

    def test_two_torrents_with_the_same_name(self):
        """Two different torrents whose content has the same name would both go to
        DIR/<name> (and DIR/<name>.part): each from its own libtorrent seeder. Whatever the
        engine does (refuse, or keep them apart), every "Downloaded T to P" line must be true
        at exit: P holds exactly T's content."""
        d = self.tmpdir('t1-same')
        metas, sources = [], []
        for i, size in enumerate((300007, 200003)):
            sd = os.path.join(d, 'src%d' % i)
            path = swarm.make_single(sd, 'same.bin', size, 2190 + i)
            metas.append(swarm.make_torrent(path, os.path.join(d, 'same%d.torrent' % i),
                                            32 * KiB))
            sources.append(path)
        ips = [IPS.take(), IPS.take()]
        seeders = swarm.start_all([
            lambda: swarm.LibtorrentSeeder(ips[0], [metas[0]], os.path.dirname(sources[0]), W),
            lambda: swarm.LibtorrentSeeder(ips[1], [metas[1]], os.path.dirname(sources[1]), W)])
        out = os.path.join(d, 'out')
        os.makedirs(out)
        try:
            r = run_client('download', '--dir', out, '--listen', IPS.take(), '--no-tracker',
                           '--peer', seeders[0].address, '--peer', seeders[1].address,
                           '--stall-timeout', '5', metas[0].path, metas[1].path,
                           timeout=TIMEOUT)
        finally:
            for s in seeders:
                s.stop()
        claims = re.findall(r'^Downloaded (.*) to (.*)\.$', r.out, re.M)
        self.assertNotEqual(r.returncode, 0, r)  # both cannot be at DIR/same.bin
        for tpath, final in claims:
            i = [m.path for m in metas].index(tpath)
            self.assertSame(metas[i], sources[i], final,
                            'the claim %r is false: %r; %s' % ((tpath, final), r,
                                                                os.listdir(out)))


# --- 2. one torrent completes, the other cannot ------------------------------------------------

class OneFails(Case):

    @classmethod
    def setUpClass(cls):
        cls.ip = IPS.take()
        cls.seeder = swarm.LibtorrentSeeder(cls.ip, [T['t2-good']], SRC, W, announce=True)
        TRACKER.wait_seeders(T['t2-good'].info_hash_hex, 1)

    @classmethod
    def tearDownClass(cls):
        cls.seeder.stop()

    def check(self, r, out, good, bad):
        self.assertEqual(r.returncode, 1, r)
        self.assertSame(good, src('t2-good'), os.path.join(out, good.name), r)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (good.path,
                                                            os.path.join(out, good.name)), r)
        self.assertFalse(os.path.exists(os.path.join(out, bad.name)), (os.listdir(out), r))
        errors = [line for line in r.err.splitlines()
                  if line.startswith('torrent: download: ')]
        self.assertEqual(len(errors), 1, r)
        self.assertTrue(errors[0].startswith('torrent: download: %s: ' % bad.path), r)
        self.assertNotIn(good.path, errors[0], r)
        # nothing else in the directory than the good one and (maybe) the bad one's .part
        self.assertLessEqual(set(os.listdir(out)), {good.name, bad.name + '.part'}, r)
        # the good one's summary is there and complete
        sums = {s.get('name'): s for s in summaries(r)}
        self.assertIn(good.name, sums, r)
        self.assertEqual(sums[good.name]['verified'], good.total, r)

    def test_torrent_without_peers_does_not_stop_the_other(self):
        """The good torrent (tracked, --max-down so that it needs ~5 s) and a multi-file one
        with no tracker and no peer (--stall-timeout 3): the good one completes after the
        other gave up; exit 1 naming the bad one only."""
        good, bad = T['t2-good'], T['t2-bad']
        out = self.tmpdir('t2a')
        r = run_client('download', '--dir', out, '--listen', IPS.take(), '--progress=json',
                       '--stall-timeout', '3', '--max-down', '600K', good.path, bad.path,
                       timeout=TIMEOUT)
        self.check(r, out, good, bad)
        self.assertGreater(r.elapsed, 3.5, r)  # it really outlived the other's failure

    def test_torrent_whose_only_peer_is_a_closed_port(self):
        """--no-tracker, both given --peer: the libtorrent seeder (which has only the good
        torrent: it refuses the other's handshake) and a closed port; --stall-timeout 3."""
        good, bad = T['t2-good'], T['t2-bad-single']
        out = self.tmpdir('t2b')
        closed = '%s:%d' % (self.ip, swarm.closed_port(self.ip))
        r = run_client('download', '--dir', out, '--listen', IPS.take(), '--progress=json',
                       '--no-tracker', '--peer', closed, '--peer', self.seeder.address,
                       '--stall-timeout', '3', '--max-down', '600K', bad.path, good.path,
                       timeout=TIMEOUT)
        self.check(r, out, good, bad)
        self.assertGreater(r.elapsed, 3.5, r)


# --- 3. one seed process, two torrents, two real downloaders on the same port ------------------

class OneSeedTwoTorrents(Case):

    def test_libtorrent_and_aria2_from_one_seed_port(self):
        """`seed --dir SRC A B` on one address and port, announcing to opentracker: libtorrent
        is given that address for A (connect_peer), aria2c finds it through the tracker for B.
        Both downloads verify."""
        a, b = T['t3-lt'], T['t3-aria2']
        seed = start_seed(['t3-lt', 't3-aria2'], IPS.take(), tracker=True)
        aria = None
        session = None
        try:
            swarm.wait_until(lambda: tracker_lists(b, seed.address), 15, step=0.2,
                             what='the seed at the tracker')
            out_lt, out_aria = self.tmpdir('t3-lt'), self.tmpdir('t3-aria2')
            aria = Aria2Downloader(IPS.take(), b, out_aria, cwd=W)
            lt_ip = IPS.take()
            session, _ = lt_session(lt_ip, encryption=False)
            h = lt_add(session, a, out_lt)
            h.connect_peer((seed.ip, seed.port))
            lt_wait_seeding(session, h, TIMEOUT, 'libtorrent download of A')
            h.flush_cache()
            try:
                aria.wait(TIMEOUT)
            except AssertionError as e:
                raise AssertionError('%s\nseed stderr:\n%s' % (e, seed.stderr()[-3000:]))
            self.assertSame(a, src('t3-lt'), os.path.join(out_lt, a.name), seed.stderr()[-2000:])
            self.assertSame(b, src('t3-aria2'), os.path.join(out_aria, b.name),
                            seed.stderr()[-2000:])
            r = seed.stop()
            self.assertEqual(r.returncode, 0, r)
            # both downloaders talked to the seed's one port (the -v lines name them)
            for who in (lt_ip, aria.ip):
                self.assertTrue([line for line in r.err.splitlines()
                                 if line.startswith('torrent: peer %s:' % who)], (who, r))
        finally:
            if aria:
                aria.stop()
            seed.close()
            del session


    def test_seeding_json_names_each_torrent(self):
        """With several torrents, each per-second "seeding" object names its torrent, as the
        download's progress objects and the plain seeding lines do (else two identical-looking
        objects a second cannot be told apart)."""
        a, b = T['t4-a'], T['t4-b']
        seed = start_seed(['t4-a', 't4-b'], IPS.take())
        try:
            swarm.wait_until(lambda: len([o for o in swarm.parse_json_lines(
                seed.stderr().encode()) if o.get('seeding')]) >= 4, 10, step=0.1,
                what='two seconds of seeding lines')
            r = seed.stop()
        finally:
            seed.close()
        self.assertEqual(r.returncode, 0, r)
        lines = [o for o in r.json_lines() if o.get('seeding')]
        self.assertEqual({o.get('name') for o in lines}, {a.name, b.name}, r)


# --- 4. the handshake router ---------------------------------------------------------------------

class Router(Case):
    """Raw TCP connections to a running `seed --dir` (two torrents) and to a download in
    progress (no peer for it yet): an unknown info hash and garbage are closed with not a
    byte sent; a known info hash gets our handshake."""

    def probe(self, proc, metas):
        me = IPS.take()
        unknown = os.urandom(20)
        got, closed, secs = raw_exchange(proc.ip, proc.port, handshake(unknown), me)
        self.assertTrue(closed, 'a handshake for an unknown info hash is left open')
        self.assertEqual(got, b'', 'bytes sent for an unknown info hash')
        # the protocol string replaced by garbage (68 bytes, like a handshake)
        garbage = b'\x13BitTorrent protocoX' + bytes(8) + metas[0].info_hash + bytes(20)
        got, closed, _ = raw_exchange(proc.ip, proc.port, garbage, me)
        self.assertTrue(closed, 'a wrong protocol string is left open')
        self.assertEqual(got, b'')
        # an HTTP request, not even 68 bytes long
        got, closed, secs = raw_exchange(proc.ip, proc.port, b'GET /announce HTTP/1.1\r\n'
                                         b'Host: x\r\n\r\n', me, timeout=12)
        self.assertTrue(closed, 'an HTTP request is left open for 12 s')
        self.assertEqual(got, b'')
        # the handshake of a known torrent, sent in two parts, gets ours back
        for m in metas:
            s = socket.create_connection((proc.ip, proc.port), timeout=5,
                                         source_address=(me, 0))
            try:
                hs = handshake(m)
                s.sendall(hs[:30])
                time.sleep(0.2)
                s.sendall(hs[30:])
                reply = swarm._recv_exact(s, 68)
            finally:
                s.close()
            self.assertEqual(reply[:20], PROTOCOL, reply)
            self.assertEqual(reply[28:48], m.info_hash, (m.name, reply))
        self.assertTrue(proc.alive())
        # the -v lines name the refused connections
        self.assertTrue([line for line in proc.stderr().splitlines()
                         if line.startswith('torrent: peer %s:' % me) and ': closed: ' in line],
                        proc.stderr()[-3000:])

    def test_seed(self):
        metas = [T['t4-a'], T['t4-b']]
        seed = start_seed(['t4-a', 't4-b'], IPS.take())
        try:
            self.probe(seed, metas)
            r = seed.stop()
            self.assertEqual(r.returncode, 0, r)
        finally:
            seed.close()

    def test_download_in_progress(self):
        """A download with no usable peer (a closed port) is still listening and routing."""
        meta = T['t4-a']
        ip = IPS.take()
        port = swarm.free_port(ip)
        out = self.tmpdir('t4-dl')
        dl = Background('download', '--dir', out, '--listen', ip, '-p', port, '-v',
                        '--no-tracker', '--peer', '%s:%d' % (ip, swarm.closed_port(ip)),
                        '--stall-timeout', '60', meta.path, ip=ip, port=port)
        try:
            self.probe(dl, [meta])
            r = dl.stop()
            self.assertEqual(r.returncode, 1, r)  # interrupted
        finally:
            dl.close()

    def test_download_seed(self):
        """`download --seed` of a torrent whose data is already complete in --dir."""
        meta = T['t4-b']
        ip = IPS.take()
        port = swarm.free_port(ip)
        out = self.tmpdir('t4-seed')
        shutil.copytree(src('t4-b'), os.path.join(out, meta.name))
        dl = Background('download', '--dir', out, '--listen', ip, '-p', port, '-v',
                        '--no-tracker', '--seed', '--seed-time', SELF_STOP_S, meta.path, ip=ip,
                        port=port)
        try:
            self.probe(dl, [meta])
            r = dl.stop()
            self.assertEqual(r.returncode, 0, r)
        finally:
            dl.close()


# --- 5. no connection to ourselves ---------------------------------------------------------------

class NoSelfConnection(Case):

    def test_self_connection_detector(self):
        """self_connections() does see a connection from an address to its own listening
        port, after it closed (so the checks below can fail)."""
        ip = IPS.take()
        lsock = socket.socket()
        lsock.bind((ip, 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]
        try:
            self.assertEqual(self_connections(ip, port), [])
            c = socket.create_connection((ip, port), timeout=3, source_address=(ip, 0))
            a, _ = lsock.accept()
            c.close()
            a.close()
            self.assertTrue(self_connections(ip, port))
        finally:
            lsock.close()

    def test_seed_never_dials_its_own_tracker_entry(self):
        """`seed --listen IP -p P -v` announcing to opentracker, whose reply lists IP:P (us)
        and a listener of the test's (so the seed does dial tracker peers: it reaches that
        listener): no -v line about IP:P, ever."""
        meta = T['t5-seed']
        decoy = Listener(IPS.take())
        seed = None
        try:
            tracker_announce(meta, decoy.ip, decoy.port)  # in the swarm before the seed
            seed = start_seed(['t5-seed'], IPS.take(), tracker=True)
            swarm.wait_until(lambda: tracker_lists(meta, seed.address), 15, step=0.2,
                             what='the seed at the tracker')
            swarm.wait_until(lambda: decoy.accepted, 15, step=0.1,
                             what='the seed to dial the decoy')
            # it dialled from its --listen address and sent a handshake for the torrent
            self.assertTrue(decoy.accepted[0][0].startswith(seed.ip + ':'), decoy.accepted)
            self.assertTrue(decoy.accepted[0][1].startswith(PROTOCOL), decoy.accepted)
            time.sleep(3)  # a redial would come within 2 s (retry after 2 s x tries)
            text = seed.stderr()
            self.assertEqual(peer_lines(text, seed.address), [], text[-3000:])
            # A dial of our own address that the peer-id check then drops logs nothing: look
            # for its TCP traces (TIME_WAIT lasts 60 s) in /proc/net/tcp.
            self.assertEqual(self_connections(seed.ip, seed.port), [], text[-3000:])
            self.assertTrue(seed.alive())
            r = seed.stop()
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(peer_lines(r.err, seed.address), [], r)
        finally:
            if seed:
                seed.close()
            decoy.close()

    def test_seed_on_every_address_never_dials_itself(self):
        """The default listen (every address, no --listen): the announce leaves from
        127.0.0.1, so opentracker lists 127.0.0.1:P; that entry is ours too and never dialled
        (the decoy shows tracker peers are dialled)."""
        meta = T['t5-seed']
        decoy = Listener(IPS.take())
        port = swarm.free_port('0.0.0.0')
        seed = None
        try:
            tracker_announce(meta, decoy.ip, decoy.port)
            seed = Background('seed', '--dir', SRC, '-p', port, '-v', '--progress=json',
                              '--seed-time', SELF_STOP_S, meta.path, ip='127.0.0.1', port=port,
                              ready='torrent: seeding on port %d' % port)
            swarm.wait_until(lambda: tracker_lists(meta, seed.address), 15, step=0.2,
                             what='the seed at the tracker as 127.0.0.1:%d' % port)
            swarm.wait_until(lambda: [a for a, _ in decoy.accepted
                                      if a.startswith('127.0.0.1:')], 15, step=0.1,
                             what='the seed to dial the decoy')
            time.sleep(3)
            text = seed.stderr()
            self.assertEqual(peer_lines(text, seed.address), [], text[-3000:])
            self.assertEqual(self_connections('127.0.0.1', port), [], text[-3000:])
            r = seed.stop()
            self.assertEqual(r.returncode, 0, r)
        finally:
            if seed:
                seed.close()
            decoy.close()

    def test_download_drops_itself_by_peer_id(self):
        """A download (--listen IP -p P, -v) from a libtorrent seeder through opentracker,
        whose reply lists IP:P (us: never dialled) and a forwarder F of the test's that pipes
        to IP:P (not our address: dialled once, answers with our own peer id: dropped and
        never dialled again). The summary names the seeder only."""
        meta = T['t5-dl']
        seeder = swarm.LibtorrentSeeder(IPS.take(), [meta], SRC, W, announce=True)
        fwd = None
        try:
            TRACKER.wait_seeders(meta.info_hash_hex, 1)
            ip = IPS.take()
            port = swarm.free_port(ip)
            fwd = Forwarder(IPS.take(), (ip, port), only_from=ip)
            tracker_announce(meta, fwd.ip, fwd.port)  # the forwarder joins the swarm
            me = '%s:%d' % (ip, port)
            out = self.tmpdir('t5')
            dl = Background('download', '--dir', out, '--listen', ip, '-p', port, '-v',
                            '--progress=json', '--max-down', '250K', meta.path, ip=ip, port=port)
            try:
                swarm.wait_until(lambda: tracker_lists(meta, me), 15, step=0.2,
                                 what='our download at the tracker')
                r = dl.client.wait(TIMEOUT)
                swarm.check_sanitizers(r.stderr)
            finally:
                dl.close()
        finally:
            seeder.stop()
            if fwd:
                fwd.close()
        self.assertEqual(r.returncode, 0, r)
        self.assertSame(meta, src('t5-dl'), os.path.join(out, meta.name), r)
        self.assertGreater(r.elapsed, 5, r)  # long enough for redials (2 s, 4 s, ...)
        self.assertEqual(peer_lines(r.err, me), [], r)
        self.assertEqual(self_connections(ip, port), [], r)
        # we dialled the forwarder exactly once in the whole run (others, e.g. libtorrent,
        # may dial it too: it closes those at once)
        ours = [a for _, a in fwd.accepted if a.startswith(ip + ':')]
        self.assertEqual(len(ours), 1, (fwd.accepted, r))
        # the summary: the seeder (maybe on several connections of its own), nobody else
        s = r.summary()
        self.assertIsNotNone(s, r)
        addrs = [p['address'] for p in s['peers']]
        self.assertIn(seeder.address, addrs, s)
        self.assertEqual({a.rsplit(':', 1)[0] for a in addrs}, {seeder.ip}, s)


# --- 6. download --dir, then seed --dir ----------------------------------------------------------

class DownloadThenSeed(Case):

    def test_seed_dir_serves_what_download_dir_made(self):
        meta = T['t6-multi']
        seeder = swarm.LibtorrentSeeder(IPS.take(), [meta], SRC, W)
        d = self.tmpdir('t6')
        try:
            r = run_client('download', '--dir', d, '--no-tracker', '--listen', IPS.take(),
                           '--peer', seeder.address, meta.path, timeout=TIMEOUT)
        finally:
            seeder.stop()
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(os.listdir(d), [meta.name], r)
        self.assertSame(meta, src('t6-multi'), os.path.join(d, meta.name), r)
        seed = start_seed_dir(d, meta, IPS.take())
        session = None
        try:
            out = self.tmpdir('t6-lt')
            session, _ = lt_session(IPS.take(), encryption=False)
            h = lt_add(session, meta, out)
            h.connect_peer((seed.ip, seed.port))
            lt_wait_seeding(session, h, TIMEOUT, 'libtorrent from seed --dir')
            h.flush_cache()
            self.assertSame(meta, src('t6-multi'), os.path.join(out, meta.name))
            r = seed.stop()
            self.assertEqual(r.returncode, 0, r)
        finally:
            seed.close()
            del session


def start_seed_dir(d, meta, ip):
    port = swarm.free_port(ip)
    return Background('seed', '--dir', d, '--listen', ip, '-p', port, '-v', '--progress=json',
                      '--no-tracker', '--seed-time', SELF_STOP_S, meta.path, ip=ip, port=port,
                      ready='torrent: seeding on port %d' % port)


# --- 7. usage ------------------------------------------------------------------------------------

class Usage(Case):

    def test_output_with_several_torrents(self):
        d = self.tmpdir('t7')
        r = run_client('download', '-o', os.path.join(d, 'x'), T['t4-a'].path, T['t4-b'].path,
                       timeout=20)
        self.assertFails(r, 'torrent: download: ')
        self.assertEqual(os.listdir(d), [])

    def test_output_with_dir(self):
        d = self.tmpdir('t7')
        r = run_client('download', '-o', os.path.join(d, 'x'), '--dir', d, T['t4-a'].path,
                       timeout=20)
        self.assertFails(r, 'torrent: download: ')
        self.assertEqual(os.listdir(d), [])

    def test_download_piece_index_out_of_range(self):
        for key in ('t4-a', 't4-b'):
            meta = T[key]
            d = self.tmpdir('t7')
            for index in (meta.num_pieces, 4294967295, 4294967296):
                with self.subTest(torrent=key, index=index):
                    r = run_client('download_piece', '-o', os.path.join(d, 'p'), '--no-tracker',
                                   meta.path, index, timeout=20)
                    line = self.assertFails(r, 'torrent: download_piece: ')
                    self.assertIn('piece index must be 0 to %d' % (meta.num_pieces - 1), line)
                    self.assertEqual(os.listdir(d), [])

    def test_download_piece_last_index_is_accepted(self):
        """N-1 is not a usage error (so the range above is the real one): with no peer at all
        it fails with exit 1, not 2."""
        meta = T['t4-a']
        d = self.tmpdir('t7')
        r = run_client('download_piece', '-o', os.path.join(d, 'p'), '--no-tracker',
                       '--peer', '127.0.21.251:%d' % swarm.closed_port('127.0.21.251'),
                       '--stall-timeout', '2', meta.path, meta.num_pieces - 1, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertNotIn('piece index', r.err, r)


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
