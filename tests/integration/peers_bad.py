#!/usr/bin/python3
"""`torrent download` against scripted misbehaving peers (fakepeer.py), for what real clients
won't do. Each case runs one honest fake seeder and one bad one (both with --peer and
--no-tracker) on their own 127.0.0.x addresses and checks the client's output byte for byte,
its exit status, its JSON summary, and what the fakes saw on the wire (bytes pushed, requests
received, who closed the connection and when), so every case can fail:

  wrong data        every block corrupted: pieces fail, are fetched again, the peer is banned
  stall             unchokes, takes requests, never answers: the blocks are asked of the honest
                    peer within the request timeout (20 s) although the download goes on longer
  half piece        sends half of a piece then disconnects
  oversized         a 0x7fffffff / 100 MB length prefix, then junk: dropped at once, memory flat
  bad bitfield/have a bitfield of the wrong size or with spare bits, a have out of range:
                    dropped at once, mid-download
  choke             chokes with requests outstanding: they go to the honest peer at once
  only bad          a lone corrupting peer: exit 1, saying it was banned
  reconnects        a peer that handshakes and then fails (quits when asked, or a bad
                    bitfield) is redialled with a growing delay, a few times (torrent.h), not
                    in a tight loop

The fakes' rates are chosen so each download lasts long enough for the misbehaviour to land
mid-download; the stall case takes ~30 s on purpose (longer than the 20 s request timeout).

Usage: peers_bad.py <path to torrent binary>       (run with /usr/bin/python3)
"""

import collections
import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import fakepeer as fp  # noqa: E402

MiB = 1024 * 1024
SIZE = 3 * MiB + 12345          # 13 pieces of 256 KiB, the last one short, 3 spare bitfield bits
PIECE = 256 * 1024
REQUEST_TIMEOUT = 20.0          # the client's default (src/peer.c)
RSS_LIMIT_KIB = 64 * 1024
SANITIZER_MARKERS = (b'ERROR: AddressSanitizer', b'ERROR: LeakSanitizer', b'runtime error:',
                     b'WARNING: AddressSanitizer')

_hosts = iter(range(2, 250))


def next_host():
    """A fresh 127.0.0.x for every fake, so summary addresses are unambiguous."""
    return '127.0.0.%d' % next(_hosts)


def log(text):
    print(text, file=sys.stderr, flush=True)


# --- running the client --------------------------------------------------------------------------

class Run:
    def __init__(self, argv, rc, out, err, t_start, t_end, max_rss_kib, rss_samples):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.t_start, self.t_end = t_start, t_end
        self.elapsed = t_end - t_start
        self.max_rss_kib = max_rss_kib
        self.rss_samples = rss_samples
        self.summary = None
        for line in err.decode('utf-8', 'replace').splitlines():
            if line.startswith('{') and '"summary"' in line:
                self.summary = json.loads(line)

    def peer(self, address):
        for p in (self.summary or {}).get('peers', []):
            if p['address'] == address:
                return p
        return None

    def __repr__(self):
        return 'rc=%s elapsed=%.2fs rss=%s KiB stdout=%r stderr(tail)=%r' % (
            self.rc, self.elapsed, self.max_rss_kib, self.out[-300:],
            self.err.decode('utf-8', 'replace')[-1500:])


def _vmrss_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_download(fx, out, peers, *extra, timeout=60, measure_memory=False):
    """Runs `torrent download` with --progress=json, sampling its VmRSS every 20 ms; kills it
    by PID after `timeout` s (and fails). measure_memory: under AddressSanitizer, shrink its
    quarantine of freed blocks (256 MiB by default) to 4 MiB, so that VmRSS shows what the
    client holds rather than what ASan keeps of what it freed; leaks and overflows are still
    caught."""
    argv = [btcommon.TORRENT, 'download', '--no-tracker', '--progress=json', '-o', out]
    for p in peers:
        argv += ['--peer', p.address]
    argv += [*map(str, extra), fx.path]
    env = dict(os.environ, no_proxy='*', NO_PROXY='*')
    if measure_memory:
        env['ASAN_OPTIONS'] = ':'.join(filter(None, [env.get('ASAN_OPTIONS'),
                                                     'quarantine_size_mb=4']))
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        t_start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se, env=env)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                v = _vmrss_kib(proc.pid)
                if v is not None:
                    samples.append((time.monotonic(), v))
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killed = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = True
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        t_end = time.monotonic()
        stop.set()
        sampler.join(5)
        so.seek(0)
        se.seek(0)
        r = Run(argv, proc.returncode, so.read(), se.read(), t_start, t_end,
                max((v for _, v in samples), default=None), samples)
    if killed:
        raise AssertionError('torrent did not exit within %s s: %r' % (timeout, r))
    for marker in SANITIZER_MARKERS:
        if marker in r.err:
            raise AssertionError('sanitizer report (%r): %s' % (
                marker, r.err.decode('utf-8', 'replace')[-4000:]))
    return r


