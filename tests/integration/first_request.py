#!/usr/bin/python3
"""The first requests go out in the callback of the message that allows them, not at the
torrent's next one-second tick (issue 15: "the first requests go out with the interested
message's reply").

Judged without a clock, by scripted seeders (fakepeer.py) that take back in the same write
what they allowed, so that only requests made while the allowing message is handled can reach
them; a client that requests from its tick finds nothing allowed and sends nothing:
- UNCHOKE: the seeder answers the client's INTERESTED with UNCHOKE and CHOKE in one write and
  stays choking for a few seconds;
- ALLOWED_FAST (BEP 6): a Fast seeder sends HAVE_ALL, ALLOWED_FAST for one piece and an empty
  BITFIELD in one write (a later BITFIELD is the peer's new whole), and does not unchoke.
Then the seeder has everything and unchokes for good, and the download must complete with the
right bytes.

Usage: first_request.py <path to torrent binary>       (run with /usr/bin/python3)
"""

import os
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import fakepeer as fp  # noqa: E402

SIZE = 1024 * 1024 + 777
PIECE = 256 * 1024
HOLD = 3.5       # choked this long after the blink: three ticks or more of the client's
TIMEOUT = 30.0   # the whole download, killed by PID past this


class BlinkConn(fp.Conn):
    """Unchokes and chokes again in one write when the client is interested; drops the requests
    that arrive while it chokes (as a real peer does); unchokes for good HOLD s later."""

    t_blink = None
    requests_while_choked = 0

    def on_interested(self):
        if self.t_blink is None:
            self.t_blink = time.monotonic()
            self.send(fp.msg(fp.UNCHOKE) + fp.msg(fp.CHOKE))

    def on_request(self, index, begin, length):
        if self.am_choking:
            self.requests_while_choked += 1
        else:
            super().on_request(index, begin, length)

    def on_tick(self):
        if self.t_blink is not None and self.am_choking and \
                time.monotonic() - self.t_blink > HOLD:
            self.unchoke()


FAST_RESERVED = bytes([0, 0, 0, 0, 0, 0, 0, 0x04])
HAVE_ALL, ALLOWED_FAST = 14, 17
ALLOWED_PIECE = 2


class AllowOnceConn(fp.Conn):
    """A Fast seeder that allows one piece and takes back its HAVE_ALL in the same write,
    queues every request (with Fast each is answered), and after HOLD s has every piece again,
    unchokes and serves."""

    t_blink = None
    requests_while_choked = 0

    def handshake_reserved(self):
        return FAST_RESERVED

    def after_handshake(self):
        self.t_blink = time.monotonic()
        empty = bytes(len(self.fx.full_bitfield()))
        self.send(fp.msg(HAVE_ALL) + fp.msg(ALLOWED_FAST, struct.pack('>I', ALLOWED_PIECE)) +
                  fp.msg(fp.BITFIELD, empty))

    def on_interested(self):
        pass

    def on_request(self, index, begin, length):
        if self.am_choking:
            self.requests_while_choked += 1
        super().on_request(index, begin, length)

    def on_tick(self):
        if self.am_choking and time.monotonic() - self.t_blink > HOLD:
            self.send_msg(fp.BITFIELD, self.fx.full_bitfield())
            self.unchoke()


class FirstRequest(unittest.TestCase):
    def run_case(self, conn_class, host):
        with tempfile.TemporaryDirectory(prefix='first-request-') as tmp:
            fx = fp.Torrent(tmp, SIZE, PIECE, seed=15)
            peer = fp.FakePeer(fx, host, conn_class).start()
            self.addCleanup(peer.stop)
            out = os.path.join(tmp, 'out.bin')
            rc, so, se = btcommon.run_hermetic(
                self, ['download', '--no-tracker', '-q', '--peer', peer.address, '-o', out,
                       fx.path], tmp, TIMEOUT)
            peer.settle()
            ctx = 'rc=%s stderr=%r peer=%s' % (rc, se[-2000:], peer.describe())
            self.assertEqual(rc, 0, ctx)
            with open(out, 'rb') as f:
                self.assertEqual(f.read(), fx.data, ctx)
            blinked = [c for c in peer.conns if c.t_blink is not None]
            self.assertEqual(len(blinked), 1, ctx)
            return blinked[0], ctx

    def test_request_in_the_unchoke_callback(self):
        conn, ctx = self.run_case(BlinkConn, '127.0.0.%d' % (100 + os.getpid() % 50))
        # Only a request made while the UNCHOKE was handled arrives while it chokes.
        self.assertGreater(conn.requests_while_choked, 0, ctx)

    def test_request_in_the_allowed_fast_callback(self):
        conn, ctx = self.run_case(AllowOnceConn, '127.0.0.%d' % (150 + os.getpid() % 50))
        # Only a request made while the ALLOWED_FAST was handled: for that piece, while choked.
        self.assertGreater(conn.requests_while_choked, 0, ctx)
        choked = [r for r in conn.requests if r[0] - conn.t_blink < HOLD]
        self.assertTrue(choked and all(r[1] == ALLOWED_PIECE for r in choked), ctx)


if __name__ == '__main__':
    btcommon.main()
