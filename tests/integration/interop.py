#!/usr/bin/python3
"""Independent-implementation check of `torrent info`: torrents made by mktorrent and by
libtorrent-rasterbar (Debian's python3-libtorrent) from random data, compared field by field
with what libtorrent reports, and piece hashes also recomputed here from the data itself.

Usage: interop.py <path to torrent binary>        (run with /usr/bin/python3)
"""

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
from btcommon import info_hash, run  # noqa: E402

try:
    import libtorrent as lt
except ImportError:  # pragma: no cover
    lt = None

MKTORRENT = shutil.which('mktorrent') or '/usr/bin/mktorrent'

SINGLE_SIZE = 1000003
MULTI_LAYOUT = [  # (relative path, size): nested dirs, an empty file, odd sizes
    ('top.bin', 300007),
    ('sub/a.dat', 123457),
    ('sub/deeper/b.dat', 65537),
    ('sub/deeper/empty.txt', 0),
    ('sub/deeper/deepest/one', 1),
    ('z/c.bin', 16383),
    ('space dir/ü-utf8 名前.bin', 33333),
    ('sub/x', 250001),
]
TRACKERS = ['http://127.0.0.1:6969/announce', 'udp://127.0.0.1:6969/announce',
            'http://127.0.0.2:6969/announce']


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Interop(btcommon.CliTestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.tmp = cls._tmp.name
        rnd = random.Random(0xB17)
        cls.src = os.path.join(cls.tmp, 'src')
        os.makedirs(cls.src)
        cls.single = os.path.join(cls.src, 'single file.bin')
        with open(cls.single, 'wb') as f:
            f.write(rnd.randbytes(SINGLE_SIZE))
        cls.multi = os.path.join(cls.src, 'multi')
        for rel, size in MULTI_LAYOUT:
            path = os.path.join(cls.multi, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(rnd.randbytes(size))
        cls.compared = 0

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()
        log('compared %d torrents' % cls.compared)

    # --- the comparison ---------------------------------------------------------------------

    def compare(self, tpath, label, expect_hybrid=False):
        with open(tpath, 'rb') as f:
            data = f.read()
        p = run('info', '--json', tpath)
        self.assertOk(p, label)
        js = json.loads(p.stdout.decode('utf-8'))
        text = run('info', tpath)
        self.assertOk(text, label)
        lines = text.stdout.decode('utf-8').split('\n')

        ti = lt.torrent_info(tpath)
        fs = ti.files()
        ih = ti.info_hashes()

        # info hash: libtorrent, and SHA-1 of the raw info bytes computed here
        self.assertEqual(js['info_hash'], str(ih.v1), label)
        self.assertEqual(js['info_hash'], info_hash(data), label)
        self.assertEqual(lines[2], 'Info Hash: %s' % ih.v1)
        if expect_hybrid:
            self.assertTrue(ih.has_v2())
            self.assertIs(js.get('hybrid'), True, label)
            self.assertTrue(any('hybrid' in l.lower() for l in lines), 'no hybrid note')
            if js.get('info_hash_v2') is not None:
                self.assertEqual(js['info_hash_v2'], str(ih.v2), label)
        else:
            self.assertFalse(ih.has_v2())
            self.assertFalse(js.get('hybrid', False))

        # sizes and pieces
        self.assertEqual(js['length'], ti.total_size(), label)
        self.assertEqual(lines[1], 'Length: %d' % ti.total_size())
        self.assertEqual(js['piece_length'], ti.piece_length(), label)
        self.assertEqual(lines[3], 'Piece Length: %d' % ti.piece_length())
        self.assertEqual(js['piece_count'], ti.num_pieces(), label)
        lt_hashes = [ti.hash_for_piece(i).hex() for i in range(ti.num_pieces())]
        self.assertEqual(js['piece_hashes'], lt_hashes, label)
        self.assertEqual(lines[4], 'Piece Hashes:')
        self.assertEqual(lines[5:5 + ti.num_pieces()], lt_hashes)

        # files, in order; libtorrent's pad files must be ours marked as pad
        name = ti.name()
        self.assertEqual(js['name'], name)
        lt_files = []
        for i in range(fs.num_files()):
            path = fs.file_path(i)
            if js['multi_file']:
                self.assertTrue(path.startswith(name + os.sep), path)
                path = path[len(name) + 1:]
            pad = bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)
            lt_files.append({'path': path.replace(os.sep, '/'), 'length': fs.file_size(i),
                             'pad': pad})
        ours = [{k: f[k] for k in ('path', 'length', 'pad')} for f in js['files']]
        if any(f['pad'] for f in lt_files):
            self.assertEqual(ours, lt_files, label)
        self.assertEqual([f for f in ours if not f['pad']], [f for f in lt_files if not f['pad']],
                         label)
        self.assertEqual(sum(f['length'] for f in ours), ti.total_size())

        # metadata
        # libtorrent shuffles the URLs inside a tier (BEP 12), so tiers compare as sets; the
        # order itself is checked against the file.
        lt_trackers = sorted((t.tier, t.url) for t in ti.trackers())
        ours_trackers = [(tier, url) for tier, urls in enumerate(js['trackers']) for url in urls]
        self.assertEqual(sorted(ours_trackers), lt_trackers, label)
        root = btcommon.bdecode(data)
        if b'announce-list' in root:
            self.assertEqual(js['trackers'], [[u.decode() for u in tier]
                                              for tier in root[b'announce-list']])
        else:
            self.assertEqual(js['trackers'], [[root[b'announce'].decode()]])
        self.assertEqual(js['tracker'], root[b'announce'].decode())
        self.assertEqual(lines[0], 'Tracker URL: %s' % root[b'announce'].decode())
        # libtorrent appends '/' to web seeds of multi-file torrents (BEP 19)
        ws = root.get(b'url-list', [])
        ws = [ws] if isinstance(ws, bytes) else ws
        self.assertEqual(js['web_seeds'], [u.decode() for u in ws], label)
        norm = [u + '/' if js['multi_file'] and not u.endswith('/') else u
                for u in js['web_seeds']]
        self.assertEqual(norm, [w['url'] for w in ti.web_seeds()], label)
        self.assertEqual(js['private'], ti.priv(), label)
        self.assertEqual(js['comment'] or '', ti.comment(), label)
        self.assertEqual(js['created_by'] or '', ti.creator(), label)
        self.assertEqual(js['creation_date'] or 0, ti.creation_date(), label)

        # and the piece hashes once more, from the data on disk (pad files are zeros)
        blob = bytearray()
        base = os.path.dirname(self.single) if not js['multi_file'] else self.multi
        for f in js['files']:
            if f['pad']:
                blob += bytes(f['length'])
            else:
                fp = os.path.join(base, *f['path'].split('/')) if js['multi_file'] else self.single
                with open(fp, 'rb') as fh:
                    blob += fh.read()
        plen = js['piece_length']
        mine = [hashlib.sha1(blob[i:i + plen]).hexdigest() for i in range(0, len(blob), plen)]
        self.assertEqual(js['piece_hashes'], mine, label)

        type(self).compared += 1
        log('  %-44s ok: info hash %s, %d bytes, %d x %d-byte pieces, %d files (%d pad), '
            '%d trackers%s' % (label, js['info_hash'], js['length'], js['piece_count'], plen,
                               len(ours), sum(f['pad'] for f in ours), len(ours_trackers),
                               ', hybrid v2 ' + str(ih.v2)[:16] + '...' if expect_hybrid else ''))

    # --- mktorrent ----------------------------------------------------------------------------

    def mktorrent(self, target, out, exp, extra=()):
        cmd = [MKTORRENT, '-l', str(exp), '-o', out, '-t', '2', *extra, target]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    @unittest.skipUnless(os.access(MKTORRENT, os.X_OK), 'mktorrent not installed')
    @unittest.skipIf(lt is None, 'python3-libtorrent not available')
    def test_mktorrent(self):
        variants = [
            ([], 'one tracker'),
            (['-a', ','.join(TRACKERS[:2]), '-a', TRACKERS[2]], 'tiers'),
            (['-p', '-c', 'comment ü', '-w', 'http://127.0.0.1:8080/seed'], 'private+comment'),
            (['-d', '-s', 'SRC', '-n', 'renamed'], 'no date, source, renamed'),
        ]
        n = 0
        for exp in range(15, 21):
            for kind, target in (('single', self.single), ('multi', self.multi)):
                extra, what = variants[(exp + (kind == 'multi')) % len(variants)]
                if not extra or extra[0] != '-a':
                    extra = ['-a', TRACKERS[0]] + extra
                label = 'mktorrent -l %d %s (%s)' % (exp, kind, what)
                with self.subTest(label=label):
                    out = os.path.join(self.tmp, 'mk-%s-%d.torrent' % (kind, exp))
                    self.mktorrent(target, out, exp, extra)
                    self.compare(out, label)
                    n += 1
        self.assertEqual(n, 12)

    # --- libtorrent ---------------------------------------------------------------------------

    def lt_make(self, target, piece_size, out, flags=None, private=False):
        fs = lt.file_storage()
        lt.add_files(fs, target)
        ct = (lt.create_torrent(fs, piece_size) if flags is None
              else lt.create_torrent(fs, piece_size, flags=flags))
        ct.add_tracker(TRACKERS[0], 0)
        ct.add_tracker(TRACKERS[1], 0)
        ct.add_tracker(TRACKERS[2], 1)
        ct.add_url_seed('http://127.0.0.1:8080/ws/')
        ct.set_creator('libtorrent %s (integration test)' % lt.__version__)
        ct.set_comment('made by interop.py')
        ct.set_priv(private)
        lt.set_piece_hashes(ct, os.path.dirname(target))
        with open(out, 'wb') as f:
            f.write(lt.bencode(ct.generate()))

    @unittest.skipIf(lt is None, 'python3-libtorrent not available')
    def test_libtorrent_v1(self):
        for piece_size in (16384, 32768, 65536, 262144, 1 << 20):
            for kind, target in (('single', self.single), ('multi', self.multi)):
                label = 'libtorrent v1 %s %d' % (kind, piece_size)
                with self.subTest(label=label):
                    out = os.path.join(self.tmp, 'lt1-%s-%d.torrent' % (kind, piece_size))
                    self.lt_make(target, piece_size, out, flags=lt.create_torrent.v1_only,
                                 private=piece_size == 32768)
                    self.compare(out, label)

    @unittest.skipIf(lt is None, 'python3-libtorrent not available')
    def test_libtorrent_hybrid(self):
        for piece_size in (16384, 65536, 262144):
            for kind, target in (('single', self.single), ('multi', self.multi)):
                label = 'libtorrent hybrid %s %d' % (kind, piece_size)
                with self.subTest(label=label):
                    out = os.path.join(self.tmp, 'lth-%s-%d.torrent' % (kind, piece_size))
                    self.lt_make(target, piece_size, out)
                    with open(out, 'rb') as f:
                        self.assertIn(b'12:meta versioni2e', f.read())
                    self.compare(out, label, expect_hybrid=True)

    @unittest.skipIf(lt is None, 'python3-libtorrent not available')
    def test_libtorrent_v2_only_refused(self):
        out = os.path.join(self.tmp, 'lt2.torrent')
        self.lt_make(self.multi, 65536, out, flags=lt.create_torrent.v2_only)
        line = self.assertFails(run('info', out), 'torrent: info: %s: ' % out)
        self.assertIn('not supported', line)
        log('  %-44s ok: refused (%s)' % ('libtorrent v2-only multi 65536', line))


if __name__ == '__main__':
    btcommon.main()
