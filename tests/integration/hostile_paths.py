"""Hostile paths and many files, with the real binary against a `torrent seed` on loopback.

A symbolic link planted at one of the names the client creates (`<name>.part`, a directory or
a file inside a multi-file `.part`, download_piece's `.part`, the final name with --force)
must end the run with exit 1 and one line naming the link, the link's target untouched
(content and mtime) and nothing outside the output directory changed. And a torrent of 20,000
files is downloaded from a seed, both processes under RLIMIT_NOFILE 1024 (soft and hard, so
the client cannot raise it), every file compared.

Run as: /usr/bin/python3 hostile_paths.py <path to torrent binary>
"""

import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import ownseed  # noqa: E402

TIMEOUT = 60
W = None
SINGLE = None  # (data path, torrent path)
MULTI = None
SEEDS = []


def create(path, out, piece_length='16K'):
    subprocess.run([btcommon.TORRENT, 'create', '-q', '--no-date', '-l', piece_length, '-o',
                    out, path], check=True, capture_output=True, timeout=120)
    return out


def limit_fds(n=1024):
    """For preexec_fn: soft and hard RLIMIT_NOFILE of n."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def start_seed(meta, data, ip, nofile=None):
    """`torrent seed` of data on ip, started (optionally under a descriptor limit) and waited
    for; returns (process, "ip:port"). Stopped by PID in tearDownModule."""
    port = ownseed.free_port(ip)
    p = subprocess.Popen([btcommon.TORRENT, 'seed', '--no-tracker', '--listen', ip, '-p',
                          str(port), '-q', meta, data], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE,
                         preexec_fn=limit_fds(nofile) if nofile else None)
    SEEDS.append(p)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError('seed exited %d: %s' % (p.returncode, p.stderr.read()[:500]))
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return p, '%s:%d' % (ip, port)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('the seed on %s did not start listening' % ip)


def setUpModule():
    global W, SINGLE, MULTI
    W = tempfile.mkdtemp(prefix='hostile-paths-')
    src = os.path.join(W, 'src')
    os.makedirs(os.path.join(src, 'tree', 'sub'))
    data = os.path.join(src, 'data.bin')
    with open(data, 'wb') as f:
        f.write(os.urandom(100000))
    for rel, n in (('a.bin', 30000), ('sub/b.bin', 50000)):
        with open(os.path.join(src, 'tree', rel), 'wb') as f:
            f.write(os.urandom(n))
    SINGLE = (data, create(data, os.path.join(W, 'data.torrent')))
    MULTI = (os.path.join(src, 'tree'), create(os.path.join(src, 'tree'),
                                               os.path.join(W, 'tree.torrent')))


def tearDownModule():
    for p in SEEDS:
        ownseed.stop(p)
    if W:
        shutil.rmtree(W, ignore_errors=True)


def snapshot(root, skip):
    """Every path under root but the subtree `skip`: (type, size, mtime_ns, link target)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            if p == skip or p.startswith(skip + os.sep):
                continue
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns,
                      os.readlink(p) if os.path.islink(p) else None)
    return out


