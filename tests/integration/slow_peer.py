#!/usr/bin/python3
"""A download from a fast and a far slower peer (issue 15: "the last pieces are not left waiting
on the slowest peer: duplicate requests to faster peers, cancels sent").

Two scripted seeders (fakepeer.py) on their own 127.0.0.x: one at 1.5 MiB/s, one at 8 KiB/s
(its first requests alone would take it a minute). The download must complete with the right
bytes, the blocks the slow peer was asked for must have been asked of the fast one too, and the
slow one must have been sent CANCELs for the copies that came from the fast one. No timed
assertion: without the duplicates the download would wait on the slow peer until the client's
request timeout, and the test's own timeout would end it.

Usage: slow_peer.py <path to torrent binary>       (run with /usr/bin/python3)
"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import fakepeer as fp  # noqa: E402

MiB = 1024 * 1024
SIZE = 4 * MiB + 4321
PIECE = 256 * 1024
TIMEOUT = 60.0


class SlowPeer(unittest.TestCase):
    def test_last_blocks_not_left_to_the_slow_peer(self):
        with tempfile.TemporaryDirectory(prefix='slow-peer-') as tmp:
            fx = fp.Torrent(tmp, SIZE, PIECE, seed=16)
            base = 100 + os.getpid() % 50
            fast = fp.FakePeer(fx, '127.0.1.%d' % base, rate=1.5 * MiB).start()
            self.addCleanup(fast.stop)
            slow = fp.FakePeer(fx, '127.0.1.%d' % (base + 50), rate=8 * 1024).start()
            self.addCleanup(slow.stop)
            out = os.path.join(tmp, 'out.bin')
            rc, so, se = btcommon.run_hermetic(
                self, ['download', '--no-tracker', '-q', '--peer', fast.address, '--peer',
                       slow.address, '-o', out, fx.path], tmp, TIMEOUT,
                lambda: 'fast %s slow %s' % (fast.describe(), slow.describe()))
            fast.settle()
            slow.settle()
            ctx = 'rc=%s stderr=%r\nfast %s\nslow %s' % (rc, se[-2000:], fast.describe(),
                                                        slow.describe())
            self.assertEqual(rc, 0, ctx)
            with open(out, 'rb') as f:
                self.assertEqual(f.read(), fx.data, ctx)
            asked_fast = {r[1:] for r in fast.requests}
            asked_slow = {r[1:] for r in slow.requests}
            self.assertTrue(asked_slow, ctx)
            # The slow peer's blocks were asked of the fast peer too, and it was told to drop
            # the ones that came from there.
            self.assertTrue(asked_slow & asked_fast, ctx)
            cancels = [c for conn in slow.conns for c in conn.cancels]
            self.assertTrue(cancels, ctx)
            self.assertTrue({c[1:] for c in cancels} <= asked_slow & asked_fast, ctx)
            print('slow peer: %d blocks asked, %d sent, %d cancelled' % (
                len(asked_slow), len(slow.conns[0].blocks_sent) if slow.conns else 0,
                len(cancels)), file=sys.stderr)


if __name__ == '__main__':
    btcommon.main()
