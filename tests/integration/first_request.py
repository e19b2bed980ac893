#!/usr/bin/python3
"""The first requests go out in the callback of the message that allows them, not at the
torrent's next one-second tick (issue 15: "the first requests go out with the interested
message's reply").

Judged without a clock: a scripted seeder (fakepeer.py) answers the client's INTERESTED with
UNCHOKE and CHOKE in one write, then stays choking for a few seconds. Only requests made while
the UNCHOKE is handled can reach it; a client that requests from its tick finds the peer choking
every time and sends nothing. Then the seeder unchokes for good and the download must complete
with the right bytes.

Usage: first_request.py <path to torrent binary>       (run with /usr/bin/python3)
"""

import os
import signal
import subprocess
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


class FirstRequest(unittest.TestCase):
    def test_request_in_the_unchoke_callback(self):
        with tempfile.TemporaryDirectory(prefix='first-request-') as tmp:
            fx = fp.Torrent(tmp, SIZE, PIECE, seed=15)
            peer = fp.FakePeer(fx, '127.0.0.%d' % (100 + os.getpid() % 100), BlinkConn).start()
            self.addCleanup(peer.stop)
            out = os.path.join(tmp, 'out.bin')
            argv = [btcommon.TORRENT, 'download', '--no-tracker', '-q', '--peer', peer.address,
                    '-o', out, fx.path]
            env = dict(os.environ, TORRENT_DHT_BOOTSTRAP='none', XDG_STATE_HOME=tmp)
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env)
            try:
                so, se = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                so, se = proc.communicate(timeout=10)
                self.fail('torrent did not exit within %.0f s: %r' % (TIMEOUT, se[-2000:]))
            peer.settle()
            ctx = 'rc=%s stderr=%r peer=%s' % (proc.returncode, se[-2000:], peer.describe())
            self.assertEqual(proc.returncode, 0, ctx)
            with open(out, 'rb') as f:
                self.assertEqual(f.read(), fx.data, ctx)
            blinked = [c for c in peer.conns if c.t_blink is not None]
            self.assertEqual(len(blinked), 1, ctx)
            # Only a request made while the UNCHOKE was handled arrives while it chokes.
            self.assertGreater(blinked[0].requests_while_choked, 0, ctx)


if __name__ == '__main__':
    btcommon.main()
