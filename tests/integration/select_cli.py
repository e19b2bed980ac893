"""Choosing what to download (issue 14): `download --select/--exclude`, `--sequential`.

A multi-file torrent whose selected file shares its first and last pieces with files left
out: only the selected file is created, byte-identical, the shared pieces' other bytes go to
`<name>.parts`; a later run selecting everything fetches only the rest (the summary's
`received`) and removes the side file; a seed of the partial download serves the shared pieces
(another client fetches the selected file from it alone). --sequential, killed part-way,
holds a verified prefix and nothing past the read-ahead window. Bad lists are refused.

Per-file progress: the --progress=json lines carry each file's verified bytes (only the files
that changed since the last line), growing to each selected file's size; a file left out stays
at 0 and is marked unselected. libtorrent downloads the selected file from our partial seed and
verifies the shared boundary pieces. A web seed's bytes are counted apart in the progress line
and the JSON lines (busybox httpd on loopback, started and stopped by PID).

The seeders are libtorrent on their own loopback addresses.

Run as: /usr/bin/python3 select_cli.py <path to torrent binary>
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
import upload_common  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

BUSYBOX = shutil.which('busybox')

TIMEOUT = 60
PIECE = 64 * KiB


class Select(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='select-cli-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        cls.src = os.path.join(cls.w, 'src')
        # b.bin (file 2) runs from 100 KiB to 300 KiB: pieces 1 to 4, its first shared with
        # a.bin, its last with c.bin; pieces 0 and 5 belong to a.bin and c.bin alone.
        cls.multi = swarm.make_torrent(
            swarm.make_multi(cls.src, 'sel-tree', [
                ('a.bin', 100 * KiB), ('b.bin', 200 * KiB), ('c.bin', 50 * KiB)], 41),
            os.path.join(cls.w, 'sel-tree.torrent'), PIECE)
        # 64 pieces of 64 KiB, for --sequential: the read-ahead window is 4 to 32 pieces.
        cls.single = swarm.make_torrent(
            swarm.make_single(cls.src, 'seq.bin', 4 * MiB, 43),
            os.path.join(cls.w, 'seq.torrent'), PIECE)
        ips = swarm.IpPool('127.0.14.')
        cls.ips = ips
        metas = [cls.multi, cls.single]
        fast_ip, slow_ip = ips.take(), ips.take()
        cls.fast, cls.slow = swarm.start_all([
            lambda: swarm.LibtorrentSeeder(fast_ip, metas, cls.src, cls.w),
            lambda: swarm.LibtorrentSeeder(slow_ip, metas, cls.src, cls.w,
                                           upload_limit=256 * KiB)])
        cls.addClassCleanup(cls.fast.stop)
        cls.addClassCleanup(cls.slow.stop)

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix='case-', dir=self.w)

    def src_file(self, rel):
        return os.path.join(self.src, self.multi.name, rel)

    def download(self, out, *extra, peer=None):
        return run_client('download', '--no-tracker', '--peer', peer or self.fast.address,
                          '-o', out, '--progress=json', *extra, self.multi.path,
                          timeout=TIMEOUT)

    def test_select_shared_pieces_then_the_rest(self):
        out = os.path.join(self.d, 'out')
        root = os.path.join(out, self.multi.name)
        r = self.download(out, '--select', '2')
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(sorted(os.listdir(root)), ['b.bin'])
        self.assertEqual(swarm.sha1_file(os.path.join(root, 'b.bin')),
                         swarm.sha1_file(self.src_file('b.bin')))
        self.assertTrue(os.path.isfile(root + '.parts'), 'no side file')
        self.assertFalse(os.path.exists(root + '.part'))
        s = r.summary()
        self.assertIsNotNone(s, r)
        self.assertEqual(s['received'], 4 * PIECE, s)  # pieces 1 to 4 only

        # The rest: only pieces 0 and 5 are fetched; the shared ones come from the side file.
        r = self.download(out, '--select', '1-3')
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(swarm.tree(root), swarm.tree(os.path.join(self.src, self.multi.name)))
        self.assertFalse(os.path.exists(root + '.parts'), 'side file left behind')
        s = r.summary()
        self.assertIsNotNone(s, r)
        self.assertEqual(s['received'], self.multi.total - 4 * PIECE, s)  # pieces 0 and 5

    def test_summary_marks_unselected_files(self):
        out = os.path.join(self.d, 'out-text')
        r = run_client('download', '--no-tracker', '--peer', self.fast.address, '-o', out,
                       '--select', '2', self.multi.path, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        n = len(self.multi.files)
        self.assertIn('1 of 1 files complete (%d not selected)' % (n - 1), r.err)
        self.assertEqual(r.err.count('skipped'), n - 1, r.err)

    def test_exclude(self):
        out = os.path.join(self.d, 'out')
        root = os.path.join(out, self.multi.name)
        r = self.download(out, '--exclude', '[ac].bin', '-q')
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(sorted(os.listdir(root)), ['b.bin'])
        self.assertEqual(swarm.sha1_file(os.path.join(root, 'b.bin')),
                         swarm.sha1_file(self.src_file('b.bin')))

    def start_partial_seed(self):
        """Our download --select 2 --seed of the tree, from the fast seeder, once it seeds:
        (its Client, ip, port, output directory). The caller kills it."""
        seed_out = os.path.join(self.d, 'seed')
        ip = self.ips.take()
        port = swarm.free_port(ip)
        seeder = swarm.Client('download', '--no-tracker', '--peer', self.fast.address, '-o',
                              seed_out, '--select', '2', '--seed', '--listen', ip, '--port',
                              port, '--progress=json', self.multi.path)
        try:
            swarm.wait_until(lambda: any(o.get('seeding')
                                         for o in seeder.progress()) or
                             seeder.proc.poll() is not None, 30, what='seeding')
            self.assertIsNone(seeder.proc.poll(), 'the seed ended')
        except BaseException:
            seeder.kill()
            seeder.wait(10)
            seeder.close()
            raise
        return seeder, ip, port, seed_out

    def test_partial_seed_serves_shared_pieces(self):
        seeder, ip, port, seed_out = self.start_partial_seed()
        try:
            b = os.path.join(seed_out, self.multi.name, 'b.bin')
            self.assertTrue(os.path.isfile(b))
            out = os.path.join(self.d, 'leech')
            r = self.download(out, '--select', '2', peer='%s:%d' % (ip, port))
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(swarm.sha1_file(os.path.join(out, self.multi.name, 'b.bin')),
                             swarm.sha1_file(self.src_file('b.bin')))
        finally:
            seeder.kill()
            seeder.wait(10)
            seeder.close()

    def files_by_index(self, lines):
        """Applies each progress line's "files" entries in order: every file's last state, and
        every state reported of each (by index)."""
        last, history = {}, {}
        for o in lines:
            if o.get('event') == 'summary' or 'files' not in o:
                continue
            for f in o['files']:
                prev = last.get(f['index'])
                if prev is not None:
                    self.assertGreaterEqual(f['done'], prev['done'], (prev, f))
                    self.assertNotEqual(f['done'], prev['done'], 'reported unchanged: %r' % f)
                last[f['index']] = f
                history.setdefault(f['index'], []).append(f['done'])
        return last, history

    def test_json_lines_carry_files(self):
        out = os.path.join(self.d, 'out')
        # 320 KiB (pieces 0 to 4) at 64 KiB/s: about five lines while it grows.
        self.slow.command('rate %d' % (64 * KiB))
        try:
            r = self.download(out, '--select', '1-2', peer=self.slow.address)
        finally:
            self.slow.command('rate %d' % (256 * KiB))
        self.assertEqual(r.returncode, 0, r)
        lines = [o for o in r.json_lines() if 'done' in o and 'event' not in o]
        self.assertTrue(lines and all('files' in o for o in lines), r)
        last, history = self.files_by_index(lines)
        self.assertEqual(sorted(last), [1, 2, 3])
        for i, (path, size) in enumerate(self.multi.files, 1):
            f = last[i]
            self.assertEqual((f['path'], f['size']), (path, size), f)
            if i < 3:
                self.assertTrue(f['selected'], f)
                self.assertEqual((f['done'], f['prefix']), (size, size), f)
            else:
                # c.bin shares piece 4 with b.bin: its bytes there are verified, but they
                # are in the side file, not in a file of the user's.
                self.assertFalse(f['selected'], f)
                self.assertEqual(history[i], [0], f)
        # b.bin was seen part-way: the lines followed the download, not just its end.
        size_b = self.multi.files[1][1]
        self.assertTrue(any(0 < d < size_b for d in history[2]), history)
        # The summary says the same of every file, c.bin's shared bytes not counted either.
        summary = [o for o in r.json_lines() if o.get('event') == 'summary']
        self.assertEqual(len(summary), 1, r)
        got = [(f['path'], f['length'], f['done'], f['selected']) for f in summary[0]['files']]
        want = [(path, size, size if i < 3 else 0, i < 3)
                for i, (path, size) in enumerate(self.multi.files, 1)]
        self.assertEqual(got, want, summary)

    def test_partial_seed_to_libtorrent(self):
        """libtorrent, told to want b.bin only, downloads it from our seed of the selection
        alone: it must get and verify pieces 1 and 4, which b.bin shares with files we did not
        download (their other bytes come from our side file)."""
        import libtorrent as lt
        seeder, ip, port, _ = self.start_partial_seed()
        try:
            lt_ip = self.ips.take()
            ses, _ = upload_common.lt_session(lt_ip, encryption=False)
            save = os.path.join(self.d, 'lt')
            h = upload_common.lt_add(ses, self.multi, save)
            h.prioritize_files([0, 4, 0])
            h.connect_peer((ip, port))
            wanted = range(1, 5)  # b.bin's pieces; 1 and 4 are shared
            end = time.monotonic() + 30
            while not all(h.have_piece(i) for i in wanted):
                self.assertLess(time.monotonic(), end, 'libtorrent has pieces %r of 1-4; '
                                'seed: %r' % ([i for i in wanted if h.have_piece(i)],
                                              seeder.progress()[-1:]))
                ses.wait_for_alert(100)
                for a in ses.pop_alerts():
                    self.assertNotIsInstance(a, lt.hash_failed_alert, a.message())
            self.assertFalse(h.have_piece(0) or h.have_piece(5))
            upload_common.flush_to_disk(ses, h, 10)
            self.assertEqual(swarm.sha1_file(os.path.join(save, self.multi.name, 'b.bin')),
                             swarm.sha1_file(self.src_file('b.bin')))
            # What it got, it got from us: the seed's JSON says it uploaded them.
            swarm.wait_until(lambda: max(o.get('uploaded', 0) for o in seeder.progress()) >=
                             4 * PIECE, 10, what='the seed counting its upload')
            ses.remove_torrent(h)
            del ses
        finally:
            seeder.kill()
            seeder.wait(10)
            seeder.close()

    def test_sequential_holds_a_prefix(self):
        meta = self.single
        out = os.path.join(self.d, 'seq.bin')
        c = swarm.Client('download', '--no-tracker', '--peer', self.slow.address, '-o', out,
                         '--sequential', '--progress=json', meta.path)
        try:
            def some_done():
                if c.proc.poll() is not None:
                    raise AssertionError('ended before it was killed: %r' % (c.wait(5),))
                done = [o.get('done', 0) for o in c.progress()]
                return done and max(done) >= 16 * PIECE
            swarm.wait_until(some_done, 30, what='16 pieces verified')
            c.kill()
            c.wait(10)
        finally:
            c.close()
        with open(out + '.part', 'rb') as f:
            got = f.read()
        with open(os.path.join(self.src, meta.name), 'rb') as f:
            want = f.read()
        good = [got[i * PIECE:(i + 1) * PIECE] == want[i * PIECE:(i + 1) * PIECE]
                for i in range(meta.num_pieces)]
        first_missing = good.index(False) if False in good else meta.num_pieces
        self.assertGreaterEqual(first_missing, 16, good)
        # Nothing verified past the window (at most 32 pieces) beyond the first gap.
        late = [i for i in range(first_missing + 32, meta.num_pieces) if good[i]]
        self.assertEqual(late, [], 'pieces past the read-ahead window: %r' % late)

    def test_bad_select_refused(self):
        for arg in ('0', 'x', '3-1', '1,,2', '2-', ''):
            with self.subTest(arg=arg):
                r = run_client('download', '--select', arg, self.multi.path)
                line = self.assertFails(r, 'torrent', code=2)
                self.assertIn('--select', line)
        r = run_client('download', '--no-tracker', '--peer', self.fast.address, '-o',
                       os.path.join(self.d, 'o'), '--select', '7', self.multi.path)
        line = self.assertFails(r, 'torrent', code=1)
        self.assertIn('file 7 is out of range', line)
        self.assertFalse(os.path.exists(os.path.join(self.d, 'o', self.multi.name)))


@unittest.skipIf(BUSYBOX is None, 'busybox not installed')
class WebSeedProgress(btcommon.CliTestCase):
    """A multi-file torrent downloaded from a web seed alone (busybox httpd on loopback):
    the progress line and the JSON lines count its bytes apart from the peers'."""

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='select-webseed-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        cls.src = os.path.join(cls.w, 'src')
        tree = swarm.make_multi(cls.src, 'ws-tree', [('a.bin', 700 * KiB), ('b.bin', 300 * KiB)],
                                47)
        port = swarm.free_port()
        cls.httpd = swarm.Proc([BUSYBOX, 'httpd', '-f', '-p', '127.0.0.1:%d' % port, '-h',
                                cls.src], os.path.join(cls.w, 'httpd.log'))
        cls.addClassCleanup(cls.httpd.stop)
        upload_common.wait_listening('127.0.0.1', port, 10, alive=cls.httpd.alive)
        cls.torrent = os.path.join(cls.w, 'ws-tree.torrent')
        r = run_client('create', '-o', cls.torrent, '-l', str(PIECE), '--web-seed',
                       'http://127.0.0.1:%d/' % port, tree)
        assert r.returncode == 0, r
        cls.total = 1000 * KiB

    def test_json_counts_web_seed_bytes(self):
        out = os.path.join(self.w, 'json')
        r = run_client('download', '--no-dht', '--no-tracker', '-o', out, '--progress=json',
                       self.torrent, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        lines = [o for o in r.json_lines() if 'done' in o and 'event' not in o]
        self.assertTrue(lines, r)
        self.assertTrue(all(o.get('webseeds') == 1 for o in lines), lines)
        # From the web seed alone: every byte verified came from it.
        self.assertEqual(lines[-1]['webseed_bytes'], self.total, lines[-1])
        self.assertEqual(lines[-1]['done'], self.total, lines[-1])
        got = {}
        for o in lines:
            for f in o['files']:
                got[f['path']] = f['done']
        self.assertEqual(got, {'a.bin': 700 * KiB, 'b.bin': 300 * KiB})

    def test_line_counts_web_seed_bytes(self):
        out = os.path.join(self.w, 'text')
        r = run_client('download', '--no-dht', '--no-tracker', '-o', out, self.torrent,
                       timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        lines = [line for line in r.err.splitlines() if '%' in line and 'ETA' in line]
        self.assertTrue(lines, r)
        # The last line (the run's average): peers, then the web seed apart with its bytes.
        self.assertRegex(lines[-1], r'peers \d+ \(\d+ unchoking\) \+ web seed 1 '
                         r'\(\d+ active, 1000\.0 KiB\)')


if __name__ == '__main__':
    btcommon.main()
