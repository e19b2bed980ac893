"""Where files go and what is left behind (issue 10), through the real binary on loopback:
- `download --dir D` then `seed --dir D` (and `seed t.torrent D`, D holding <name>), with
  libtorrent downloading from that seed byte-identical; `download_piece --dir D`;
- `--force` with the output name on a directory: refused naming it, the directory and its
  contents untouched;
- no give-up by default: a download whose only seeder appears ~5 s later (through opentracker,
  the seeder dialling us) completes; `--stall-timeout 2` still ends a silent swarm at 2 s;
- a run that received nothing (unreachable peer, SIGINT) leaves no `.part` and no folder;
- `create` without -a notes that there is no tracker, and refuses schemes we cannot announce to.
Every process runs on its own 127.0.48.x and is stopped by PID.

Run as: /usr/bin/python3 files_cli.py <path to torrent binary>
"""

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, run_client  # noqa: E402
from upload_common import (Background, lt_add, lt_session, lt_wait_seeding,  # noqa: E402
                           stop_on_sigterm)

TIMEOUT = 60
IPS = swarm.IpPool('127.0.48.')
W = None
SRC = None
SINGLE = None  # a single-file torrent, no tracker
MULTI = None  # a multi-file one, no tracker


def setUpModule():
    global W, SRC, SINGLE, MULTI
    stop_on_sigterm()
    W = tempfile.mkdtemp(prefix='files-cli-')
    SRC = os.path.join(W, 'src')
    SINGLE = swarm.make_torrent(swarm.make_single(SRC, 'one.bin', 1500007, 81),
                                os.path.join(W, 'one.torrent'), 64 * KiB)
    MULTI = swarm.make_torrent(swarm.make_multi(SRC, 'album', [('a.bin', 300001),
                                                               ('s/b.bin', 200003)], 82),
                               os.path.join(W, 'album.torrent'), 32 * KiB)


def tearDownModule():
    if W:
        shutil.rmtree(W, ignore_errors=True)


