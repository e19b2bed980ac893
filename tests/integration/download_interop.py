"""`torrent download`, `download_piece` and `handshake` against real seeders on loopback:
libtorrent (python3-libtorrent), aria2c and transmission-cli, reached with --peer and through a
real opentracker. Single- and multi-file torrents with odd lengths, short last pieces and piece
sizes of 16 KiB, 256 KiB and 4 MiB; the output must be byte-identical to the source.

Run as: /usr/bin/python3 download_interop.py <path to torrent binary>
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

IPS = swarm.IpPool('127.0.1.')
W = None  # the module's temporary directory
SRC = None  # where the payloads live (and the seeders read them)
T = {}  # name -> swarm.Meta

# name: (files (None: a single file of `size`), size, piece length, tool)
PAYLOADS = {
    # 62 pieces, the last 579 bytes
    'odd16k.bin': (None, 1000003, 16 * KiB, 'libtorrent'),
    # 13 pieces, the last 12345 bytes
    'odd256k.bin': (None, 3 * MiB + 12345, 256 * KiB, 'mktorrent'),
    # 3 pieces, the last 1 MiB + 777 bytes
    'odd4m.bin': (None, 9 * MiB + 777, 4 * MiB, 'mktorrent'),
    # 3 pieces of 4 MiB (the last 2012563 bytes); files across piece boundaries, a file of
    # exactly one piece, a 3-byte file, an empty file, nested directories
    'tree4m': ([('a/one.bin', 5000001), ('a/b/two.bin', 3), ('three.bin', 4 * MiB),
                ('c/four.bin', 1234567), ('empty.txt', 0)], None, 4 * MiB, 'mktorrent'),
    # many small files with 16 KiB pieces: files smaller than a piece, exactly a piece, a
    # byte either side of it, files spanning several pieces
    'tree16k': ([('f01.bin', 1), ('d1/f02.bin', 16383), ('d1/f03.bin', 16384),
                 ('d1/d2/f04.bin', 16385), ('f05.bin', 40000), ('d3/f06.bin', 7),
                 ('d3/f07.bin', 100000), ('f08.bin', 0), ('d3/d4/d5/f09.bin', 65537),
                 ('f10.bin', 12345)], None, 16 * KiB, 'libtorrent'),
    # for Transmission (slow to start): about 2 MB, 256 KiB pieces
    'tree256k': ([('x/a.bin', 700001), ('b.bin', 1000003), ('x/y/c.bin', 300007)], None,
                 256 * KiB, 'mktorrent'),
}

DOWNLOAD_TIMEOUT = 90  # seconds; Transmission alone waits up to ~10 s before its first byte


SEEDERS = {}  # role -> seeder
TRACKER = None
TRACKED = {}  # name -> swarm.Meta of the torrents announced to TRACKER
TRACKED_SRC = None
ARIA2_NAMES = ('odd16k.bin', 'tree4m', 'tree16k')


def setUpModule():
    """Payloads, torrents, opentracker, and every seeder, started in parallel (Transmission's
    and aria2's start-up overlap the rest)."""
    global W, SRC, TRACKER, TRACKED_SRC
    W = tempfile.mkdtemp(prefix='download-interop-')
    try:
        SRC = os.path.join(W, 'src')
        os.makedirs(SRC)
        for seed, (name, (files, size, plen, tool)) in enumerate(sorted(PAYLOADS.items())):
            if files is None:
                path = swarm.make_single(SRC, name, size, seed + 1)
            else:
                path = swarm.make_multi(SRC, name, files, seed + 1)
            T[name] = swarm.make_torrent(path, os.path.join(W, name + '.torrent'), plen,
                                         tool=tool)
            assert T[name].total % plen != 0, name  # a short last piece

        TRACKER = swarm.OpenTracker([], W)
        TRACKED_SRC = os.path.join(W, 'tracked')
        os.makedirs(TRACKED_SRC)
        spec = [  # name, size or files, piece length, tool, announce URL
            ('lt-http.bin', 1500007, 32 * KiB, 'mktorrent', TRACKER.url),
            ('lt-udp', [('a.bin', 1000001), ('s/b.bin', 600005)], 64 * KiB, 'libtorrent',
             TRACKER.udp_url),
            ('aria2-http', [('one.bin', 900001), ('d/two.bin', 1100003)], 256 * KiB,
             'mktorrent', TRACKER.url),
            ('tr-http.bin', 1300009, 32 * KiB, 'mktorrent', TRACKER.url),
        ]
        for i, (name, what, plen, tool, url) in enumerate(spec):
            if isinstance(what, int):
                path = swarm.make_single(TRACKED_SRC, name, what, 100 + i)
            else:
                path = swarm.make_multi(TRACKED_SRC, name, what, 100 + i)
            TRACKED[name] = swarm.make_torrent(
                path, os.path.join(W, 'tracked-%s.torrent' % name), plen, trackers=[url],
                tool=tool)
        TRACKER.whitelist([m.info_hash_hex for m in TRACKED.values()])

        ips = {role: IPS.take() for role in ('lt', 'aria2', 'tr', 'tr-hs', 'trk-lt',
                                             'trk-aria2', 'trk-tr')}
        factories = {
            'lt': lambda: swarm.LibtorrentSeeder(ips['lt'], list(T.values()), SRC, W),
            'aria2': lambda: swarm.Aria2Seeder(ips['aria2'], [T[n] for n in ARIA2_NAMES],
                                               SRC, W),
            'tr': lambda: swarm.TransmissionSeeder(ips['tr'], T['tree256k'], SRC, W),
            'tr-hs': lambda: swarm.TransmissionSeeder(ips['tr-hs'], T['odd16k.bin'], SRC, W),
            'trk-lt': lambda: swarm.LibtorrentSeeder(
                ips['trk-lt'], [TRACKED['lt-http.bin'], TRACKED['lt-udp']], TRACKED_SRC, W,
                announce=True),
            'trk-aria2': lambda: swarm.Aria2Seeder(ips['trk-aria2'], [TRACKED['aria2-http']],
                                                   TRACKED_SRC, W),
            'trk-tr': lambda: swarm.TransmissionSeeder(ips['trk-tr'], TRACKED['tr-http.bin'],
                                                       TRACKED_SRC, W),
        }
        roles = list(factories)
        for role, seeder in zip(roles, swarm.start_all([factories[r] for r in roles])):
            SEEDERS[role] = seeder
        for m in TRACKED.values():
            TRACKER.wait_seeders(m.info_hash_hex, 1, timeout=30)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    for seeder in SEEDERS.values():
        seeder.stop()
    if TRACKER:
        TRACKER.stop()
    if W:
        shutil.rmtree(W, ignore_errors=True)


def source_of(meta):
    tracked = any(meta is m for m in TRACKED.values())
    return os.path.join(TRACKED_SRC if tracked else SRC, meta.name)


class DownloadCase(btcommon.CliTestCase):
    """Helpers shared by the seeder classes."""

    def fresh_dir(self, prefix):
        return tempfile.mkdtemp(prefix=prefix + '-', dir=W)

    def assertSameContent(self, meta, out):
        """out (the file, or the directory named after a multi-file torrent) holds exactly the
        torrent's source: same bytes, and for a tree the same paths, sizes, and no extras."""
        src = source_of(meta)
        if meta.multi:
            self.assertTrue(os.path.isdir(out), out)
            got, want = swarm.tree(out), swarm.tree(src)
            self.assertEqual(sorted(got), sorted(want), 'paths under %s' % out)
            for rel in want:
                self.assertEqual(got[rel], want[rel], rel)
        else:
            self.assertTrue(os.path.isfile(out), out)
            self.assertEqual(os.path.getsize(out), meta.total)
            self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(src), out)

    def download(self, meta, peers=(), output=None, cwd=None, no_tracker=True, extra=()):
        """Runs `torrent download` with --progress=json and checks exit 0, the stdout line,
        the summary, the content and that no temporary name is left. Returns (result, final
        path, summary)."""
        args = ['download']
        if no_tracker:
            args.append('--no-tracker')
        for p in peers:
            args += ['--peer', p]
        if output is not None:
            args += ['-o', output]
        args += ['--progress=json', *extra, meta.path]
        r = run_client(*args, cwd=cwd, timeout=DOWNLOAD_TIMEOUT)
        return self.check_download(r, meta, output, cwd)

    def check_download(self, r, meta, output, cwd):
        """Checks a finished `download --progress=json` run (see download())."""
        self.assertEqual(r.returncode, 0, r)
        if output is None:  # the torrent's name in the cwd, shown as NAME or ./NAME
            final = r.out[len('Downloaded %s to ' % meta.path):-2]
            self.assertIn(final, [meta.name, './' + meta.name], r)
        else:
            final = os.path.join(output, meta.name) if meta.multi else output
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, final), r)
        where = os.path.join(cwd, final) if cwd else final
        self.assertSameContent(meta, where)
        self.assertFalse(os.path.exists(where + '.part'), 'temporary name left: %s' % where)
        s = r.summary()
        self.assertIsNotNone(s, 'no summary object on stderr: %r' % r)
        self.assertEqual(s['total'], meta.total, s)
        self.assertEqual(s['pieces_failed'], 0, s)
        self.assertGreaterEqual(s['received'], meta.total, s)
        self.assertEqual(sum(p['bytes'] for p in s['peers']), s['received'], s)
        for line in r.err.splitlines():  # every stderr line is one JSON object
            self.assertTrue(line.startswith('{') and line.endswith('}'), line)
        return r, where, s

    def download_piece(self, meta, index, peers, out):
        r = run_client('download_piece', '--no-tracker', *sum((['--peer', p] for p in peers), []),
                       '-o', out, '-q', meta.path, index, timeout=DOWNLOAD_TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Piece %d downloaded to %s.\n' % (index, out), r)
        self.assertEqual(r.stderr, b'', r)
        with open(out, 'rb') as f:
            data = f.read()
        want = meta.piece(source_of(meta), index)
        self.assertEqual(len(data), meta.piece_size(index))
        self.assertTrue(data == want, 'piece %d differs from the source' % index)
        self.assertTrue(meta.check_piece(data, index))
        self.assertFalse(os.path.exists(out + '.part'))
        return r

    def handshake(self, meta, address):
        """Runs `torrent handshake`, checks the output format; returns the peer id bytes."""
        r = run_client('handshake', meta.path, address, timeout=30)
        self.assertOk(r, repr(r))
        m = re.fullmatch(r'Peer ID: ([0-9a-f]{40})\n', r.out)
        self.assertIsNotNone(m, r)
        return bytes.fromhex(m.group(1))


# --- libtorrent ---------------------------------------------------------------------------

class LibtorrentPeer(DownloadCase):
    """One libtorrent session on its own address seeds every torrent; downloads with --peer."""

    @classmethod
    def setUpClass(cls):
        cls.seeder = SEEDERS['lt']
        cls.peer = cls.seeder.address

    def test_single_16k_pieces(self):
        d = self.fresh_dir('lt16k')
        _, _, s = self.download(T['odd16k.bin'], [self.peer], os.path.join(d, 'out.bin'))
        self.assertEqual([(p['address'], p['bytes']) for p in s['peers'] if p['bytes']],
                         [(self.peer, T['odd16k.bin'].total)])

    def test_single_256k_pieces(self):
        d = self.fresh_dir('lt256k')
        self.download(T['odd256k.bin'], [self.peer], os.path.join(d, 'out.bin'))

    def test_single_4m_pieces(self):
        d = self.fresh_dir('lt4m')
        self.download(T['odd4m.bin'], [self.peer], os.path.join(d, 'some name with spaces'))

    def test_multi_4m_pieces_into_new_directory(self):
        d = self.fresh_dir('ltm4m')
        out = os.path.join(d, 'new', 'dir')
        os.makedirs(os.path.dirname(out))
        _, final, _ = self.download(T['tree4m'], [self.peer], out)
        self.assertEqual(final, os.path.join(out, 'tree4m'))
        self.assertEqual(os.listdir(out), ['tree4m'])  # nothing else beside it

    def test_multi_16k_pieces_into_existing_directory(self):
        d = self.fresh_dir('ltm16k')
        with open(os.path.join(d, 'unrelated.txt'), 'w') as f:
            f.write('left alone\n')
        self.download(T['tree16k'], [self.peer], d)
        self.assertEqual(sorted(os.listdir(d)), ['tree16k', 'unrelated.txt'])
        with open(os.path.join(d, 'unrelated.txt')) as f:
            self.assertEqual(f.read(), 'left alone\n')

    def test_single_without_output_goes_to_cwd(self):
        d = self.fresh_dir('ltcwd1')
        self.download(T['odd256k.bin'], [self.peer], cwd=d)
        self.assertEqual(os.listdir(d), ['odd256k.bin'])

    def test_multi_without_output_goes_to_cwd(self):
        d = self.fresh_dir('ltcwd2')
        self.download(T['tree16k'], [self.peer], cwd=d)
        self.assertEqual(os.listdir(d), ['tree16k'])

    def test_download_piece_first_middle_last(self):
        for name in ('odd16k.bin', 'odd256k.bin', 'odd4m.bin', 'tree4m', 'tree16k'):
            meta = T[name]
            d = self.fresh_dir('ltpiece')
            for index in (0, meta.num_pieces // 2, meta.num_pieces - 1):
                with self.subTest(torrent=name, piece=index):
                    self.download_piece(meta, index, [self.peer],
                                        os.path.join(d, 'piece-%d' % index))
            self.assertEqual(sorted(os.listdir(d)), sorted(
                'piece-%d' % i for i in {0, meta.num_pieces // 2, meta.num_pieces - 1}))

    def test_handshake_peer_id_is_libtorrents(self):
        meta = T['odd16k.bin']
        probe_id = self.seeder.peer_ids[meta.info_hash_hex]
        got = self.handshake(meta, self.peer)
        # libtorrent 2.0 sends its fingerprint (-LT2080-) and then random bytes drawn anew for
        # each connection: compare the fingerprint with what our probe saw.
        self.assertEqual(got[:8], probe_id[:8])
        self.assertTrue(got.startswith(b'-LT'), got)

    def test_handshake_closed_port(self):
        port = swarm.closed_port()
        r = run_client('handshake', T['odd16k.bin'].path, '127.0.0.1:%d' % port)
        line = self.assertFails(r, 'torrent', code=1)
        self.assertIn('127.0.0.1:%d' % port, line)


# --- aria2 --------------------------------------------------------------------------------

class Aria2Peer(DownloadCase):
    """aria2c on its own address seeding three torrents (one process); --peer downloads."""

    @classmethod
    def setUpClass(cls):
        cls.seeder = SEEDERS['aria2']
        cls.peer = cls.seeder.address

    def test_single_16k_pieces(self):
        d = self.fresh_dir('a16k')
        _, _, s = self.download(T['odd16k.bin'], [self.peer], os.path.join(d, 'out.bin'))
        self.assertEqual([p['address'] for p in s['peers'] if p['bytes']], [self.peer])

    def test_multi_4m_pieces(self):
        d = self.fresh_dir('am4m')
        self.download(T['tree4m'], [self.peer], d)

    def test_multi_16k_pieces(self):
        d = self.fresh_dir('am16k')
        self.download(T['tree16k'], [self.peer], d)

    def test_download_piece_middle_and_last(self):
        meta = T['tree4m']
        d = self.fresh_dir('apiece')
        for index in (1, meta.num_pieces - 1):
            with self.subTest(piece=index):
                self.download_piece(meta, index, [self.peer], os.path.join(d, 'p%d' % index))

    def test_handshake_peer_id_is_aria2s(self):
        meta = T['tree4m']
        got = self.handshake(meta, self.peer)
        self.assertEqual(got, self.seeder.peer_ids[meta.info_hash_hex])
        self.assertTrue(got.startswith(b'A2-'), got)


# --- Transmission -------------------------------------------------------------------------

class TransmissionPeer(DownloadCase):
    """transmission-cli seeders, each on its own address: one for --peer, one for the
    handshake (once a peer has the whole torrent, Transmission, itself a seed, closes new
    connections from its address for a while), one announced to the tracker. Transmission
    unchokes a new peer only at its next rechoke (every 10 s), so the --peer and the tracker
    downloads run at the same time."""

    def test_handshake_peer_id_is_transmissions(self):
        seeder = SEEDERS['tr-hs']
        meta = T['odd16k.bin']
        got = self.handshake(meta, seeder.address)
        self.assertEqual(got, seeder.peer_ids[meta.info_hash_hex])
        self.assertTrue(got.startswith(b'-TR'), got)

    def test_download_with_peer_and_through_tracker(self):
        by_peer, tracked = T['tree256k'], TRACKED['tr-http.bin']
        d1, d2 = self.fresh_dir('tr'), self.fresh_dir('trk-tr')
        c1 = swarm.Client('download', '--no-tracker', '--peer', SEEDERS['tr'].address, '-o', d1,
                          '--progress=json', by_peer.path)
        try:
            c2 = swarm.Client('download', '-o', os.path.join(d2, 'out'), '--progress=json',
                              '--port', str(swarm.closed_port()), tracked.path)
            try:
                r1 = c1.wait(DOWNLOAD_TIMEOUT)
                r2 = c2.wait(DOWNLOAD_TIMEOUT)
            finally:
                c2.close()
        finally:
            c1.close()
        swarm.check_sanitizers(r1.stderr)
        swarm.check_sanitizers(r2.stderr)
        self.check_download(r1, by_peer, d1, None)
        s = self.check_download(r2, tracked, os.path.join(d2, 'out'), None)[2]
        self.assertEqual([p['address'] for p in s['peers'] if p['bytes']],
                         [SEEDERS['trk-tr'].address], s)
        s = r1.summary()
        self.assertEqual([p['address'] for p in s['peers'] if p['bytes']],
                         [SEEDERS['tr'].address], s)


# --- handshake against a scripted listener -------------------------------------------------

class ScriptedPeer:
    """Accepts one connection on 127.0.0.1 (free port), records what arrives, and answers
    with reply(received handshake) (None: close at once; b'': say nothing)."""

    def __init__(self, reply):
        self.reply = reply
        self.received = b''
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.address = '127.0.0.1:%d' % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(15)
            try:
                while len(self.received) < 68:
                    chunk = conn.recv(68 - len(self.received))
                    if not chunk:
                        break
                    self.received += chunk
                answer = self.reply(self.received)
                if answer is None:
                    return
                conn.sendall(answer)
                conn.recv(1)  # until the client closes (or the timeout)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        self.thread.join(20)


class HandshakeScripted(DownloadCase):
    PEER_ID = b'-XX0001-scripted!!!!'

    def peer(self, reply):
        p = ScriptedPeer(reply)
        self.addCleanup(p.close)
        return p

    def test_our_handshake_bytes(self):
        meta = T['odd16k.bin']
        p = self.peer(lambda hs: hs[:20] + bytes(8) + hs[28:48] + self.PEER_ID)
        got = self.handshake(meta, p.address)
        self.assertEqual(got, self.PEER_ID)
        hs = p.received
        self.assertEqual(len(hs), 68, hs)
        self.assertEqual(hs[:20], b'\x13BitTorrent protocol')
        self.assertIn(hs[20:28], (bytes(8), bytes.fromhex('0000000000100000')))
        self.assertEqual(hs[28:48], meta.info_hash)

    def test_wrong_info_hash_in_reply(self):
        meta = T['odd16k.bin']
        p = self.peer(lambda hs: hs[:20] + bytes(8) + bytes(20) + self.PEER_ID)
        r = run_client('handshake', meta.path, p.address, timeout=30)
        self.assertFails(r, 'torrent', code=1)

    def test_peer_closes_without_reply(self):
        p = self.peer(lambda hs: None)
        r = run_client('handshake', T['odd16k.bin'].path, p.address, timeout=30)
        self.assertFails(r, 'torrent', code=1)

    def test_silent_peer_gives_up_after_10_s(self):
        p = self.peer(lambda hs: b'')
        r = run_client('handshake', T['odd16k.bin'].path, p.address, timeout=40)
        self.assertFails(r, 'torrent', code=1)
        self.assertGreaterEqual(r.elapsed, 9, r)
        self.assertLess(r.elapsed, 16, r)


# --- through opentracker ------------------------------------------------------------------

class ThroughTracker(DownloadCase):
    """opentracker on 127.0.0.1; each seeder (on its own address) announced its own torrent;
    the client gets no --peer and must find the seeder through the tracker."""

    def through_tracker(self, name, role):
        meta = TRACKED[name]
        d = self.fresh_dir('trk')
        # Listen on the address the port was found free on: a wildcard listener would also
        # clash with another test's listener on that port at any other 127.x address.
        r, _, s = self.download(meta, output=os.path.join(d, 'out'), no_tracker=False,
                                extra=['--listen', swarm.LOOPBACK,
                                       '--port', str(swarm.closed_port())])
        self.assertEqual([p['address'] for p in s['peers'] if p['bytes']],
                         [SEEDERS[role].address], s)
        # On exit the client said 'stopped': only the seeder is left at the tracker.
        self.assertEqual(TRACKER.scrape(meta.info_hash_hex), (1, 0))
        return r

    def test_libtorrent_http_tracker(self):
        self.through_tracker('lt-http.bin', 'trk-lt')

    def test_libtorrent_udp_tracker(self):
        self.through_tracker('lt-udp', 'trk-lt')

    def test_aria2_http_tracker(self):
        self.through_tracker('aria2-http', 'trk-aria2')

    def test_exits_promptly_after_the_stopped_announce(self):
        # opentracker answers the 'stopped' announce at once: the client has no reason to
        # linger after the last piece (its wait for the tracker is bounded, not fixed).
        r = self.through_tracker('lt-http.bin', 'trk-lt')
        done = [o['elapsed'] for o in r.json_lines() if 'done' in o and o['done'] == o['total']]
        self.assertTrue(done, r)
        linger = r.summary()['seconds'] - done[0]
        self.assertLess(linger, 1.5, 'exit %.2f s after the download completed: %r' % (linger, r))


if __name__ == '__main__':
    btcommon.main()