# --- the misbehaving peers -----------------------------------------------------------------------

class CorruptConn(fp.Conn):
    """Every block it sends has its first byte flipped."""

    def block_payload(self, index, begin, length):
        data = bytearray(super().block_payload(index, begin, length))
        data[0] ^= 0xff
        return bytes(data)


class StallConn(fp.Conn):
    """Unchokes, records the requests, never answers one."""

    def on_request(self, index, begin, length):
        pass


class HalfPieceConn(fp.Conn):
    """Waits for requests covering at least half of one piece, sends that half (only blocks of
    that piece, in order) and closes the connection."""

    target = None

    def __init__(self, *args):
        super().__init__(*args)
        self.hold = True

    def on_tick(self):
        if self.target is not None:
            return
        asked = {}
        for index, begin, length in self.queue:
            asked.setdefault(index, []).append((index, begin, length))
        for index, reqs in sorted(asked.items(), key=lambda kv: -len(kv[1])):
            half = len(self.fx.blocks(index)) // 2
            if half >= 1 and len(reqs) >= half:
                self.target = index
                self.queue = collections.deque(sorted(reqs)[:half])
                self.hold = False
                return

    def after_block(self, index, begin, length):
        if len(self.blocks_sent) >= len(self.fx.blocks(self.target)) // 2:
            self.close_self()


class QuitConn(fp.Conn):
    """Unchokes, and closes the connection as soon as it is asked for a block."""

    def on_request(self, index, begin, length):
        self.close_self()


class OversizedConn(fp.Conn):
    """Right after the handshake: a length prefix of opts['length'] with id opts['msg_id'], then
    junk at about 8 MiB/s until opts['junk'] bytes are pushed or the client cuts it off."""

    t_header = None
    junk_pushed = 0

    def after_handshake(self):
        o = self.peer.opts
        self.send(struct.pack('>IB', o['length'], o['msg_id']))
        self.t_header = time.monotonic()
        chunk = os.urandom(64 * 1024)
        pace = len(chunk) / (8.0 * MiB)
        deadline = self.t_header + 6.0
        while self.junk_pushed < o['junk'] and time.monotonic() < deadline:
            # A client that dropped us shows as EOF here or as a reset on the next send.
            r, _, _ = select.select([self.sock], [], [], 0)
            if r:
                self._read()
            self.send(chunk)
            self.junk_pushed += len(chunk)
            time.sleep(pace)


class BitfieldConn(fp.Conn):
    """Sends opts['bitfield'](fx) as its bitfield, right after the handshake."""

    t_bad = None

    def bitfield_payload(self):
        return self.peer.opts['bitfield'](self.fx)

    def after_handshake(self):
        super().after_handshake()
        self.t_bad = time.monotonic()


class HaveConn(fp.Conn):
    """Serves normally; after opts['after'] blocks sends HAVE for opts['index'] and stops
    answering (its queued requests stay outstanding). On a reconnection it sends that HAVE
    right after its bitfield and serves nothing."""

    t_bad = None

    def after_handshake(self):
        super().after_handshake()
        if self is not self.peer.handshaken()[0]:
            self.bad_have()

    def after_block(self, index, begin, length):
        if self.t_bad is None and len(self.blocks_sent) >= self.peer.opts['after']:
            self.bad_have()

    def bad_have(self):
        self.hold = True
        self.send_msg(fp.HAVE, struct.pack('>I', self.peer.opts['index']))
        self.t_bad = time.monotonic()


