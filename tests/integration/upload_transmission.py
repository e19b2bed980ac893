"""Several `torrent seed` processes serving one Transmission (transmission-cli 3.00) a large
torrent (issue 9, point 8).

Transmission pipelines as many requests to a peer as that peer's BEP 10 extended handshake
allows ('reqq'); a peer that sends none gets thousands (~3,900 per seed were seen). Our serve
queue holds 2,048 requests and drops the rest, and without the Fast extension there is no
REJECT to tell Transmission so: it waited forever for the dropped blocks and stalled at ~71%.
The seed now sends its extended handshake with reqq=2048 after the bitfield, and Transmission
keeps its pipeline within it.

N seeds, each on its own 127.0.14.x with --no-tracker, dial the one downloader with --peer
(Transmission never dials 127.x peers, see ../shared/REAL-PEERS.md). Asserted: Transmission's
completion script (-f) runs within DONE_S, the file it wrote is byte-identical to the source,
the seeds together uploaded at least the torrent's size, and every seed exits 0 with a summary
when stopped by SIGINT (by PID). Everything stays on 127.0.0.0/8; every wait is bounded.

Run as: /usr/bin/python3 upload_transmission.py <path to torrent binary>
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402
from upload_common import (Seed, TransmissionDownloader,  # noqa: E402
                           stop_on_sigterm, wait_listening)

IPS = swarm.IpPool('127.0.14.')
N_SEEDS = 3
SIZE = 80 * MiB  # 64 MiB completes even on the old binary, 72 MiB stalled there at 99%
PIECE = 256 * KiB
DONE_S = 90  # Transmission's completion script must run within this (from the seeds' start)

W = None


def setUpModule():
    global W
    W = tempfile.mkdtemp(prefix='upload-transmission-')


def tearDownModule():
    if W:
        shutil.rmtree(W, ignore_errors=True)


class ManySeedsOneTransmission(unittest.TestCase):
    maxDiff = None

    def test_three_seeds_serve_transmission(self):
        src = os.path.join(W, 'src')
        out = os.path.join(W, 'out')
        os.makedirs(src)
        os.makedirs(out)
        data = swarm.make_single(src, 'big.bin', SIZE, 14)
        meta = swarm.make_torrent(data, os.path.join(W, 'big.torrent'), PIECE)
        tr = TransmissionDownloader(IPS.take(), meta, out, cwd=W)
        seeds = []
        try:
            wait_listening(tr.ip, tr.port, 20, tr.proc.alive, tr.proc.read_log)
            for _ in range(N_SEEDS):
                seeds.append(Seed(meta, data, IPS.take(), peers=['%s:%d' % (tr.ip, tr.port)]))
            start = time.monotonic()
            history = []  # (seconds since the seeds started, Transmission's progress)

            def finished():
                if not tr.proc.alive():
                    raise AssertionError('transmission-cli exited: %s' % tr.proc.read_log())
                p = tr.progress()
                if not history or history[-1][1] != p:
                    history.append((round(time.monotonic() - start, 1), p))
                return tr.done()
            try:
                swarm.wait_until(finished, DONE_S, step=0.2, what='Transmission to complete')
            except TimeoutError:
                self.fail('Transmission did not complete within %d s: stalled at %s%% since '
                          '%.0f s (progress over time: %s); seeds uploaded %s\n'
                          'Transmission log:\n%s\nfirst seed stderr:\n%s' % (
                              DONE_S, tr.progress(), history[-1][0] if history else 0,
                              history[-12:], [s.uploaded() for s in seeds],
                              tr.proc.read_log(1500), seeds[0].stderr()[-2000:]))
            elapsed = time.monotonic() - start
            print('Transmission complete %.1f s after the seeds started' % elapsed)
            tr.stop()
            got = os.path.join(out, meta.name)
            self.assertTrue(os.path.isfile(got), os.listdir(out))
            self.assertEqual(os.path.getsize(got), meta.total)
            self.assertEqual(swarm.sha1_file(got), swarm.sha1_file(data),
                             '%s differs from the source' % got)
            # the seeds print their 'uploaded' count once a second
            swarm.wait_until(lambda: sum(s.uploaded() for s in seeds) >= meta.total, 10,
                             what='the seeds to count %d bytes uploaded' % meta.total)
            for seed in seeds:
                self.assertTrue(seed.alive(), seed.stderr()[-2000:])
                r = seed.stop()
                self.assertEqual(r.returncode, 0, r)
                self.assertIsNotNone(r.summary(), r)
                self.assertEqual(r.summary()['verified'], meta.total, r)
        finally:
            tr.stop()
            for seed in seeds:
                seed.close()


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
