"""--max-down and --max-up: a download through a limit takes at least as long as the limit
allows (a lower bound only: this checks that the limiter works, not how fast anything is)."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import ownseed

TORRENT = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else None
SIZE = 6 << 20


class RateLimitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data, cls.meta = ownseed.make_payload(TORRENT, cls.tmp.name, SIZE)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def seed(self, ip, *extra):
        p, peer = ownseed.start_seed(TORRENT, self.meta, self.data, ip, *extra)
        self.addCleanup(ownseed.stop, p)
        return peer

    def download(self, peer, *extra):
        out = os.path.join(self.tmp.name, 'out-%d' % time.monotonic_ns())
        t0 = time.monotonic()
        r = subprocess.run([TORRENT, 'download', '--no-tracker', '--peer', peer, '-o', out,
                            '--progress=json', *extra, self.meta],
                           capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, 'rb') as a, open(self.data, 'rb') as b:
            self.assertEqual(a.read(), b.read())
        summary = json.loads([l for l in r.stderr.splitlines() if '"summary"' in l][-1])
        return took, summary

    def test_unlimited_is_quick(self):
        peer = self.seed('127.0.9.11')
        took, _ = self.download(peer)
        self.assertLess(took, 2.0)  # the baseline the limited runs are compared with

    def test_max_down(self):
        peer = self.seed('127.0.9.12')
        took, s = self.download(peer, '--max-down', '2M')
        # 6 MiB at 2 MiB/s: at least ~3 s, less the first burst (a tenth of a second's worth).
        self.assertGreater(took, 2.5)
        self.assertEqual(s['received'], SIZE)

    def test_max_up(self):
        peer = self.seed('127.0.9.13', '--max-up', '3M')
        took, _ = self.download(peer)
        self.assertGreater(took, 1.7)

    def test_bad_rates(self):
        for bad in ('0', 'fast', '10', '-1M'):
            r = subprocess.run([TORRENT, 'download', '--max-down', bad, self.meta],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn('--max-down', r.stderr)


if __name__ == '__main__':
    unittest.main()