class ChokeConn(fp.Conn):
    """Unchokes, answers opts['answer'] blocks, then chokes with the rest of its requests
    outstanding and never unchokes (the connection stays open)."""

    outstanding_at_choke = None

    def after_block(self, index, begin, length):
        if self.t_choked is None and len(self.blocks_sent) >= self.peer.opts['answer']:
            self.outstanding_at_choke = list(self.queue)
            self.queue.clear()
            self.choke()


# --- the cases ----------------------------------------------------------------------------------

class BadPeers(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix='peers-bad-')
        cls.tmp = cls._tmp.name
        cls.fx = fp.Torrent(cls.tmp, SIZE, PIECE, seed=4)
        cls.timings = []

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()
        for name, secs, info in cls.timings:
            log('  %-48s %6.2f s  %s' % (name, secs, info))

    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        self.timings.append((self.id().split('.')[-1], time.monotonic() - self.t0,
                             getattr(self, 'info', '')))

    # --- helpers -------------------------------------------------------------------------------

    def peer(self, conn_class=fp.Conn, rate=None, **opts):
        p = fp.FakePeer(self.fx, next_host(), conn_class, rate=rate, **opts).start()
        self.addCleanup(p.stop)
        return p

    def out_path(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        return os.path.join(d, 'out.bin')

    def download(self, peers, *extra, timeout=60, measure_memory=False):
        out = self.out_path()
        r = run_download(self.fx, out, peers, *extra, timeout=timeout,
                         measure_memory=measure_memory)
        for p in peers:  # the client is gone: let every fake connection see its end
            self.assertTrue(p.settle(), 'fake connections still open after the client exited: '
                            + p.describe())
        return r, out

    def ctx(self, r, *peers):
        return '%r\npeers: %s' % (r, '\n       '.join(p.describe() for p in peers))

    def assertDownloaded(self, r, out, honest, bad):
        ctx = self.ctx(r, honest, bad)
        self.assertEqual(r.rc, 0, ctx)
        self.assertEqual(r.out, ('Downloaded %s to %s.\n' % (self.fx.path, out)).encode(), ctx)
        with open(out, 'rb') as f:
            self.assertTrue(f.read() == self.fx.data, 'output differs from the source; ' + ctx)
        self.assertFalse(os.path.exists(out + '.part'), ctx)
        self.assertIsNotNone(r.summary, ctx)
        self.assertEqual(r.summary['verified'], SIZE, ctx)
        h = r.peer(honest.address)
        self.assertIsNotNone(h, ctx)
        self.assertFalse(h['banned'], ctx)
        self.assertGreater(h['bytes'], 0, ctx)
        self.assertEqual(honest.errors(), [], ctx)
        self.info = 'client %.2f s, peak RSS %s KiB, %d connection(s) to the bad peer' % (
            r.elapsed, r.max_rss_kib, len(bad.conns))
        return ctx

    def assertDroppedAtOnce(self, r, conn, t_bad, ctx, within=2.0):
        """The client closed conn within `within` s of t_bad, while it was still downloading."""
        self.assertIsNotNone(t_bad, 'the bad message was never sent; ' + ctx)
        self.assertTrue(conn.client_closed, 'the client did not close the connection; ' + ctx)
        delay = conn.t_closed - t_bad
        self.assertLess(delay, within, 'closed %.2f s after the bad message; %s' % (delay, ctx))
        self.assertLess(conn.t_closed, r.t_end - 0.3,
                        'closed only when the download ended; ' + ctx)
        return delay

    # --- 1: wrong data -------------------------------------------------------------------------

    def test_1_wrong_data(self):
        honest = self.peer(rate=2 * MiB)
        bad = self.peer(CorruptConn)
        r, out = self.download([honest, bad])
        ctx = self.assertDownloaded(r, out, honest, bad)
        self.assertGreater(bad.block_bytes_sent, 0, 'the bad peer was never asked; ' + ctx)
        self.assertGreaterEqual(r.summary['pieces_failed'], 1, ctx)
        b = r.peer(bad.address)
        self.assertIsNotNone(b, ctx)
        self.assertTrue(b['banned'], ctx)
        # Banned means dropped and never let back in: one connection, closed by the client
        # before the end.
        self.assertEqual(len(bad.handshaken()), 1, ctx)
        c = bad.handshaken()[0]
        self.assertTrue(c.client_closed, ctx)
        self.assertLess(c.t_closed, r.t_end - 0.2, ctx)
        # Everything it sent was thrown away: the honest peer supplied the whole file.
        self.assertGreaterEqual(r.summary['received'] - b['bytes'], SIZE, ctx)

    # --- 2: stall after unchoke ----------------------------------------------------------------

    def test_2_stall_after_unchoke(self):
        # The honest peer is slowed so that the download outlasts the request timeout: the
        # stalling peer must be dropped when that timeout strikes and its blocks handed to the
        # honest peer then, not only rescued by the endgame at the very end.
        honest = self.peer(rate=SIZE / 30.0)
        bad = self.peer(StallConn)
        r, out = self.download([honest, bad], '--stall-timeout', 300, timeout=60)
        ctx = self.assertDownloaded(r, out, honest, bad)
        self.assertLess(r.elapsed, 45.0, ctx)
        self.assertEqual(bad.block_bytes_sent, 0, ctx)
        c = bad.handshaken()[0]
        stalled = [(i, b, n) for _, i, b, n in c.requests]
        self.assertGreater(len(stalled), 0, 'the stalling peer was never asked; ' + ctx)
        t_asked = max(t for t, _, _, _ in c.requests)
        self.assertTrue(c.client_closed, ctx)
        self.assertLess(c.t_closed - t_asked, REQUEST_TIMEOUT + 3.0,
                        'stalling peer dropped %.1f s after its last request (request timeout '
                        '%.0f s); %s' % (c.t_closed - t_asked, REQUEST_TIMEOUT, ctx))
        self.assertLess(c.t_closed, r.t_end - 2.0, 'dropped only when the download ended; '
                        + ctx)
        # Its blocks went to the honest peer when it was dropped (all of them, in the end).
        asked = {}
        for t, i, b, n in honest.requests:
            asked.setdefault((i, b, n), t)
        missing = [k for k in stalled if k not in asked]
        self.assertEqual(missing, [], 'stalled blocks never asked of the honest peer; ' + ctx)
        first = min(asked[k] for k in stalled)
        self.assertLess(first - c.t_closed, 3.0, 'first stalled block asked of the honest peer '
                        '%.1f s after the drop; %s' % (first - c.t_closed, ctx))
        self.info += '; stalling peer dropped %.1f s after its last request' % (
            c.t_closed - t_asked)

    # --- 3: disconnect mid-piece ---------------------------------------------------------------

    def test_3_disconnect_mid_piece(self):
        honest = self.peer(rate=2 * MiB)
        bad = self.peer(HalfPieceConn)
        r, out = self.download([honest, bad])
        ctx = self.assertDownloaded(r, out, honest, bad)
        self.assertLess(r.elapsed, REQUEST_TIMEOUT - 5, ctx)
        c = bad.handshaken()[0]
        self.assertIsNotNone(c.target, 'never asked for half a piece; ' + ctx)
        self.assertEqual(c.closed_by, 'self', ctx)
        piece = c.target
        half = len(self.fx.blocks(piece)) // 2
        self.assertEqual(len(c.blocks_sent), half, ctx)
        self.assertEqual({b[1] for b in c.blocks_sent}, {piece}, ctx)
        # What it had been asked for of that piece and did not send was asked for again once
        # it left (of the honest peer, or of the same address reconnected); what it did send
        # counted (its data was good).
        asked = {(i, b) for t, i, b, _ in honest.requests + bad.requests if t >= c.t_closed}
        got = {b[2] for b in c.blocks_sent}
        for _, index, begin, _ in c.requests:
            if index == piece and begin not in got:
                self.assertIn((piece, begin), asked, ctx)
        self.assertLessEqual(r.peer(bad.address)['bytes'], bad.block_bytes_sent, ctx)
        self.assertEqual(r.summary['pieces_failed'], 0, ctx)

    # --- 4: oversized length prefix ------------------------------------------------------------

    def _oversized(self, length, msg_id):
        honest = self.peer(rate=1 * MiB)
        bad = self.peer(OversizedConn, length=length, msg_id=msg_id, junk=20 * MiB)
        r, out = self.download([honest, bad], measure_memory=True)
        ctx = self.assertDownloaded(r, out, honest, bad)
        conns = bad.handshaken()
        self.assertGreater(len(conns), 0, ctx)
        self.assertDroppedAtOnce(r, conns[0], conns[0].t_header, ctx)
        for c in conns:  # the first connection and any reconnection
            if c.t_header is None:
                continue  # a reconnect cut short by the end of the download
            self.assertTrue(c.client_closed, 'connection #%d: closed_by=%s error=%s; %s' % (
                conns.index(c), c.closed_by, c.error, ctx))
            self.assertLess(c.t_closed - c.t_header, 2.0, ctx)
            self.assertLess(c.junk_pushed, 20 * MiB, 'all the junk went in; ' + ctx)
        self.assertIsNotNone(r.max_rss_kib, ctx)
        self.assertLess(r.max_rss_kib, RSS_LIMIT_KIB, ctx)
        log('    oversized %#x id %d: first connection dropped after %.3f s with %d KiB of '
            'junk pushed; %d KiB over %d connections; peak RSS %d KiB' % (
                length, msg_id, conns[0].t_closed - conns[0].t_header,
                conns[0].junk_pushed // 1024, sum(c.junk_pushed for c in conns) // 1024,
                len(conns), r.max_rss_kib))

    def test_4a_oversized_prefix_piece_2g(self):
        self._oversized(0x7fffffff, fp.PIECE)

    def test_4b_oversized_prefix_piece_100m(self):
        self._oversized(100_000_000, fp.PIECE)

    def test_4c_oversized_prefix_bitfield_100m(self):
        self._oversized(100_000_000, fp.BITFIELD)

    # --- 5: bitfield of the wrong size, have out of range --------------------------------------

    def _dropped_for_bitfield(self, make):
        honest = self.peer(rate=2 * MiB)
        bad = self.peer(BitfieldConn, bitfield=make)
        r, out = self.download([honest, bad])
        ctx = self.assertDownloaded(r, out, honest, bad)
        c = bad.handshaken()[0]
        self.assertDroppedAtOnce(r, c, c.t_bad, ctx, within=1.0)
        self.assertEqual(c.requests, [], ctx)
        self.assertEqual(r.peer(bad.address)['bytes'], 0, ctx)

    def test_5a_bitfield_too_long(self):
        self._dropped_for_bitfield(lambda fx: fx.full_bitfield() + b'\xff')

    def test_5b_bitfield_too_short(self):
        self._dropped_for_bitfield(lambda fx: fx.full_bitfield()[:-1])

    def test_5c_bitfield_spare_bits_set(self):
        self._dropped_for_bitfield(lambda fx: fx.full_bitfield()[:-1] + b'\xff')

    def _dropped_for_have(self, index):
        honest = self.peer(rate=2 * MiB)
        bad = self.peer(HaveConn, after=4, index=index)
        r, out = self.download([honest, bad])
        ctx = self.assertDownloaded(r, out, honest, bad)
        c = bad.handshaken()[0]
        self.assertEqual(len(c.blocks_sent), 4, ctx)
        self.assertDroppedAtOnce(r, c, c.t_bad, ctx, within=1.0)

    def test_5d_have_index_equal_to_piece_count(self):
        self._dropped_for_have(self.fx.piece_count)

    def test_5e_have_index_huge(self):
        self._dropped_for_have(0xffffffff)

    # --- 6: choke with requests outstanding ----------------------------------------------------

    def test_6_choke_with_requests_outstanding(self):
        # The honest peer is slowed (about 5 s in all) so that the endgame, which would also
        # rescue blocks stuck at a choking peer, starts only seconds after the choke.
        honest = self.peer(rate=640 * 1024)
        bad = self.peer(ChokeConn, answer=2)
        r, out = self.download([honest, bad])
        ctx = self.assertDownloaded(r, out, honest, bad)
        c = bad.handshaken()[0]
        self.assertIsNotNone(c.t_choked, 'never choked; ' + ctx)
        # Every request it did not answer (those that crossed our choke on the wire too; and
        # whether or not the client cancelled it later).
        answered = {b[1:] for b in c.blocks_sent}
        held = {r_[1:] for r_ in c.requests if r_[1:] not in answered}
        self.assertGreater(len(held), 0, 'nothing was outstanding at the choke; ' + ctx)
        late = [r_ for r_ in c.requests if r_[0] > c.t_choked + 0.5]
        self.assertEqual(late, [], 'requests sent to a peer that choked us; ' + ctx)
        # They went back to the picker at the choke, not at the endgame: the honest peer is
        # asked for every one of them within 2 s although the download goes on for seconds.
        asked = {}
        for t, i, b, n in honest.requests:
            asked.setdefault((i, b, n), t)
        slow = []
        for key in sorted(held):
            t2 = asked.get(key)
            self.assertIsNotNone(t2, 'block %r never asked of the honest peer; %s' % (key, ctx))
            if t2 - c.t_choked > 2.0:
                slow.append('%d/%d after %.2f s' % (key[0], key[1], t2 - c.t_choked))
        self.assertEqual(slow, [], ctx)
        self.assertGreater(r.t_end - c.t_choked, 3.5, 'download too short to tell; ' + ctx)
        self.assertLess(r.elapsed, REQUEST_TIMEOUT - 5, ctx)
        # The choking peer is not a protocol violator: kept until the end, not banned.
        self.assertFalse(r.peer(bad.address)['banned'], ctx)
        self.assertEqual(r.peer(bad.address)['bytes'], c.block_bytes_sent, ctx)

    # --- 8: reconnecting to a peer that was dropped ---------------------------------------------

    def _reconnects(self, conn_class, **opts):
        """torrent.h: failed addresses are retried with a growing delay, a few times. A peer that
        completes the handshake and then fails must not be redialled at once, over and over."""
        honest = self.peer(rate=1 * MiB)
        bad = self.peer(conn_class, **opts)
        r, out = self.download([honest, bad])
        ctx = self.assertDownloaded(r, out, honest, bad)
        conns = list(bad.conns)
        self.assertGreater(r.elapsed, 2.5, 'download too short to tell; ' + ctx)
        gaps = [b.t_open - a.t_closed for a, b in zip(conns, conns[1:]) if a.t_closed]
        self.assertLessEqual(len(conns), 4, '%d connections to %s in %.1f s, gaps %s; %s' % (
            len(conns), bad.address, r.elapsed, ['%.3f' % g for g in gaps[:5]], ctx[:3000]))
        self.assertTrue(all(g >= 1.0 for g in gaps), 'redialled after %s s; %s' % (
            ['%.3f' % g for g in gaps[:5]], ctx[:3000]))

    def test_8a_reconnect_backoff_after_disconnect(self):
        self._reconnects(QuitConn)

    def test_8b_reconnect_backoff_after_protocol_error(self):
        self._reconnects(BitfieldConn, bitfield=lambda fx: fx.full_bitfield() + b'\xff')

    # --- 7: only a bad peer --------------------------------------------------------------------

    def test_7_only_a_corrupting_peer(self):
        bad = self.peer(CorruptConn)
        out = self.out_path()
        r = run_download(self.fx, out, [bad], '--stall-timeout', 5, timeout=40)
        self.assertTrue(bad.settle(), bad.describe())
        ctx = self.ctx(r, bad)
        self.assertEqual(r.rc, 1, ctx)
        self.assertEqual(r.out, b'', ctx)
        err = r.err.decode('utf-8', 'replace')
        last = [ln for ln in err.splitlines() if not ln.startswith('{')]
        self.assertTrue(last and last[-1].startswith('torrent: download: '), ctx)
        self.assertIn(bad.address, last[-1], ctx)
        self.assertIn('banned', last[-1], ctx)
        self.assertIn('verification', last[-1], ctx)
        self.assertFalse(os.path.exists(out), ctx)
        self.assertGreater(bad.block_bytes_sent, 0, ctx)
        self.assertEqual(len(bad.handshaken()), 1, 'a banned peer was reconnected; ' + ctx)
        self.assertTrue(bad.handshaken()[0].client_closed, ctx)
        # Banned at its first bad piece: well before the stall timeout would end it.
        self.assertLess(r.elapsed, 5.0, ctx)
        self.info = 'client %.2f s, exit %d: %s' % (r.elapsed, r.rc, last[-1][:90])


if __name__ == '__main__':
    btcommon.main()
