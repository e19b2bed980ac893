"""Hostile paths: torrents built by hand (btcommon.bencode) whose file paths hold '..',
absolute paths, '/' or NUL inside a component, empty components or paths, '.', two files at
one path, a file that is also a directory. `torrent info` and `torrent download` must refuse
each with exit 2 and one line naming the torrent and the offending part, before anything is
written. Names that are legal on Linux but odd (a file named like our own '.part', a single-file
torrent named 'x.part', Windows-reserved names, backslashes, a 255-byte component) are
downloaded from our own `torrent seed` and must land byte for byte under the output directory;
a 300-byte component (over NAME_MAX) must fail with one line that keeps "File name too long".
For every run, the temporary root is walked before and after: nothing is created or changed
outside the output directory.

Run as: /usr/bin/python3 hostile_paths.py <path to torrent binary>
"""

import hashlib
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon  # noqa: E402
from relcommon import btcommon, swarm  # noqa: E402
from btcommon import bencode  # noqa: E402
from upload_common import Seed  # noqa: E402

PLEN = 16384
TIMEOUT = 30

# name -> (torrent name, [(path components, length)], the word the error must hold)
REFUSED = {
    'dotdot': ('n', [([b'..', b'evil'], 10)], "'..'"),
    'dotdot-deep': ('n', [([b'a', b'..', b'..', b'evil'], 10)], "'..'"),
    'absolute': ('n', [([b'/tmp/evil'], 10)], "'/'"),
    'slash-inside': ('n', [([b'a/../../evil'], 10)], "'/'"),
    'empty-component': ('n', [([b'a', b'', b'b'], 10)], 'empty'),
    'empty-path': ('n', [([], 10)], 'path'),
    'dot': ('n', [([b'.', b'b'], 10)], "'.'"),
    'nul': ('n', [([b'a\x00b'], 10)], 'NUL'),
    'name-dotdot': ('..', [([b'b'], 10)], "'..'"),
    'name-dot': ('.', [([b'b'], 10)], "'.'"),
    'name-empty': ('', [([b'b'], 10)], 'empty'),
    'name-slash': ('a/b', [([b'b'], 10)], "'/'"),
    'name-absolute': ('/tmp/evil', [([b'b'], 10)], "'/'"),
    'twice': ('n', [([b'a'], 10), ([b'a'], 10)], "'a'"),
    'file-and-dir': ('n', [([b'a'], 10), ([b'a', b'b'], 10)], "'a'"),
}
REFUSED_SINGLE = {
    'single-dotdot': ('..', "'..'"),
    'single-slash': ('../evil', "'/'"),
    'single-absolute': ('/tmp/evil', "'/'"),
}


