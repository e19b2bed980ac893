"""Resuming `torrent download`: kill -9 mid-download, run the same command again; it must
report how many pieces it kept, fetch only the rest (the summary's `received`) and end with
byte-identical output. Also: an unrelated existing output is refused without --force (and left
untouched), resumed from or overwritten with --force; an already complete output is accepted at
once without any peer.

The seeder is libtorrent on its own loopback address, rate-limited (2 MiB/s) so that the first
run is still going when it is killed.

Run as: /usr/bin/python3 download_resume.py <path to torrent binary>
"""

import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

RATE = 2 * MiB  # bytes/s from the slow seeder
TIMEOUT = 60


class Resume(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='download-resume-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        cls.src = os.path.join(cls.w, 'src')
        # 33 pieces of 256 KiB, the last 4321 bytes
        cls.single = swarm.make_torrent(
            swarm.make_single(cls.src, 'resume.bin', 8 * MiB + 4321, 31),
            os.path.join(cls.w, 'resume.torrent'), 256 * KiB)
        # files across piece boundaries, 31 pieces of 256 KiB, the last one short
        cls.multi = swarm.make_torrent(
            swarm.make_multi(cls.src, 'resume-tree', [
                ('a.bin', 3 * MiB + 1), ('sub/b.bin', 77777), ('sub/deeper/c.bin', 4 * MiB + 3),
                ('d.bin', 5)], 32),
            os.path.join(cls.w, 'resume-tree.torrent'), 256 * KiB)
        ips = swarm.IpPool('127.0.3.')
        metas = [cls.single, cls.multi]
        slow_ip, fast_ip = ips.take(), ips.take()
        cls.slow, cls.fast = swarm.start_all([
            lambda: swarm.LibtorrentSeeder(slow_ip, metas, cls.src, cls.w, upload_limit=RATE),
            lambda: swarm.LibtorrentSeeder(fast_ip, metas, cls.src, cls.w)])
        cls.addClassCleanup(cls.slow.stop)
        cls.addClassCleanup(cls.fast.stop)

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix='case-', dir=self.w)

    def source(self, meta):
        return os.path.join(self.src, meta.name)

    def assertSameContent(self, meta, out):
        if meta.multi:
            self.assertEqual(swarm.tree(out), swarm.tree(self.source(meta)))
        else:
            self.assertEqual(os.path.getsize(out), meta.total)
            self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(self.source(meta)))

    def min_bytes(self, meta, npieces):
        """The fewest bytes that `npieces` verified pieces can hold (the last one is short)."""
        if npieces == 0:
            return 0
        return (npieces - 1) * meta.piece_length + meta.piece_size(meta.num_pieces - 1)

    def resuming_line(self, r, meta, part):
        m = re.search(r"resuming '([^']*)': (\d+) of (\d+) pieces already verified", r.err)
        self.assertIsNotNone(m, 'no "resuming" line: %r' % r)
        self.assertEqual(m.group(1), part)
        self.assertEqual(int(m.group(3)), meta.num_pieces)
        return int(m.group(2))

    def kill_and_resume(self, meta, output):
        final = os.path.join(output, meta.name) if meta.multi else output
        part = final + '.part'
        args = ['download', '--no-tracker', '--peer', self.slow.address, '-o', output,
                '--progress=json', meta.path]
        c = swarm.Client(*args)
        try:
            def some_verified():
                if c.proc.poll() is not None:
                    raise AssertionError('the first run ended before it was killed: %r' % (
                        c.wait(5),))
                done = [o.get('done', 0) for o in c.progress()]
                return os.path.exists(part) and done and max(done) > 0 and max(done)
            done_first = swarm.wait_until(some_verified, 20, what='first verified pieces')
            c.kill()
            first = c.wait(10)
        finally:
            c.close()
        self.assertEqual(first.returncode, -9, first)
        self.assertLess(done_first, meta.total, 'the first run finished before the kill')
        self.assertFalse(os.path.exists(final), 'final name exists after kill -9')
        self.assertTrue(os.path.exists(part))

        r = run_client(*args, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, final))
        kept = self.resuming_line(r, meta, part)
        self.assertGreater(kept, 0, r)
        self.assertLess(kept, meta.num_pieces, r)
        # everything verified before the kill was on disk (the 'done' bytes of the last
        # progress object are a lower bound of it)
        self.assertGreaterEqual(kept * meta.piece_length, done_first, r)
        self.assertSameContent(meta, final)
        self.assertFalse(os.path.exists(part))
        s = r.summary()
        self.assertIsNotNone(s, r)
        self.assertEqual(s['pieces_failed'], 0, s)
        self.assertLessEqual(s['received'], meta.total - self.min_bytes(meta, kept),
                             'verified pieces fetched again: kept %d pieces, %r' % (kept, s))
        self.assertGreaterEqual(s['received'], meta.total - kept * meta.piece_length, s)
        sys.stderr.write('\n  first run: %d bytes verified; second run kept %d of %d pieces, '
                         'received %d of %d bytes\n' % (done_first, kept, meta.num_pieces,
                                                         s['received'], meta.total))

    def test_kill9_and_resume_single_file(self):
        self.kill_and_resume(self.single, os.path.join(self.d, 'out.bin'))

    def test_kill9_and_resume_multi_file(self):
        self.kill_and_resume(self.multi, os.path.join(self.d, 'outdir'))

    # --- an existing output ---------------------------------------------------------------

    def write_garbage(self, path, size, seed=99):
        swarm.make_file(path, size, seed)
        old = time.time() - 3600  # an old mtime, to see that the file is not rewritten
        os.utime(path, (old, old))
        return swarm.sha1_file(path), os.stat(path).st_mtime_ns

    def test_unrelated_output_refused_without_force(self):
        meta = self.single
        for size in (meta.total, 1000, meta.total + 5000):
            with self.subTest(size=size):
                out = os.path.join(self.d, 'existing-%d.bin' % size)
                digest, mtime = self.write_garbage(out, size)
                r = run_client('download', '--no-tracker', '--peer', self.fast.address, '-o',
                               out, meta.path, timeout=TIMEOUT)
                line = self.assertFails(r, 'torrent', code=1)
                self.assertIn('--force', line)
                self.assertIn(out, line)
                self.assertEqual(swarm.sha1_file(out), digest)
                self.assertEqual(os.stat(out).st_mtime_ns, mtime)
                self.assertFalse(os.path.exists(out + '.part'))

    def test_unrelated_output_tree_refused_without_force(self):
        meta = self.multi
        root = os.path.join(self.d, 'outdir', meta.name)
        digest, _ = self.write_garbage(os.path.join(root, 'a.bin'), 1234)
        r = run_client('download', '--no-tracker', '--peer', self.fast.address, '-o',
                       os.path.join(self.d, 'outdir'), meta.path, timeout=TIMEOUT)
        line = self.assertFails(r, 'torrent', code=1)
        self.assertIn('--force', line)
        self.assertEqual(swarm.sha1_file(os.path.join(root, 'a.bin')), digest)
        self.assertEqual(os.listdir(root), ['a.bin'])

    def test_force_overwrites_unrelated_output(self):
        meta = self.single
        for size in (meta.total, meta.total + 300001, 1000):  # same size, longer, shorter
            with self.subTest(size=size):
                out = os.path.join(self.d, 'force-%d.bin' % size)
                self.write_garbage(out, size)
                r = run_client('download', '--no-tracker', '--peer', self.fast.address, '-o',
                               out, '--force', '-q', meta.path, timeout=TIMEOUT)
                self.assertEqual(r.returncode, 0, r)
                self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, out))
                self.assertSameContent(meta, out)
                self.assertFalse(os.path.exists(out + '.part'))

    def test_force_overwrites_unrelated_output_tree(self):
        meta = self.multi
        for sizes in ((3 * MiB + 1, 4 * MiB + 3), (3 * MiB + 70000, 5 * MiB), (10, 20)):
            with self.subTest(sizes=sizes):
                out = os.path.join(self.d, 'force-tree-%d' % sizes[0])
                root = os.path.join(out, meta.name)
                self.write_garbage(os.path.join(root, 'a.bin'), sizes[0])
                self.write_garbage(os.path.join(root, 'sub', 'deeper', 'c.bin'), sizes[1])
                r = run_client('download', '--no-tracker', '--peer', self.fast.address, '-o',
                               out, '--force', '-q', meta.path, timeout=TIMEOUT)
                self.assertEqual(r.returncode, 0, r)
                self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, root))
                self.assertSameContent(meta, root)
                self.assertFalse(os.path.exists(root + '.part'))

    def test_force_resumes_from_partly_right_output(self):
        # The first 20 pieces right, the rest garbage: --force keeps the 20 and fetches the rest.
        meta = self.single
        out = os.path.join(self.d, 'partial.bin')
        with open(self.source(meta), 'rb') as f:
            good = f.read(20 * meta.piece_length)
        with open(out, 'wb') as f:
            f.write(good)
            f.write(os.urandom(meta.total - len(good)))
        r = run_client('download', '--no-tracker', '--peer', self.fast.address, '-o', out,
                       '--force', '--progress=json', meta.path, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, out))
        self.assertSameContent(meta, out)
        s = r.summary()
        self.assertIsNotNone(s, r)
        self.assertLessEqual(s['received'], meta.total - 20 * meta.piece_length, s)

    def test_complete_output_accepted_at_once(self):
        for meta, out in ((self.single, os.path.join(self.d, 'done.bin')),
                          (self.multi, os.path.join(self.d, 'donedir'))):
            with self.subTest(torrent=meta.name):
                final = os.path.join(out, meta.name) if meta.multi else out
                if meta.multi:
                    shutil.copytree(self.source(meta), final)
                else:
                    shutil.copyfile(self.source(meta), final)
                before = swarm.tree(out) if meta.multi else swarm.sha1_file(out)
                mtime = os.stat(final).st_mtime_ns
                # no reachable peer: nothing is needed from one
                r = run_client('download', '--no-tracker', '--peer',
                               '127.0.0.1:%d' % swarm.closed_port(), '-o', out, meta.path,
                               timeout=TIMEOUT)
                self.assertEqual(r.returncode, 0, r)
                self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, final), r)
                self.assertLess(r.elapsed, 10, r)
                self.assertEqual(swarm.tree(out) if meta.multi else swarm.sha1_file(out),
                                 before)
                self.assertEqual(os.stat(final).st_mtime_ns, mtime)
                self.assertFalse(os.path.exists(final + '.part'))


if __name__ == '__main__':
    btcommon.main()
