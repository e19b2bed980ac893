"""`torrent create` checked against libtorrent (python3-libtorrent) and an independent bdecode
(btcommon): a single file, a tree with nested directories, an empty file, hidden files
(left out by default, taken with --include-hidden), a symbolic link and an empty directory
(left out); --private, --comment, --web-seed, -a tiers (with the 'URL1,URL2' syntax),
--piece-length, --name, --no-date. For each result: libtorrent loads it and reports the info
hash that `create` printed, `torrent info --json` agrees, and libtorrent verifies the original
data against it (it checks the files on disk and must end up seeding). A v1 torrent made by
libtorrent of the same files in the same order with the same piece length has the same piece
hashes. Errors: a missing path, unreadable files and directories (run as 'nobody'), an existing
output (refused without --force, left untouched), an empty directory, bad piece lengths.

Run as: /usr/bin/python3 create_interop.py <path to torrent binary>
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from btcommon import bdecode  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

W = None
LT = None  # (libtorrent module, session)
SETPRIV = shutil.which('setpriv')
CREATED = re.compile(r'Created (.+): info hash ([0-9a-f]{40}), (\d+) pieces? of (.+)\.\n\Z')

# the tree: (relative path, size); hidden ones start with '.' in some component
TREE = [
    ('a/one.bin', 300001), ('a/b/c/deep.bin', 70001), ('a/b/two.bin', 16384),
    ('empty.txt', 0), ('m/n.bin', 123457), ('z.bin', 5), ('A-upper.bin', 999),
    ('a.txt', 77), ('a-b/x.bin', 4097),
    ('.hidden.txt', 100), ('.hdir/x.bin', 5000), ('a/.h2', 10), ('m/.cache/c.bin', 3000),
]


def setUpModule():
    global W, LT
    W = tempfile.mkdtemp(prefix='create-interop-')
    os.chmod(W, 0o755)  # 'nobody' must reach the data for the unreadable-file cases
    import libtorrent as lt
    cat = lt.alert.category_t
    session = lt.session({
        'listen_interfaces': '127.0.8.1:0', 'outgoing_interfaces': '127.0.8.1',
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
        'enable_natpmp': False, 'enable_incoming_utp': False, 'enable_outgoing_utp': False,
        'alert_mask': cat.status_notification | cat.error_notification | cat.storage_notification})
    LT = (lt, session)


def tearDownModule():
    global LT
    LT = None
    if W:
        shutil.rmtree(W, ignore_errors=True)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def hidden(rel):
    return any(part.startswith('.') for part in rel.split('/'))


def sorted_walk(root, include_hidden=False):
    """The files under root as [(relative path, size)], each directory's entries in byte
    order of their names, symbolic links and (unless asked) hidden names left out."""
    out = []
    for name in sorted(os.listdir(root), key=os.fsencode):
        path = os.path.join(root, name)
        if os.path.islink(path) or (name.startswith('.') and not include_hidden):
            continue
        if os.path.isdir(path):
            out += [(name + '/' + rel, size) for rel, size in sorted_walk(path, include_hidden)]
        else:
            out.append((name, os.path.getsize(path)))
    return out


def lt_torrent(target, piece_length, files):
    """A v1 torrent made by libtorrent of `files` ([(relative path, size)] under target, in
    that order; for a single file: [(name, size)]) with the given piece length. Returns the
    libtorrent torrent_info."""
    lt = LT[0]
    fs = lt.file_storage()
    name = os.path.basename(target)
    if os.path.isdir(target):
        for rel, size in files:
            fs.add_file(name + '/' + rel, size)
    else:
        fs.add_file(name, os.path.getsize(target))
    ct = lt.create_torrent(fs, piece_length, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, os.path.dirname(target))
    return lt.torrent_info(lt.bencode(ct.generate()))


def lt_verifies(torrent, save_path, timeout=30):
    """Adds the torrent to libtorrent with save_path, waits for it to check the files on disk
    (torrent_checked_alert). Returns (complete, status)."""
    lt, session = LT
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = session.add_torrent(atp)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            session.wait_for_alert(100)
            for a in session.pop_alerts():
                if isinstance(a, lt.torrent_checked_alert) and a.handle == h:
                    st = h.status()
                    return st.is_seeding and st.progress == 1.0, st
                if isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)) \
                        and a.handle == h:
                    return False, h.status()
        return False, h.status()
    finally:
        session.remove_torrent(h)


class CreateCase(btcommon.CliTestCase):

    def create(self, *args, out=None):
        """Runs `torrent create -o OUT ARGS` (OUT a new name unless given); checks exit 0, no
        stderr, and the 'Created' line. Returns (out path, info hash, pieces, meta dict)."""
        if out is None:
            out = tempfile.mktemp(suffix='.torrent', dir=W)
        r = run_client('create', '-o', out, *args, timeout=60)
        self.assertEqual(r.returncode, 0, r)
        # Nothing on stderr but, without a tracker, the one-line note that says so.
        trackerless = '-a' not in args and '-q' not in args
        self.assertEqual(r.err.startswith('torrent: create: note: %s has no tracker' % out),
                         trackerless, r)
        self.assertEqual(r.err.count('\n'), 1 if trackerless else 0, r)
        m = CREATED.match(r.out)
        self.assertIsNotNone(m, r)
        self.assertEqual(m.group(1), out)
        with open(out, 'rb') as f:
            data = f.read()
        ih = m.group(2)
        self.assertEqual(btcommon.info_hash(data), ih)
        root = bdecode(data)
        info = root[b'info']
        pieces = int(m.group(3))
        self.assertEqual(pieces, len(info[b'pieces']) // 20)
        self.assertEqual(m.group(4), self.size_text(info[b'piece length']))
        return out, ih, pieces, root

    @staticmethod
    def size_text(n):
        return '%.1f KiB' % (n / KiB) if n < MiB else '%.1f MiB' % (n / MiB)

    def check_against_libtorrent(self, out, ih, root, data_parent, files, name=None):
        """libtorrent loads `out` with the printed info hash, the same files, sizes and piece
        hashes as our own decoding; `torrent info --json` agrees; libtorrent verifies the data
        under data_parent."""
        lt = LT[0]
        info = root[b'info']
        ti = lt.torrent_info(out)
        self.assertEqual(str(ti.info_hashes().v1), ih)
        self.assertFalse(ti.info_hashes().has_v2())
        self.assertEqual(ti.num_pieces(), len(info[b'pieces']) // 20)
        self.assertEqual(ti.piece_length(), info[b'piece length'])
        self.assertEqual(ti.name(), name or info[b'name'].decode())
        fst = ti.files()
        got = []
        for i in range(fst.num_files()):
            path = fst.file_path(i).replace(os.sep, '/')
            if b'files' in info:  # libtorrent puts the torrent's name first
                self.assertTrue(path.startswith(ti.name() + '/'), path)
                path = path[len(ti.name()) + 1:]
            got.append((path, fst.file_size(i)))
        self.assertEqual(got, files)
        self.assertEqual(ti.total_size(), sum(size for _, size in files))
        for i in range(ti.num_pieces()):
            self.assertEqual(ti.hash_for_piece(i), info[b'pieces'][20 * i:20 * i + 20])

        r = run_client('info', '--json', out)
        self.assertOk(r)
        j = json.loads(r.out)
        self.assertEqual(j['info_hash'], ih)
        self.assertEqual(j['piece_length'], info[b'piece length'])
        self.assertEqual(j['length'], sum(size for _, size in files))
        self.assertEqual(j['piece_hashes'], [info[b'pieces'][20 * i:20 * i + 20].hex()
                                             for i in range(len(info[b'pieces']) // 20)])
        self.assertEqual([(f['path'], f['length']) for f in j['files']], files)

        ok, st = lt_verifies(out, data_parent)
        self.assertTrue(ok, 'libtorrent does not verify the data under %s: state %s, progress '
                        '%.3f, error %r' % (data_parent, st.state, st.progress,
                                            st.errc.message()))
        return ti


class Single(CreateCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(W, 'single')
        cls.path = swarm.make_single(cls.dir, 'single.bin', 1000003, 1)

    def test_single_file_default_piece_length(self):
        out, ih, n, root = self.create('--no-date', self.path)
        info = root[b'info']
        self.assertEqual(info[b'name'], b'single.bin')
        self.assertEqual(info[b'length'], 1000003)
        self.assertNotIn(b'files', info)
        self.assertEqual(info[b'piece length'], 16 * KiB)  # the smallest: 62 pieces
        self.assertNotIn(b'creation date', root)
        self.assertNotIn(b'private', info)
        self.check_against_libtorrent(out, ih, root, self.dir, [('single.bin', 1000003)])

    def test_same_piece_hashes_as_libtorrent(self):
        for plen, arg in ((16 * KiB, '16K'), (32 * KiB, '32768'), (256 * KiB, '256K'),
                          (1 * MiB, '1M')):
            with self.subTest(piece_length=plen):
                out, ih, n, root = self.create('-l', arg, '--no-date', self.path)
                self.assertEqual(root[b'info'][b'piece length'], plen)
                self.assertEqual(n, (1000003 + plen - 1) // plen)
                ti = lt_torrent(self.path, plen, None)
                self.assertEqual(root[b'info'][b'pieces'],
                                 b''.join(ti.hash_for_piece(i) for i in range(ti.num_pieces())))
                self.assertEqual(root[b'info'][b'name'], ti.name().encode())
                self.check_against_libtorrent(out, ih, root, self.dir,
                                              [('single.bin', 1000003)])

    def test_detects_corruption(self):
        """The verification means something: libtorrent does not verify a copy of the data
        with one byte changed."""
        out, ih, n, root = self.create('--no-date', self.path)
        bad = os.path.join(W, 'corrupt')
        os.makedirs(bad)
        shutil.copy(self.path, os.path.join(bad, 'single.bin'))
        with open(os.path.join(bad, 'single.bin'), 'r+b') as f:
            f.seek(500000)
            b = f.read(1)
            f.seek(500000)
            f.write(bytes([b[0] ^ 1]))
        ok, st = lt_verifies(out, bad)
        self.assertFalse(ok)
        self.assertLess(st.progress, 1.0)

    def test_default_piece_length_aims_at_1000_to_2000_pieces(self):
        """Sparse files of 40 MB and 100 MB: the default piece length is a power of two that
        gives 1000-2000 pieces (the help's 'about 1000-2000')."""
        d = os.path.join(W, 'sparse')
        os.makedirs(d, exist_ok=True)
        for size in (40 * 1000 * 1000, 100 * 1000 * 1000):
            with self.subTest(size=size):
                path = os.path.join(d, 'sparse-%d.bin' % size)
                with open(path, 'wb') as f:
                    f.truncate(size)
                out, ih, n, root = self.create('-q', '--no-date', path)
                plen = root[b'info'][b'piece length']
                self.assertEqual(plen & (plen - 1), 0, plen)
                self.assertTrue(16 * KiB <= plen <= 16 * MiB, plen)
                self.assertTrue(1000 <= n <= 2000, (plen, n))
                os.unlink(out)

    def test_options(self):
        """-a tiers with 'URL1,URL2', --private, --comment, --web-seed twice, --piece-length,
        and the creation date and creator."""
        t1a, t1b = 'http://127.0.0.1:1/announce', 'udp://127.0.0.1:2/announce'
        t2 = 'http://127.0.0.3:3/announce?key=ab'
        ws1, ws2 = 'http://127.0.0.1:8/files/', 'http://127.0.0.2:8/single.bin'
        before = int(time.time())
        out, ih, n, root = self.create('-a', '%s,%s' % (t1a, t1b), '-a', 'http://127.0.0.2:4/a',
                                       '--private', '--comment', 'a comment, with ünïcode',
                                       '--web-seed', ws1, '-w', ws2, '--piece-length', '64K',
                                       self.path)
        after = int(time.time())
        info = root[b'info']
        self.assertEqual(root[b'announce'], t1a.encode())
        self.assertEqual(root[b'announce-list'], [[t1a.encode(), t1b.encode()],
                                                  [b'http://127.0.0.2:4/a']])
        self.assertEqual(root[b'comment'], 'a comment, with ünïcode'.encode())
        self.assertEqual(root[b'url-list'], [ws1.encode(), ws2.encode()])
        self.assertEqual(info[b'private'], 1)
        self.assertEqual(info[b'piece length'], 64 * KiB)
        self.assertTrue(before - 1 <= root[b'creation date'] <= after + 1, root[b'creation date'])
        self.assertIn(b'created by', root)
        ti = self.check_against_libtorrent(out, ih, root, self.dir, [('single.bin', 1000003)])
        self.assertTrue(ti.priv())
        self.assertEqual(ti.comment(), 'a comment, with ünïcode')
        self.assertEqual(sorted((t.tier, t.url) for t in ti.trackers()),
                         [(0, t1a), (0, t1b), (1, 'http://127.0.0.2:4/a')])
        self.assertEqual(sorted(w['url'] for w in ti.web_seeds()), sorted([ws1, ws2]))
        j = json.loads(run_client('info', '--json', out).out)
        self.assertEqual(j['trackers'], [[t1a, t1b], ['http://127.0.0.2:4/a']])
        self.assertEqual(j['web_seeds'], [ws1, ws2])
        self.assertTrue(j['private'])
        self.assertEqual(j['comment'], 'a comment, with ünïcode')
        # one -a, one URL: announce only, or a one-tier announce-list
        out2, _, _, root2 = self.create('-a', t2, '--no-date', self.path)
        self.assertEqual(root2[b'announce'], t2.encode())
        self.assertIn(root2.get(b'announce-list'), (None, [[t2.encode()]]))
        self.assertNotIn(b'private', root2[b'info'])
        # the private flag is in the info dictionary: another info hash
        out3, ih3, _, _ = self.create('--no-date', '-l', '64K', self.path)
        out4, ih4, _, _ = self.create('--no-date', '-l', '64K', '--private', self.path)
        self.assertNotEqual(ih3, ih4)
        # trackers, comment and web seeds are outside it: the same info hash
        out5, ih5, _, _ = self.create('--no-date', '-l', '64K', '-a', t2, '-c', 'x', '-w', ws1,
                                      self.path)
        self.assertEqual(ih5, ih3)

    def test_name_and_no_date(self):
        out, ih, n, root = self.create('--name', 'renamed.bin', '--no-date', self.path)
        self.assertEqual(root[b'info'][b'name'], b'renamed.bin')
        # libtorrent verifies the data under its new name
        d = os.path.join(W, 'renamed')
        os.makedirs(d)
        os.link(self.path, os.path.join(d, 'renamed.bin'))
        self.check_against_libtorrent(out, ih, root, d, [('renamed.bin', 1000003)])
        # --no-date: the same input gives the same file, byte for byte
        out2, ih2, _, _ = self.create('--name', 'renamed.bin', '--no-date', self.path)
        with open(out, 'rb') as a, open(out2, 'rb') as b:
            self.assertEqual(a.read(), b.read())


class Tree(CreateCase):
    """A tree with nested directories, an empty file, hidden files and directories, names
    that sort differently per directory and as whole paths ('a/...', 'a-b/...', 'a.txt'), an
    upper-case name, a symbolic link and an empty directory."""

    @classmethod
    def setUpClass(cls):
        cls.parent = os.path.join(W, 'trees')
        cls.root = swarm.make_multi(cls.parent, 'tree', TREE, 5)
        os.symlink('a/one.bin', os.path.join(cls.root, 'link.bin'))
        os.makedirs(os.path.join(cls.root, 'void', 'deeper'))
        cls.visible = sorted_walk(cls.root)
        cls.everything = sorted_walk(cls.root, include_hidden=True)
        assert not any(hidden(p) for p, _ in cls.visible)
        assert len(cls.everything) == len(TREE)

    def test_tree_sorted_nested_empty_file(self):
        out, ih, n, root = self.create('--no-date', self.root)
        info = root[b'info']
        self.assertEqual(info[b'name'], b'tree')
        files = [('/'.join(p.decode() for p in f[b'path']), f[b'length'])
                 for f in info[b'files']]
        self.assertEqual(files, self.visible)  # sorted per directory; no hidden, no link
        self.assertIn(('empty.txt', 0), files)
        self.assertNotIn(b'length', info)
        self.check_against_libtorrent(out, ih, root, self.parent, self.visible)

    def test_include_hidden(self):
        out, ih, n, root = self.create('--include-hidden', '--no-date', self.root)
        files = [('/'.join(p.decode() for p in f[b'path']), f[b'length'])
                 for f in root[b'info'][b'files']]
        self.assertEqual(files, self.everything)
        self.assertIn(('.hdir/x.bin', 5000), files)
        self.assertIn(('m/.cache/c.bin', 3000), files)
        self.check_against_libtorrent(out, ih, root, self.parent, self.everything)

    def test_same_piece_hashes_as_libtorrent(self):
        total = sum(size for _, size in self.visible)
        for plen in (16 * KiB, 64 * KiB, 256 * KiB):
            with self.subTest(piece_length=plen):
                out, ih, n, root = self.create('-l', str(plen), '--no-date', self.root)
                self.assertEqual(n, (total + plen - 1) // plen)
                ti = lt_torrent(self.root, plen, self.visible)
                self.assertEqual(ti.num_files(), len(self.visible))  # no pad files
                self.assertEqual(root[b'info'][b'pieces'],
                                 b''.join(ti.hash_for_piece(i) for i in range(ti.num_pieces())))

    def test_path_spellings(self):
        """'tree/', 'tree//' and './trees/../trees/tree' name the same torrent 'tree'; '.'
        (the directory itself) is either refused (asking for --name) or named after the
        directory, never '.'; with --name it works."""
        out, ih, _, root = self.create('--no-date', self.root)
        for spelling in (self.root + '/', self.root + '//',
                         os.path.join(self.parent, '..', 'trees', 'tree')):
            with self.subTest(path=spelling):
                o, h, _, r = self.create('--no-date', spelling)
                self.assertEqual(r[b'info'][b'name'], b'tree')
                self.assertEqual(h, ih)
        out = os.path.join(W, 'dot.torrent')
        r = run_client('create', '--no-date', '-o', out, '.', cwd=self.root)
        if r.returncode == 0:
            self.assertEqual(bdecode(read(out))[b'info'][b'name'], b'tree')
            os.unlink(out)
        else:
            self.assertEqual(r.returncode, 2, r)
            self.assertIn('--name', r.err)
            self.assertFalse(os.path.exists(out))
        r = run_client('create', '--no-date', '--name', 'tree', '-o', out, '.', cwd=self.root)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(btcommon.info_hash(read(out)), ih)

    def test_hidden_only_directory_and_empty_directories(self):
        d = os.path.join(W, 'hidden-only')
        os.makedirs(os.path.join(d, '.git'))
        with open(os.path.join(d, '.git', 'config'), 'w') as f:
            f.write('x')
        with open(os.path.join(d, '.profile'), 'w') as f:
            f.write('y')
        os.makedirs(os.path.join(d, 'e1', 'e2'))
        out = os.path.join(W, 'hidden-only.torrent')
        r = run_client('create', '-o', out, d)
        self.assertIn(r.returncode, (1, 2), r)
        self.assertEqual(r.stdout, b'', r)
        self.assertIn(d, r.err)
        self.assertFalse(os.path.exists(out))
        # with --include-hidden it has data
        out, ih, n, root = self.create('--include-hidden', '--no-date', d)
        self.check_against_libtorrent(out, ih, root, W, [('.git/config', 1), ('.profile', 1)])


class Errors(CreateCase):

    def assertFailsNaming(self, r, path, codes=(1, 2)):
        self.assertIn(r.returncode, codes, r)
        self.assertEqual(r.stdout, b'', r)
        self.assertEqual(r.err.count('\n'), 1, r)
        self.assertTrue(r.err.startswith('torrent'), r)
        self.assertIn(path, r.err, r)

    def assertNoOutput(self, out):
        self.assertFalse(os.path.exists(out), out)
        d = os.path.dirname(out)
        left = [n for n in os.listdir(d) if n.startswith(os.path.basename(out))]
        self.assertEqual(left, [], 'files left beside the output: %r' % left)

    def fresh(self, name):
        d = tempfile.mkdtemp(prefix=name + '-', dir=W)
        os.chmod(d, 0o777)  # writable by 'nobody' too
        return d

    def test_missing_path(self):
        d = self.fresh('missing')
        out = os.path.join(d, 'out.torrent')
        missing = os.path.join(d, 'no', 'such', 'file.bin')
        r = run_client('create', '-o', out, missing)
        self.assertFailsNaming(r, missing)
        self.assertNoOutput(out)

    def test_empty_directory(self):
        d = self.fresh('empty')
        empty = os.path.join(d, 'nothing')
        os.makedirs(empty)
        out = os.path.join(d, 'out.torrent')
        r = run_client('create', '-o', out, empty)
        self.assertFailsNaming(r, empty)
        self.assertNoOutput(out)

    def test_empty_file(self):
        d = self.fresh('emptyfile')
        path = os.path.join(d, 'zero.bin')
        open(path, 'wb').close()
        out = os.path.join(d, 'out.torrent')
        r = run_client('create', '-o', out, path)
        self.assertFailsNaming(r, path)
        self.assertNoOutput(out)

    def test_existing_output_refused_without_force(self):
        d = self.fresh('exists')
        data = swarm.make_single(d, 'x.bin', 50000, 3)
        out = os.path.join(d, 'out.torrent')
        with open(out, 'wb') as f:
            f.write(b'precious, not a torrent\n')
        old = os.stat(out)
        r = run_client('create', '-o', out, data)
        self.assertFailsNaming(r, out, codes=(1,))
        with open(out, 'rb') as f:
            self.assertEqual(f.read(), b'precious, not a torrent\n')
        self.assertEqual(os.stat(out).st_mtime_ns, old.st_mtime_ns)
        self.assertEqual(sorted(os.listdir(d)), ['out.torrent', 'x.bin'])
        # --force overwrites it with a good torrent
        out2, ih, n, root = self.create('--force', '--no-date', data, out=out)
        self.check_against_libtorrent(out, ih, root, d, [('x.bin', 50000)])
        self.assertEqual(sorted(os.listdir(d)), ['out.torrent', 'x.bin'])

    def test_output_in_missing_directory(self):
        d = self.fresh('outdir')
        data = swarm.make_single(d, 'x.bin', 5000, 4)
        out = os.path.join(d, 'no', 'dir', 'out.torrent')
        r = run_client('create', '-o', out, data)
        self.assertFailsNaming(r, os.path.join(d, 'no', 'dir'), codes=(1,))

    def test_bad_piece_lengths(self):
        d = self.fresh('plen')
        data = swarm.make_single(d, 'x.bin', 5000, 5)
        out = os.path.join(d, 'out.torrent')
        for bad in ('1000', '8K', '16383', '128M', '0', '-16K', 'abc', '16Q'):
            with self.subTest(piece_length=bad):
                r = run_client('create', '-o', out, '-l', bad, data)
                self.assertFailsNaming(r, bad, codes=(2,))
                self.assertNoOutput(out)
        out2, ih, n, root = self.create('-l', '64M', '--no-date', data)  # the largest allowed
        self.assertEqual(root[b'info'][b'piece length'], 64 * MiB)
        self.assertEqual(n, 1)

    # --- unreadable data, as 'nobody' -------------------------------------------------------

    def as_nobody(self, *args):
        if os.geteuid() != 0 or not SETPRIV:
            self.skipTest('needs root and setpriv to drop to nobody')
        probe = subprocess.run([SETPRIV, '--reuid=nobody', '--regid=nogroup', '--clear-groups',
                                'true'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=10)
        if probe.returncode != 0:
            self.skipTest('cannot drop privileges: %r' % probe.stderr)
        if not os.access(btcommon.TORRENT, os.X_OK):
            self.skipTest('binary not executable')
        return run_client_as_nobody(*args)

    def test_unreadable_file(self):
        d = self.fresh('unreadable-file')
        data = swarm.make_single(d, 'secret.bin', 5000, 6)
        os.chmod(data, 0o600)
        out = os.path.join(d, 'out.torrent')
        r = self.as_nobody('create', '-o', out, data)
        self.assertFailsNaming(r, data, codes=(1,))
        self.assertIn('ermission denied', r.err)
        self.assertNoOutput(out)

    def test_unreadable_file_inside_a_tree(self):
        d = self.fresh('unreadable-tree')
        root = swarm.make_multi(d, 'tree', [('a.bin', 100), ('b/secret.bin', 200),
                                            ('c.bin', 300)], 7)
        for dirpath, dirs, files in os.walk(root):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        secret = os.path.join(root, 'b', 'secret.bin')
        os.chmod(secret, 0o600)
        out = os.path.join(d, 'out.torrent')
        r = self.as_nobody('create', '-o', out, root)
        self.assertFailsNaming(r, secret, codes=(1,))
        self.assertNoOutput(out)

    def test_unreadable_directory_inside_a_tree(self):
        d = self.fresh('unreadable-dir')
        root = swarm.make_multi(d, 'tree', [('a.bin', 100), ('locked/x.bin', 200)], 8)
        os.chmod(root, 0o755)
        os.chmod(os.path.join(root, 'a.bin'), 0o644)
        locked = os.path.join(root, 'locked')
        os.chmod(locked, 0o700)
        out = os.path.join(d, 'out.torrent')
        r = self.as_nobody('create', '-o', out, root)
        self.assertFailsNaming(r, locked, codes=(1,))
        self.assertNoOutput(out)


def run_client_as_nobody(*args):
    """Runs the binary under test as nobody:nogroup (setpriv), with a timeout."""
    argv = [SETPRIV, '--reuid=nobody', '--regid=nogroup', '--clear-groups',
            btcommon.TORRENT, *[str(a) for a in args]]
    start = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=swarm.child_env(), timeout=30)
    r = swarm.Result(argv[4:], p.returncode, p.stdout, p.stderr, time.monotonic() - start)
    swarm.check_sanitizers(p.stderr)
    return r


if __name__ == '__main__':
    btcommon.main()
