"""A scripted peer (upload_common.MiniPeer, plain sockets) abusing the upload side of
`torrent seed`: requests out of range, requests longer than 16 KiB (up to 1 MiB), thousands of
requests without reading, requests while choked, requests then disconnect. Bad requests must
close the connection (the seed says why with -v); requests while choked must be ignored;
thousands of requests must not make the seed's memory grow; and after every abuse the seed must
still be running and serve an honest peer the whole torrent, and exit 0 on Ctrl-C.

Run as: /usr/bin/python3 upload_abuse.py <path to torrent binary>
"""

import os
import shutil
import socket
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402
from upload_common import (BITFIELD, BLOCK, INTERESTED, PIECE, UNCHOKE,  # noqa: E402
                           MiniPeer, Seed, honest_download, stop_on_sigterm, vmrss_kib)

IPS = swarm.IpPool('127.0.7.')
W = None
META = None
SRC = None
CONTENT = None
PLEN = 64 * KiB
SIZE = 4 * MiB + 1000  # 65 pieces of 64 KiB, the last 1000 bytes
RSS_GROWTH_LIMIT_KIB = 16 * 1024
CLOSE_TIMEOUT = 5  # seconds for the seed to drop a peer that sent a bad request


def setUpModule():
    global W, META, SRC, CONTENT
    W = tempfile.mkdtemp(prefix='upload-abuse-')
    SRC = swarm.make_single(os.path.join(W, 'src'), 'abuse.bin', SIZE, 77)
    META = swarm.make_torrent(SRC, os.path.join(W, 'abuse.torrent'), PLEN)
    with open(SRC, 'rb') as f:
        CONTENT = f.read()
    assert META.num_pieces == 65 and META.piece_size(64) == 1000


def tearDownModule():
    if W:
        shutil.rmtree(W, ignore_errors=True)


def block_data(index, begin, length):
    a = index * PLEN + begin
    return CONTENT[a:a + length]


def distinct_requests(n):
    """n distinct valid 16 KiB requests (index, begin, length): begins 512 bytes apart."""
    reqs = [(index, begin, BLOCK) for begin in range(0, PLEN - BLOCK + 1, 512)
            for index in range(META.num_pieces - 1)][:n]
    assert len(set(reqs)) == n
    return reqs