def snapshot(root):
    """Every entry under root: relative path, type bits, size, mtime (ns) and content."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            body = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, 'rb') as f:
                    body = f.read()
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, body)
    return out


def source(meta):
    return os.path.join(SRC, meta.name)


class Case(btcommon.CliTestCase):

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix='case-', dir=W)

    def assertSame(self, meta, got, msg=None):
        self.assertEqual(meta.content(got), meta.content(source(meta)), msg)

    def start_seed(self, *args):
        ip = IPS.take()
        port = swarm.free_port(ip)
        return Background('seed', '--listen', ip, '-p', port, '-v', '--no-tracker',
                          '--seed-time', 300, *args, ip=ip, port=port,
                          ready='torrent: seeding on port %d' % port)

    def libtorrent_from(self, seed, meta):
        """libtorrent downloads meta from `seed` into a new folder; returns the content path."""
        out = tempfile.mkdtemp(prefix='lt-', dir=self.d)
        session, _ = lt_session(IPS.take(), encryption=False)
        try:
            h = lt_add(session, meta, out)
            h.connect_peer((seed.ip, seed.port))
            lt_wait_seeding(session, h, TIMEOUT, 'libtorrent from our seed')
            h.flush_cache()
        finally:
            del session
        return os.path.join(out, meta.name)


class DirRoundTrip(Case):

    @classmethod
    def setUpClass(cls):
        cls.seeder = swarm.LibtorrentSeeder(IPS.take(), [SINGLE, MULTI], SRC, W)

    @classmethod
    def tearDownClass(cls):
        cls.seeder.stop()

    def download(self, d, meta):
        r = run_client('download', '--dir', d, '--no-tracker', '--listen', IPS.take(), '-q',
                       '--peer', self.seeder.address, meta.path, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(os.listdir(d), [meta.name], r)
        self.assertSame(meta, os.path.join(d, meta.name), r)

    def test_download_dir_then_seed_dir(self):
        d = os.path.join(self.d, 'D')
        self.download(d, SINGLE)
        seed = self.start_seed('--dir', d, SINGLE.path)
        try:
            got = self.libtorrent_from(seed, SINGLE)
            self.assertSame(SINGLE, got)
            r = seed.stop()
            self.assertEqual(r.returncode, 0, r)
        finally:
            seed.close()

    def test_seed_of_the_folder_holding_the_content(self):
        """`seed t.torrent D`, D being where `download --dir D` put <name>: D/<name> is
        served. For a multi-file torrent, `seed t.torrent D/<name>` still means the data."""
        for meta in (SINGLE, MULTI):
            with self.subTest(torrent=meta.name):
                d = os.path.join(self.d, 'save-' + meta.name)
                self.download(d, meta)
                for data in (d, os.path.join(d, meta.name)):
                    seed = self.start_seed(meta.path, data)
                    try:
                        if data == d:
                            got = self.libtorrent_from(seed, meta)
                            self.assertSame(meta, got)
                        r = seed.stop()
                        self.assertEqual(r.returncode, 0, r)
                        self.assertNotIn('No such file', r.err, r)
                    finally:
                        seed.close()

    def test_download_piece_dir(self):
        d = os.path.join(self.d, 'P')
        os.makedirs(d)
        r = run_client('download_piece', '--dir', d, '--no-tracker', '--listen', IPS.take(),
                       '-q', '--peer', self.seeder.address, SINGLE.path, 3, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        out = os.path.join(d, SINGLE.name + '.piece3')
        self.assertEqual(os.listdir(d), [os.path.basename(out)], r)
        with open(out, 'rb') as f:
            self.assertEqual(f.read(), SINGLE.piece(source(SINGLE), 3))
        self.assertIn(out, r.out)


class ForceNeverTouchesADirectory(Case):

    def test_output_is_a_directory(self):
        downloads = os.path.join(self.d, 'Downloads')
        os.makedirs(os.path.join(downloads, 'inner'))
        with open(os.path.join(downloads, 'inner', 'letter.txt'), 'w') as f:
            f.write('keep me')
        before = snapshot(self.d)
        for force in ([], ['--force']):
            with self.subTest(force=force):
                r = run_client('download', '-o', downloads, *force, '-q', '--no-tracker', '--peer',
                               '127.0.0.1:%d' % swarm.closed_port(), SINGLE.path,
                               timeout=TIMEOUT)
                line = self.assertFails(r, 'torrent: download: ', code=1)
                self.assertIn("'%s' is a directory" % downloads, line)
                self.assertEqual(snapshot(self.d), before)
                self.assertFalse(os.path.exists(downloads + '.part'))


class Waiting(Case):

    def test_seeder_appearing_later(self):
        """No --stall-timeout: nobody has the data for ~5 s, then a libtorrent seeder
        announces to the tracker and dials us; the download completes."""
        tracker = swarm.OpenTracker([], W)
        seeder = None
        try:
            meta = swarm.make_torrent(source(SINGLE), os.path.join(self.d, 'late.torrent'),
                                      64 * KiB, trackers=[tracker.url])
            tracker.whitelist([meta.info_hash_hex])
            ip = IPS.take()
            port = swarm.free_port(ip)
            d = os.path.join(self.d, 'late')
            c = swarm.Client('download', '--dir', d, '--listen', ip, '-p', port,
                             '--progress=json', meta.path)
            try:
                swarm.wait_until(lambda: tracker_lists(tracker, meta, '%s:%d' % (ip, port))
                                 or c.proc.poll() is not None, 15, step=0.2,
                                 what='our download at the tracker')
                time.sleep(max(0.0, 5 - (time.monotonic() - c.start)))
                self.assertIsNone(c.proc.poll(), 'gave up before the seeder came')
                seeder = swarm.LibtorrentSeeder(IPS.take(), [meta], SRC, W, announce=True)
                r = c.wait(TIMEOUT)
            finally:
                c.close()
        finally:
            if seeder:
                seeder.stop()
            tracker.stop()
        swarm.check_sanitizers(r.stderr)
        self.assertEqual(r.returncode, 0, r)
        self.assertGreater(r.elapsed, 5, r)
        self.assertSame(meta, os.path.join(d, meta.name), r)

    def test_stall_timeout_still_ends_a_silent_swarm(self):
        with SilentPeer(IPS.take()) as peer:
            d = os.path.join(self.d, 'stall')
            r = run_client('download', '--dir', d, '--no-tracker', '--peer', peer.address,
                           '-q', '--stall-timeout', '2', SINGLE.path, timeout=TIMEOUT)
        line = self.assertFails(r, 'torrent: download: ', code=1)
        self.assertIn('no data for 2 s', line)
        self.assertLess(r.elapsed, 8, r)
        self.assertFalse(os.path.exists(d), r)


class NothingLeftBehind(Case):

    def test_unreachable_peer(self):
        d = os.path.join(self.d, 'new', 'deeper')
        r = run_client('download', '--dir', d, '--no-tracker', '-q', '--peer',
                       '127.0.0.1:%d' % swarm.closed_port(), MULTI.path, timeout=TIMEOUT)
        self.assertFails(r, 'torrent: download: ', code=1)
        self.assertEqual(os.listdir(self.d), [], r)

    def test_interrupted_before_any_piece(self):
        with SilentPeer(IPS.take()) as peer:
            part = os.path.join(self.d, SINGLE.name + '.part')
            c = swarm.Client('download', '--dir', self.d, '--no-tracker', '--peer',
                             peer.address, SINGLE.path)
            try:
                swarm.wait_until(lambda: peer.accepted or c.proc.poll() is not None, 10,
                                 what='the download to dial the silent peer')
                self.assertTrue(os.path.exists(part))
                os.kill(c.proc.pid, signal.SIGINT)
                r = c.wait(20)
            finally:
                c.close()
        swarm.check_sanitizers(r.stderr)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn('nothing was kept', r.err.splitlines()[-1], r)
        self.assertEqual(os.listdir(self.d), [], r)


class Create(Case):

    def test_no_tracker_note(self):
        out = os.path.join(self.d, 'bare.torrent')
        r = run_client('create', '-o', out, source(SINGLE))
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.err.count('\n'), 1, r)
        self.assertIn('%s has no tracker' % out, r.err)
        self.assertIn('DHT', r.err)
        out2 = os.path.join(self.d, 'tracked.torrent')
        r = run_client('create', '-o', out2, '-a', 'udp://127.0.0.1:6969/announce',
                       source(SINGLE))
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, b'', r)

    def test_schemes_we_cannot_announce_to(self):
        for arg, bad in (('ftp://127.0.0.1/announce', 'ftp://127.0.0.1/announce'),
                         ('wss://tracker.example/ws', 'wss://tracker.example/ws'),
                         ('http://127.0.0.1:1/a,magnet:?x', 'magnet:?x'),
                         ('127.0.0.1:6969', '127.0.0.1:6969'),
                         ('http://', 'http://')):
            with self.subTest(url=arg):
                out = os.path.join(self.d, 'x.torrent')
                r = run_client('create', '-o', out, '-a', 'http://127.0.0.1:1/ok', '-a', arg,
                               source(SINGLE))
                line = self.assertFails(r, 'torrent: create: ', code=2)
                self.assertIn("'%s'" % bad, line)
                self.assertFalse(os.path.exists(out))


class SilentPeer:
    """A listener on ip that accepts connections and never sends a byte (closed on exit)."""

    def __init__(self, ip):
        self.sock = socket.socket()
        self.sock.bind((ip, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.address = '%s:%d' % self.sock.getsockname()
        self.accepted = []
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.done = True
        self.thread.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()


def tracker_lists(tracker, meta, address):
    """Whether opentracker's peer list for meta holds `address` (asked from an address of
    the test's own, removed again with a 'stopped' announce)."""
    me = '127.0.48.250'

    def announce(event):
        q = urllib.parse.urlencode({'info_hash': meta.info_hash,
                                    'peer_id': b'-FC0001-' + b'0' * 12, 'port': 9,
                                    'uploaded': 0, 'downloaded': 0, 'left': 1, 'compact': 1,
                                    'numwant': 50, 'event': event},
                                   quote_via=urllib.parse.quote)
        status, body = swarm.http_get(swarm.LOOPBACK, tracker.port, '/announce?' + q, me)
        return btcommon.bdecode(body) if status == 200 else {}
    try:
        peers = announce('started').get(b'peers', b'')
    finally:
        announce('stopped')
    listed = ['%d.%d.%d.%d:%d' % (*peers[i:i + 4], int.from_bytes(peers[i + 4:i + 6], 'big'))
              for i in range(0, len(peers) - 5, 6)]
    return address in listed


if __name__ == '__main__':
    btcommon.main()