def make(directory, label, name, files, single=False, data_root=None):
    """Writes label.torrent (v1, hand-made) into directory; with data_root, also the payload
    (name under data_root). files: [(components, length)]. Returns (path, [(rel, bytes)])."""
    contents = []
    for i, (comps, n) in enumerate(files):
        unit = hashlib.sha256(b'%s-%d' % (label.encode(), i)).digest()
        contents.append((comps, (unit * (n // 32 + 1))[:n]))
    blob = b''.join(c for _, c in contents)
    pieces = b''.join(hashlib.sha1(blob[i:i + PLEN]).digest()
                      for i in range(0, max(1, len(blob)), PLEN))
    info = {'name': name, 'piece length': PLEN, 'pieces': pieces}
    if single:
        info['length'] = len(blob)
    else:
        info['files'] = [{'path': comps, 'length': len(c)} for comps, c in contents]
    path = os.path.join(directory, label + '.torrent')
    with open(path, 'wb') as f:
        f.write(bencode({'info': info, 'created by': 'hostile paths test'}))
    if data_root is not None:
        if single:
            with open(os.path.join(data_root, name), 'wb') as f:
                f.write(blob)
        else:
            for comps, c in contents:
                p = os.path.join(data_root, name, *[x.decode() for x in comps])
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, 'wb') as f:
                    f.write(c)
    return path, contents


class HostilePaths(btcommon.CliTestCase):

    def setUp(self):
        self.w = tempfile.mkdtemp(prefix='rel-paths-')
        self.addCleanup(shutil.rmtree, self.w, True)
        self.out = os.path.join(self.w, 'out')
        os.makedirs(self.out)
        self.tdir = os.path.join(self.w, 'torrents')
        os.makedirs(self.tdir)

    def assertNothingOutside(self, before, allowed=('out',)):
        after = relcommon.snapshot(self.w)
        bad = relcommon.changed_outside(before, after, allowed)
        self.assertEqual(bad, [], 'written outside the output directory')

    def refused(self, label, path, word):
        before = relcommon.snapshot(self.w)
        for argv in (['info', path],
                     ['download', '--no-tracker', '--peer', '127.0.0.1:%d' % swarm.closed_port(),
                      '-d', self.out, path]):
            r = swarm.run_client(*argv, timeout=TIMEOUT)
            line = self.assertFails(r, 'torrent', code=2, msg='%s %s' % (label, argv[0]))
            self.assertIn(path, line)
            self.assertIn(word, line)
        self.assertNothingOutside(before, allowed=())
        self.assertEqual(os.listdir(self.out), [])

    def test_refused_multi_file(self):
        for label, (name, files, word) in REFUSED.items():
            with self.subTest(label):
                path, _ = make(self.tdir, label, name, files)
                self.refused(label, path, word)

    def test_refused_single_file(self):
        for label, (name, word) in REFUSED_SINGLE.items():
            with self.subTest(label):
                path, _ = make(self.tdir, label, name, [([b'x'], 20000)], single=True)
                self.refused(label, path, word)

    def download_from_own_seed(self, label, name, files, single=False):
        src = os.path.join(self.w, 'src-' + label)
        os.makedirs(src)
        path, contents = make(self.tdir, label, name, files, single=single, data_root=src)
        meta = swarm.Meta(path)
        seed = Seed(meta, os.path.join(src, name), '127.0.9.21')
        try:
            before = relcommon.snapshot(self.w)
            r = swarm.run_client('download', '--no-tracker', '--peer', seed.address, '-d',
                                 self.out, path, timeout=TIMEOUT)
            self.assertEqual(r.returncode, 0, r)
            self.assertNothingOutside(before)
        finally:
            seed.stop()
        final = os.path.join(self.out, name)
        if single:
            with open(final, 'rb') as f:
                self.assertEqual(f.read(), contents[0][1])
        else:
            got = relcommon.snapshot(final)
            files_got = sorted(p for p, v in got.items() if v[0] == 'file')
            want = sorted(os.path.join(*[x.decode() for x in comps]) for comps, _ in contents)
            self.assertEqual(files_got, want)
            for comps, c in contents:
                with open(os.path.join(final, *[x.decode() for x in comps]), 'rb') as f:
                    self.assertEqual(f.read(), c, comps)
        self.assertFalse(os.path.exists(final + '.part'))

    def test_odd_but_legal_names_stay_inside(self):
        files = [([b'a'], 20000), ([b'a.part'], 5000), ([b'n.part'], 7),
                 ([b'CON'], 100), ([b'aux.txt'], 30000), ([b'a:b'], 3), ([b'nul'], 2),
                 ([b'..\\evil'], 40), ([b'dir.part', b'x'], 9), ([b' '], 1),
                 ([b'...'], 11), ([b'-rf'], 12), ([b'z' * 255], 33)]
        self.download_from_own_seed('odd', 'n', files)

    def test_single_file_named_like_a_part(self):
        self.download_from_own_seed('single-part', 'x.part', [([b'x'], 50000)], single=True)

    def test_single_file_reserved_name(self):
        self.download_from_own_seed('single-con', 'CON', [([b'x'], 5000)], single=True)

    def test_component_over_name_max(self):
        """A 300-byte component: the kernel refuses it (ENAMETOOLONG); the download must say
        so in one line that keeps the reason, and create nothing outside the output."""
        path, _ = make(self.tdir, 'long', 'n', [([b'a'], 10), ([b'L' * 300], 10)])
        before = relcommon.snapshot(self.w)
        r = swarm.run_client('download', '--no-tracker', '--peer',
                             '127.0.0.1:%d' % swarm.closed_port(), '-d', self.out, path,
                             timeout=TIMEOUT)
        self.assertNotEqual(r.returncode, 0, r)
        lines = relcommon.error_lines(r.stderr)
        self.assertEqual(len(lines), 1, r)
        self.assertIn('File name too long', lines[0], r)
        self.assertNothingOutside(before)
        self.assertFalse(os.path.exists(os.path.join(self.out, 'n')), r)


if __name__ == '__main__':
    relcommon.main()