class PlantedLinks(btcommon.CliTestCase):
    seeds = {}

    @classmethod
    def setUpClass(cls):
        cls.seeds['single'] = start_seed(SINGLE[1], SINGLE[0], '127.0.0.1')[1]
        cls.seeds['multi'] = start_seed(MULTI[1], MULTI[0], '127.0.0.1')[1]

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix='case-', dir=W)
        self.out = os.path.join(self.d, 'out')
        os.mkdir(self.out)
        self.outside = os.path.join(self.d, 'outside')
        os.mkdir(self.outside)
        self.target = os.path.join(self.outside, 'target.bin')
        with open(self.target, 'wb') as f:
            f.write(b'precious')
        os.utime(self.target, ns=(10**18, 10**18))

    def refused(self, argv, named, skip=None):
        """Runs the client; expects exit 1, one line naming `named` as a symbolic link, and
        nothing under the case's directory changed but `skip` (the output tree)."""
        before = snapshot(self.d, skip or '\0')
        r = btcommon.run(*argv, timeout=TIMEOUT)
        line = self.assertFails(r, 'torrent', code=1)
        self.assertIn(named, line)
        self.assertIn('symbolic link', line)
        self.assertEqual(snapshot(self.d, skip or '\0'), before)
        with open(self.target, 'rb') as f:
            self.assertEqual(f.read(), b'precious')
        self.assertEqual(os.stat(self.target).st_mtime_ns, 10**18)

    def download(self, which, *extra):
        meta = (SINGLE if which == 'single' else MULTI)[1]
        return ('download', '--no-tracker', '--peer', self.seeds[which], '-q', '-d', self.out,
                *extra, meta)

    def test_link_at_name_part(self):
        part = os.path.join(self.out, 'data.bin.part')
        os.symlink(self.target, part)
        self.refused(self.download('single'), part)

    def test_link_at_multi_part(self):
        part = os.path.join(self.out, 'tree.part')
        os.symlink(self.outside, part)
        self.refused(self.download('multi'), part)

    def test_link_at_directory_inside_part(self):
        part = os.path.join(self.out, 'tree.part')
        os.mkdir(part)
        os.symlink(self.outside, os.path.join(part, 'sub'))
        self.refused(self.download('multi'), os.path.join(part, 'sub'), skip=part)

    def test_link_at_file_inside_part(self):
        part = os.path.join(self.out, 'tree.part')
        os.makedirs(os.path.join(part, 'sub'))
        os.symlink(self.target, os.path.join(part, 'sub', 'b.bin'))
        self.refused(self.download('multi'), os.path.join(part, 'sub', 'b.bin'), skip=part)

    def test_force_at_final_link(self):
        final = os.path.join(self.out, 'data.bin')
        os.symlink(self.target, final)
        self.refused(self.download('single', '--force'), final)

    def test_download_piece_part_link(self):
        out = os.path.join(self.out, 'p.bin')
        os.symlink(self.target, out + '.part')
        self.refused(('download_piece', '--no-tracker', '--peer', self.seeds['single'], '-q',
                      '-o', out, SINGLE[1], '1'), out + '.part')

    def test_download_piece_force_final_link(self):
        out = os.path.join(self.out, 'p.bin')
        os.symlink(self.target, out)
        self.refused(('download_piece', '--no-tracker', '--peer', self.seeds['single'], '-q',
                      '--force', '-o', out, SINGLE[1], '1'), out)

    def test_user_dir_link_is_followed(self):
        """The --dir the user gives may be a link of their own: that one is followed."""
        real = os.path.join(self.d, 'real')
        os.mkdir(real)
        os.symlink(real, os.path.join(self.d, 'via'))
        r = btcommon.run('download', '--no-tracker', '--peer', self.seeds['single'], '-q',
                         '-d', os.path.join(self.d, 'via'), SINGLE[1], timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(real, 'data.bin'), 'rb') as f, open(SINGLE[0], 'rb') as g:
            self.assertEqual(f.read(), g.read())


NFILES = 20000


class ManyFiles(btcommon.CliTestCase):

    def test_20000_files_under_1024_descriptors(self):
        d = tempfile.mkdtemp(prefix='many-', dir=W)
        tm = time.monotonic()
        src = os.path.join(d, 'src', 'many')
        for k in range(NFILES // 1000):
            os.makedirs(os.path.join(src, 'd%02d' % k))
        for i in range(NFILES):
            with open(os.path.join(src, 'd%02d' % (i // 1000), 'f%05d' % i), 'wb') as f:
                f.write(os.urandom(1024))
        tc = time.monotonic()
        meta = create(src, os.path.join(d, 'many.torrent'), '64K')
        t0 = time.monotonic()
        _, addr = start_seed(meta, src, '127.0.0.2', nofile=1024)
        t1 = time.monotonic()
        out = os.path.join(d, 'out')
        r = subprocess.run([btcommon.TORRENT, 'download', '--no-tracker', '--peer', addr, '-q',
                            '-d', out, meta], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT, preexec_fn=limit_fds(1024))
        t2 = time.monotonic()
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        # Every piece was checked (SHA-1) before it was written and the tree renamed only when
        # complete: count the files and their sizes, and compare every 50th one's bytes.
        got = 0
        for k in range(NFILES // 1000):
            with os.scandir(os.path.join(out, 'many', 'd%02d' % k)) as it:
                for e in it:
                    self.assertEqual(e.stat(follow_symlinks=False).st_size, 1024, e.path)
                    got += 1
        self.assertEqual(got, NFILES)
        for i in range(0, NFILES, 50):
            rel = os.path.join('d%02d' % (i // 1000), 'f%05d' % i)
            with open(os.path.join(src, rel), 'rb') as f, \
                    open(os.path.join(out, 'many', rel), 'rb') as g:
                self.assertEqual(f.read(), g.read(), rel)
        self.assertFalse(os.path.exists(os.path.join(out, 'many.part')))
        print('\n  files made in %.1f s, torrent in %.1f s, seed ready in %.1f s, download %.1f s,'
              ' checked in %.1f s' % (tc - tm, t0 - tc, t1 - t0, t2 - t1, time.monotonic() - t2),
              file=sys.stderr)


if __name__ == '__main__':
    btcommon.main()