class Abuse(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.seed = Seed(META, SRC, IPS.take())
        self.addCleanup(self.seed.close)

    def connect(self, rcvbuf=None):
        p = MiniPeer(self.seed.ip, self.seed.port, META, IPS.take(), rcvbuf=rcvbuf)
        self.addCleanup(p.close)
        p.handshake()
        return p

    def unchoked(self):
        """A connection that said INTERESTED and got UNCHOKE."""
        p = self.connect()
        p.send(INTERESTED)
        p.wait_for(UNCHOKE, 5)
        return p

    def assertServesHonestPeer(self):
        """The seed is still running and gives an honest peer the whole torrent."""
        self.assertTrue(self.seed.alive(), self.seed.stderr()[-3000:])
        data = honest_download(self.seed, META, IPS.take())
        self.assertTrue(data == CONTENT, 'honest download differs from the source')

    def finish(self):
        """After the abuse: the seed serves an honest peer, then exits 0 on Ctrl-C."""
        self.assertServesHonestPeer()
        r = self.seed.stop()
        self.assertEqual(r.returncode, 0, r)
        self.assertIsNotNone(r.summary(), r)

    def assertDropped(self, p, what):
        """The seed closes p's connection, and says so with a reason naming the request."""
        self.assertTrue(p.closed_by_peer(CLOSE_TIMEOUT),
                        'seed kept the connection after %s' % what)
        lines = self.seed.wait_closed(p.local, timeout=5)
        self.assertTrue(any('request' in line for line in lines), (what, lines))
        self.assertTrue(self.seed.alive())

    # --- bad requests close the connection --------------------------------------------------

    def test_request_for_piece_out_of_range(self):
        for index in (META.num_pieces, META.num_pieces + 1, 0xFFFFFFFF):
            with self.subTest(index=index):
                p = self.unchoked()
                p.request(index, 0, BLOCK)
                self.assertDropped(p, 'a request for piece %d' % index)
        self.finish()

    def test_request_past_the_end_of_a_piece(self):
        last = META.num_pieces - 1
        cases = [
            (0, PLEN - BLOCK // 2, BLOCK),  # crosses into the next piece
            (0, PLEN, 1),  # starts at the piece's end
            (last, 0, META.piece_size(last) + 1),  # the short last piece, one byte too many
            (last, META.piece_size(last), 1),
            (5, 0xFFFFFFF0, BLOCK),  # begin + length wraps around 32 bits
        ]
        for index, begin, length in cases:
            with self.subTest(index=index, begin=begin, length=length):
                p = self.unchoked()
                p.request(index, begin, length)
                self.assertDropped(p, 'a request (%d, %d, %d)' % (index, begin, length))
        self.finish()

    def test_requests_longer_than_16k(self):
        for length in (BLOCK + 1, 128 * KiB, 1 * MiB):
            with self.subTest(length=length):
                p = self.unchoked()
                p.request(0, 0, length)
                self.assertDropped(p, 'a request for %d bytes' % length)
        self.finish()

    def test_valid_requests_at_the_limits_are_served(self):
        """The counterpart of the cases above: a full 16 KiB block, the last byte of a piece
        and the whole short last piece are served, with the right bytes."""
        last = META.num_pieces - 1
        p = self.unchoked()
        for index, begin, length in [(0, 0, BLOCK), (3, PLEN - 1, 1), (last, 0, 1000),
                                     (last, 999, 1), (7, 12345, BLOCK)]:
            p.request(index, begin, length)
            (mid, payload), _ = p.wait_for(PIECE, 5)
            self.assertEqual(struct.unpack('>II', payload[:8]), (index, begin))
            self.assertTrue(payload[8:] == block_data(index, begin, length),
                            'wrong bytes for (%d, %d, %d)' % (index, begin, length))
        self.finish()

    # --- choked: requests are ignored --------------------------------------------------------

    def test_requests_while_choked_are_ignored(self):
        p = self.connect()
        mid, _ = p.recv(5)
        self.assertEqual(mid, BITFIELD)  # a seed shows its pieces right after the handshake
        # Not interested, so never unchoked: these requests must get no PIECE.
        choked_reqs = [(i, 0, BLOCK) for i in range(10)]
        for r in choked_reqs:
            p.request(*r)
        seen = []
        with self.assertRaises(socket.timeout):
            seen.append(p.wait_for(PIECE, 1.5))
        self.assertTrue(p.peer_choking)
        # Now interested: unchoked, but the earlier requests are still not answered.
        p.send(INTERESTED)
        p.wait_for(UNCHOKE, 5)
        with self.assertRaises(socket.timeout):
            seen.append(p.wait_for(PIECE, 1.0))
        self.assertEqual(seen, [])
        # A request made now is served.
        p.request(20, BLOCK, BLOCK)
        (mid, payload), _ = p.wait_for(PIECE, 5)
        self.assertEqual(struct.unpack('>II', payload[:8]), (20, BLOCK))
        self.assertTrue(payload[8:] == block_data(20, BLOCK, BLOCK))
        with self.assertRaises(socket.timeout):  # and nothing else
            p.wait_for(PIECE, 0.5)
        self.finish()

    def test_requests_before_our_unchoke_are_ignored(self):
        """Every upload slot taken by five interested peers: a sixth says INTERESTED and asks
        at once, before any UNCHOKE. Those requests are dropped, not kept for later: once the
        others are gone and it is unchoked, they are still not answered. (The seed rechokes
        every 10 s from its first second on: this runs between its 2nd and its 10th second.)"""
        swarm.wait_until(lambda: any(o.get('seeding') and o['elapsed'] >= 2
                                     for o in self.seed.client.progress()), 10,
                         what='the seed to be up for 2 s')
        others = [self.unchoked() for _ in range(5)]
        p = self.connect()
        p.send(INTERESTED)
        early = [(i, 0, BLOCK) for i in range(30, 40)]
        p.send_raw(b''.join(MiniPeer.request_msg(*r) for r in early))
        try:
            p.wait_for(UNCHOKE, 1.5)
            got_unchoke = True
        except socket.timeout:
            got_unchoke = False
        self.assertFalse(got_unchoke, 'a sixth interested peer was unchoked at once, with '
                         'every upload slot (4 + 1 optimistic) taken')
        for q in others:
            q.close()
        swarm.wait_until(lambda: len(self.seed.closed_lines()) >= 5, 10,
                         what='the seed to see the five others leave')
        p.send(3)  # NOT_INTERESTED, then INTERESTED again: a slot is free now
        p.send(INTERESTED)
        if p.peer_choking:
            p.wait_for(UNCHOKE, 12)  # at once, or at the next rechoke (every 10 s)
        with self.assertRaises(socket.timeout):
            p.wait_for(PIECE, 1.0)
        p.request(41, 0, BLOCK)
        (mid, payload), _ = p.wait_for(PIECE, 5)
        self.assertEqual(struct.unpack('>II', payload[:8]), (41, 0))
        self.finish()

    def test_bitfield_after_handshake(self):
        p = self.connect()
        mid, payload = p.recv(5)
        self.assertEqual(mid, BITFIELD)
        n = META.num_pieces
        self.assertEqual(len(payload), (n + 7) // 8)
        want = bytearray(b'\xff' * (n // 8))
        if n % 8:
            want.append((0xff << (8 - n % 8)) & 0xff)  # spare bits clear
        self.assertEqual(payload, bytes(want))
        self.finish()

    # --- thousands of requests ---------------------------------------------------------------

    def test_thousands_of_requests_without_reading(self):
        """5000 distinct valid requests (80 MB asked for) from a peer that does not read: the
        seed's RSS must stay flat and an honest peer must be served meanwhile."""
        honest_download(self.seed, META, IPS.take())  # warm-up: buffers allocated once
        base = vmrss_kib(self.seed.pid)
        p = self.connect(rcvbuf=4096)  # a small window: the seed's sends fill up soon
        p.send(INTERESTED)
        p.wait_for(UNCHOKE, 5)
        reqs = distinct_requests(5000)
        p.send_raw(b''.join(MiniPeer.request_msg(*r) for r in reqs))
        peak = base
        end = time.monotonic() + 3
        while time.monotonic() < end:
            rss = vmrss_kib(self.seed.pid)
            self.assertIsNotNone(rss, 'the seed died: %s' % self.seed.stderr()[-3000:])
            peak = max(peak, rss)
            time.sleep(0.05)
        self.assertLess(peak - base, RSS_GROWTH_LIMIT_KIB,
                        'RSS grew from %d KiB to %d KiB' % (base, peak))
        # The abuser still connected and not reading, an honest peer is served in full. (Not
        # counted above: under ASan its traffic alone grows the RSS by ~8 MiB of quarantine.)
        self.assertServesHonestPeer()
        # Now read what the abuser gets: every block served must be a requested one with the
        # right bytes (or the seed may have closed the connection).
        asked = set(reqs)
        served = 0
        p.sock.settimeout(2)
        try:
            while True:
                mid, payload = p.recv(2)
                if mid != PIECE:
                    continue
                index, begin = struct.unpack('>II', payload[:8])
                key = (index, begin, len(payload) - 8)
                self.assertIn(key, asked)
                self.assertTrue(payload[8:] == block_data(*key), key)
                asked.discard(key)
                served += 1
        except (socket.timeout, EOFError, ConnectionError):
            pass
        self.assertLessEqual(served, 5000)
        p.close()
        self.finish()

    def test_cancel_drops_queued_requests(self):
        """2000 distinct requests from a peer that does not read, then a CANCEL for each: only the
        blocks already on their way (the seed's output buffer and the socket's, a few MB at
        most) may still arrive, not the 2000 (33 MB)."""
        p = self.connect(rcvbuf=4096)
        p.send(INTERESTED)
        p.wait_for(UNCHOKE, 5)
        reqs = distinct_requests(2000)
        p.send_raw(b''.join(MiniPeer.request_msg(*r) for r in reqs))
        time.sleep(0.5)  # the seed fills its buffers, and stops: the peer does not read
        p.send_raw(b''.join(MiniPeer.request_msg(*r, mid=8) for r in reqs))  # CANCEL
        time.sleep(0.5)
        served = 0
        try:
            while True:
                mid, payload = p.recv(1.5)
                if mid == PIECE:
                    key = (*struct.unpack('>II', payload[:8]), len(payload) - 8)
                    self.assertIn(key, reqs)
                    self.assertTrue(payload[8:] == block_data(*key), key)
                    served += 1
        except (socket.timeout, EOFError, ConnectionError):
            pass
        self.assertLess(served, 600, 'cancelled requests were still served')
        self.finish()

    # --- other garbage ----------------------------------------------------------------------

    def test_wrong_info_hash_is_dropped(self):
        s = socket.create_connection((self.seed.ip, self.seed.port), timeout=5,
                                     source_address=(IPS.take(), 0))
        self.addCleanup(s.close)
        other = bytes(20) if META.info_hash != bytes(20) else b'\x01' * 20
        s.sendall(b'\x13BitTorrent protocol' + bytes(8) + other + b'-MP0001-' + bytes(12))
        got = b''
        end = time.monotonic() + CLOSE_TIMEOUT
        closed = False
        while time.monotonic() < end:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
        # (BEP 3 lets a recipient serving one torrent send its handshake before reading the
        # initiator's: only the close is checked.)
        self.assertTrue(closed, 'the seed kept a connection for another torrent')
        self.seed.wait_closed('%s:%d' % s.getsockname(), timeout=5)
        self.finish()

    def test_huge_message_length(self):
        """A length prefix of 2 GiB (a PIECE 'coming'): dropped at once, no memory taken."""
        base = vmrss_kib(self.seed.pid)
        p = self.unchoked()
        p.send_raw(struct.pack('>IB', 0x7FFFFFFF, PIECE) + bytes(1000))
        self.assertTrue(p.closed_by_peer(CLOSE_TIMEOUT), 'seed kept the connection')
        self.assertLess(vmrss_kib(self.seed.pid) - base, RSS_GROWTH_LIMIT_KIB)
        self.finish()

    # --- requests then disconnect ------------------------------------------------------------

    def test_requests_then_disconnect(self):
        """Peers that ask for hundreds of blocks and go away at once (FIN or RST), several in
        a row and two at the same time."""
        for i in range(6):
            p = self.unchoked()
            p.send_raw(b''.join(MiniPeer.request_msg(j % (META.num_pieces - 1), 0, BLOCK)
                                for j in range(500)))
            if i == 4:  # two connections at once, both leaving
                q = self.unchoked()
                q.send_raw(b''.join(MiniPeer.request_msg(j, BLOCK, BLOCK) for j in range(60)))
                q.close(reset=True)
            p.close(reset=bool(i % 2))
        swarm.wait_until(lambda: len(self.seed.closed_lines()) >= 7 or not self.seed.alive(),
                         10, what='the seed to see 7 peers leave')
        self.finish()

    def test_disconnect_in_the_middle_of_a_message(self):
        p = self.unchoked()
        p.send_raw(MiniPeer.request_msg(1, 0, BLOCK)[:7])  # half a request
        p.close(reset=True)
        q = self.connect()
        q.send_raw(b'\x00\x00\x00')  # half a length prefix
        q.close()
        self.finish()


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
