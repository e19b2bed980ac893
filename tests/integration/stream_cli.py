"""Streaming with `download --sequential` (issue 14): a player-like reader.

Two libtorrent seeders, each on its own loopback address and limited to 1.5 MiB/s, serve a
32 MiB file in 64 KiB pieces, so the download takes several seconds. While `torrent download
--sequential --progress=json` runs, the test plays the file as a media player would: it reads
`<out>.part` in order, 256 KiB at a time at a steady 1.5 MiB/s (half the swarm's rate), reading
only below what the JSON lines claim (the file's "prefix": bytes from its start all verified).
Once the download is complete nothing can make the player wait: the rest is checked at once.

- No hole: every byte below the claim is the source's (no zeros, nothing missing).
- No long wait: once data flows, the player never waits longer than the read-ahead window
  allows. The window is 32 pieces (about 8 MiB, clamped to 4..32 pieces: here 2 MiB); at the
  measured rate R the piece the player needs is at worst the last of the window to arrive, so
  the bound is 2 x window / R (generous) plus 1.5 s (a JSON line a second, and polling).
- The bound can fail: the same run without --sequential (rarest first, random ties) keeps the
  verified prefix short until most of the file is there, and the player waits longer than it.

Run as: /usr/bin/python3 stream_cli.py <path to torrent binary>
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402

PIECE = 64 * KiB
SIZE = 32 * MiB
WINDOW = 32 * PIECE  # torrent.c: 8 MiB of pieces, at most 32
SEED_RATE = 3 * MiB // 2  # per seeder
PLAY_RATE = 3 * MiB // 2  # the player's steady rate, below the swarm's
CHUNK = 256 * KiB
TIMEOUT = 90  # a whole run, generous: at 3 MiB/s the download takes about 11 s


class Stream(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='stream-cli-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        cls.src = os.path.join(cls.w, 'src')
        cls.meta = swarm.make_torrent(swarm.make_single(cls.src, 'movie.bin', SIZE, 53),
                                      os.path.join(cls.w, 'movie.torrent'), PIECE)
        with open(os.path.join(cls.src, 'movie.bin'), 'rb') as f:
            cls.data = f.read()
        ips = swarm.IpPool('127.0.15.')
        a, b = ips.take(), ips.take()
        cls.seeders = swarm.start_all([
            lambda: swarm.LibtorrentSeeder(a, [cls.meta], cls.src, cls.w,
                                           upload_limit=SEED_RATE),
            lambda: swarm.LibtorrentSeeder(b, [cls.meta], cls.src, cls.w,
                                           upload_limit=SEED_RATE)])
        for s in cls.seeders:
            cls.addClassCleanup(s.stop)

    def play(self, *extra):
        """Runs the download and plays it; returns (waits in s once data flowed, swarm rate
        in bytes/s, the run's Result)."""
        d = tempfile.mkdtemp(prefix='case-', dir=self.w)
        out = os.path.join(d, 'movie.bin')
        peers = []
        for s in self.seeders:
            peers += ['--peer', s.address]
        c = swarm.Client('download', '--no-dht', '--no-tracker', *peers, '-o', out,
                         '--progress=json', *extra, self.meta.path)
        fd = None
        try:
            start = time.monotonic()
            claim, pos = 0, 0
            t_data = t_complete = None  # first verified byte, last one (our clock)
            next_read = None  # when the player wants its next chunk
            waiting_since, waits = None, []
            while pos < SIZE:
                now = time.monotonic()
                if now - start > TIMEOUT:
                    raise AssertionError('not played within %d s: at %d of %d, claim %d'
                                         % (TIMEOUT, pos, SIZE, claim))
                lines = [o for o in c.progress() if 'files' in o]
                for o in lines:
                    for f in o['files']:
                        claim = max(claim, f['prefix'])
                if t_data is None and any(o['done'] > 0 for o in lines):
                    t_data = now
                if t_complete is None and claim >= SIZE:
                    t_complete = now
                if c.proc.poll() is not None and claim < SIZE:
                    raise AssertionError('the download ended at claim %d: %r'
                                         % (claim, c.wait(5)))
                if fd is None:
                    for path in (out + '.part', out):
                        if os.path.exists(path):
                            # Kept open: the rename at the end keeps the same file.
                            fd = os.open(path, os.O_RDONLY)
                            break
                done = t_complete is not None
                if t_data is None or fd is None or (next_read and now < next_read and not done):
                    time.sleep(0.02)
                    continue
                end = SIZE if done else min(pos + CHUNK, SIZE)
                if end > claim:
                    if waiting_since is None:
                        waiting_since = now
                    time.sleep(0.02)
                    continue
                if waiting_since is not None:
                    waits.append(now - waiting_since)
                    waiting_since = None
                got = os.pread(fd, end - pos, pos)
                if got != self.data[pos:end]:
                    bad = next(i for i in range(len(got) + 1)
                               if i == len(got) or got[i] != self.data[pos + i])
                    raise AssertionError('hole at byte %d, below the claimed %d'
                                         % (pos + bad, claim))
                pos = end
                next_read = now + CHUNK / PLAY_RATE
            r = c.wait(30)
        finally:
            if fd is not None:
                os.close(fd)
            c.close()
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(os.path.join(self.src,
                                                                            'movie.bin')))
        rate = SIZE / max(t_complete - t_data, 0.1)
        sys.stderr.write('%s: swarm %.0f KiB/s, bound %.1f s, waits %s\n' % (
            ' '.join(extra) or 'rarest first', rate / KiB, self.bound(rate),
            ' '.join('%.2f' % w for w in waits)))
        return waits, rate, r

    def bound(self, rate):
        return 2 * WINDOW / rate + 1.5

    def test_sequential_player_never_waits_long(self):
        waits, rate, r = self.play('--sequential')
        bound = self.bound(rate)
        self.assertLess(max(waits, default=0), bound,
                        'waits %r, rate %.0f KiB/s' % (waits, rate / KiB))
        # The player is slower than the swarm: after the start it should hardly wait at all.
        self.assertLess(sum(waits), 2 * bound, waits)

    def test_rarest_first_player_waits_longer(self):
        """The control: without --sequential the same bound fails."""
        waits, rate, r = self.play()
        self.assertGreater(max(waits, default=0), self.bound(rate),
                           'waits %r, rate %.0f KiB/s' % (waits, rate / KiB))


if __name__ == '__main__':
    btcommon.main()
