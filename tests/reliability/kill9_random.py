"""kill -9 at random moments: a download from a libtorrent seeder, rate-limited with
--max-down so that it lasts, killed with SIGKILL at seeded random times (KILLS of them) and run
again each time with the same command. Every rerun's "resuming ... N of M pieces already
verified" must cover what the killed run had reported as verified (the last --progress=json
'done' before the kill) and never go down from the previous rerun's N: no verified piece is ever
lost. The last run, unlimited, must finish and the output verify byte for byte.

Run as: /usr/bin/python3 kill9_random.py <path to torrent binary>
"""

import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon  # noqa: E402
from relcommon import btcommon, swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402

KILLS = 15
SEED = 9  # the RNG seed: the same kill times every run of the suite
SIZE = 24 * MiB + 12345  # 193 pieces of 128 KiB, the last one short
PLEN = 128 * KiB
MAX_DOWN = '1500K'
RESUMING = re.compile(r"resuming '([^']*)': (\d+) of (\d+) pieces already verified")


class Kill9(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='rel-kill9-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        src = os.path.join(cls.w, 'src')
        cls.data = swarm.make_single(src, 'kill9.bin', SIZE, 91)
        cls.meta = swarm.make_torrent(cls.data, os.path.join(cls.w, 'kill9.torrent'), PLEN)
        cls.seeder = swarm.LibtorrentSeeder('127.0.9.11', [cls.meta], src, cls.w)
        cls.addClassCleanup(cls.seeder.stop)

    def test_random_kills_lose_no_verified_piece(self):
        meta = self.meta
        out = os.path.join(self.w, 'out.bin')
        part = out + '.part'
        base = ['download', '--no-tracker', '--peer', self.seeder.address, '-o', out,
                '--progress=json']
        rnd = random.Random(SEED)
        floor_bytes = 0  # verified bytes reported by the last killed run
        floor_pieces = 0  # pieces the previous rerun said it kept
        history = []
        for k in range(KILLS):
            c = swarm.Client(*base, '--max-down', MAX_DOWN, meta.path)
            try:
                delay = rnd.uniform(0.3, 2.5)
                time.sleep(delay)
                done_lines = [o.get('done', 0) for o in c.progress() if 'done' in o]
                c.kill()
                r = c.wait(10)
            finally:
                c.close()
            swarm.check_sanitizers(r.stderr)
            m = RESUMING.search(r.err)
            kept = int(m.group(2)) if m else 0
            if m:
                self.assertEqual(m.group(1), part)
                self.assertEqual(int(m.group(3)), meta.num_pieces)
            history.append((round(delay, 2), kept, done_lines[-1] if done_lines else None,
                            r.returncode))
            self.assertGreaterEqual(kept, floor_pieces,
                                    'run %d kept fewer pieces than the run before: %r' % (
                                        k, history))
            self.assertGreaterEqual(kept * meta.piece_length, floor_bytes,
                                    'run %d lost verified pieces: %r' % (k, history))
            if r.returncode == 0:  # finished before its kill: nothing more to kill
                break
            self.assertEqual(r.returncode, -signal.SIGKILL, r)
            self.assertFalse(os.path.exists(out), 'final name exists after kill -9: %r' % r)
            floor_pieces = kept
            if done_lines:
                floor_bytes = max(floor_bytes, done_lines[-1])
        if not os.path.exists(out):
            r = swarm.run_client(*base, meta.path, timeout=90)
            self.assertEqual(r.returncode, 0, r)
            m = RESUMING.search(r.err)
            kept = int(m.group(2)) if m else 0
            history.append(('final', kept, None, 0))
            self.assertGreaterEqual(kept, floor_pieces, history)
            self.assertGreaterEqual(kept * meta.piece_length, floor_bytes, history)
            s = r.summary()
            self.assertIsNotNone(s, r)
            self.assertEqual(s['pieces_failed'], 0, s)
        self.assertFalse(os.path.exists(part))
        self.assertEqual(os.path.getsize(out), meta.total)
        self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(self.data))
        sys.stderr.write('\n  (kill delay s, pieces kept, last done, rc): %r\n' % history)
        # the kills must have hit a download in progress, not only start-up
        self.assertGreater(sum(1 for h in history if h[2]), KILLS // 2, history)


if __name__ == '__main__':
    relcommon.main()
