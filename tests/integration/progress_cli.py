"""Progress output of `torrent download`: a line redrawn on a terminal, plain lines at most
every 5 s otherwise, JSON objects once a second, nothing with --quiet. The download is slowed
with --max-down so that there is progress to show."""
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time
import unittest

import ownseed

TORRENT = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else None
SIZE = 5 << 20


class ProgressTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data, cls.meta = ownseed.make_payload(TORRENT, cls.tmp.name, SIZE)
        cls.seed, cls.peer = ownseed.start_seed(TORRENT, cls.meta, cls.data, '127.0.9.21')

    @classmethod
    def tearDownClass(cls):
        ownseed.stop(cls.seed)
        cls.tmp.cleanup()

    def argv(self, *extra):
        out = os.path.join(self.tmp.name, 'out-%d' % time.monotonic_ns())
        return [TORRENT, 'download', '--no-tracker', '--peer', self.peer, '-o', out,
                '--max-down', '2M', *extra, self.meta]

    def test_terminal_line_redrawn(self):
        master, slave = pty.openpty()
        p = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        text = b''
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([master], [], [], 0.5)
                if r:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    text += chunk
                elif p.poll() is not None:
                    break
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            os.close(master)
        self.assertEqual(p.returncode, 0, text)
        redraws = text.count(b'\r')
        self.assertGreaterEqual(redraws, 6, text)  # four times a second over ~2.5 s
        self.assertIn(b'\x1b[K', text)
        for part in (b'%', b'MiB', b'/s', b'ETA', b'peers 1 (1 unchoking)'):
            self.assertIn(part, text)
        self.assertIn(b'100.0%', text)
        self.assertIn(b'torrent: received 5.0 MiB', text)

    def test_plain_lines_not_on_a_terminal(self):
        r = subprocess.run(self.argv(), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stderr.splitlines()
        self.assertNotIn('\r', r.stderr)
        self.assertTrue(all(l.startswith('torrent: ') for l in lines), lines)
        progress = [l for l in lines if '%' in l]
        # ~2.5 s: the first line, maybe none in between (5 s apart at most), the final one.
        self.assertGreaterEqual(len(progress), 1)
        self.assertLessEqual(len(progress), 3)
        self.assertIn('100.0%', progress[-1])
        self.assertTrue(lines[-1].startswith('torrent: received 5.0 MiB'), lines)

    def test_json_every_second(self):
        r = subprocess.run(self.argv('--progress=json'), capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        objs = [json.loads(l) for l in r.stderr.splitlines()]
        ticks = [o for o in objs if 'percent' in o]
        self.assertGreaterEqual(len(ticks), 2)
        for a, b in zip(ticks, ticks[1:]):
            self.assertGreaterEqual(b['done'], a['done'])
            self.assertGreater(b['elapsed'], a['elapsed'])
            self.assertLess(b['elapsed'] - a['elapsed'], 1.6)
        self.assertEqual(objs[-1]['event'], 'summary')
        self.assertEqual(objs[-1]['received'], SIZE)
        self.assertEqual(objs[-1]['peers'][0]['address'], self.peer)

    def test_quiet(self):
        r = subprocess.run(self.argv('--quiet'), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, '')
        self.assertTrue(r.stdout.startswith('Downloaded '))


if __name__ == '__main__':
    unittest.main()
