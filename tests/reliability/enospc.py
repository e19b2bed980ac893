"""ENOSPC: as root, a 4 MiB tmpfs is mounted in a temporary directory and a 16 MiB torrent
downloaded into it from a libtorrent seeder. Storage reserves the whole size up front
(fallocate, storage.c), so a full disk shows at once rather than mid-download: the download
must fail (exit 1) within seconds with one error line naming the .part and "No space left on
device", leave no final name and no half-made .part (a failed start removes what it made),
and print its --progress=json summary object; after the file system is made bigger (remount,
size=64m) the same command completes to a byte-identical output. Not root, or mount(8) fails: the case is skipped, saying why (never a
pass).

Run as: /usr/bin/python3 enospc.py <path to torrent binary>
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon  # noqa: E402
from relcommon import btcommon, swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402

SIZE = 16 * MiB + 777
TIMEOUT = 60


def mount(*args):
    return subprocess.run(['mount', *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=20)


class Enospc(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='rel-enospc-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        src = os.path.join(cls.w, 'src')
        cls.data = swarm.make_single(src, 'full.bin', SIZE, 77)
        cls.meta = swarm.make_torrent(cls.data, os.path.join(cls.w, 'full.torrent'), 256 * KiB)
        cls.seeder = swarm.LibtorrentSeeder('127.0.9.31', [cls.meta], src, cls.w)
        cls.addClassCleanup(cls.seeder.stop)

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest('needs root to mount a small tmpfs (running as uid %d)' % os.geteuid())
        self.mnt = os.path.join(self.w, 'small')
        os.makedirs(self.mnt, exist_ok=True)
        p = mount('-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'tmpfs', self.mnt)
        if p.returncode != 0:
            self.skipTest('mount -t tmpfs failed: %s' % p.stdout.decode('utf-8', 'replace'))
        self.addCleanup(self.unmount)

    def unmount(self):
        p = subprocess.run(['umount', self.mnt], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        if p.returncode != 0:  # something still holds it: lazy unmount, never left mounted
            subprocess.run(['umount', '-l', self.mnt], timeout=20)

    def test_disk_full_then_resume(self):
        meta = self.meta
        out = os.path.join(self.mnt, 'full.bin')
        part = out + '.part'
        args = ['download', '--no-tracker', '--peer', self.seeder.address, '-o', out,
                '--progress=json', meta.path]
        r = swarm.run_client(*args, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 1, r)
        self.assertLess(r.elapsed, 10, r)
        self.assertFalse(os.path.exists(out), 'final name exists after a disk-full failure')
        # The files are preallocated, so the disk fills at the start; a start that fails
        # removes what it made (nothing half-made is left behind).
        self.assertFalse(os.path.exists(part), 'a half-made .part was left: %r' % r)
        lines = relcommon.error_lines(r.stderr)
        self.assertEqual(len(lines), 1, 'want one error line: %r' % r)
        self.assertIn('No space left on device', lines[0], r)
        self.assertIn(part, lines[0], r)
        self.assertNotIn('Downloaded', r.out, r)
        self.assertIsNotNone(r.summary(), 'no JSON summary object after a disk error: %r' % r)

    def test_resume_after_space_freed(self):
        meta = self.meta
        out = os.path.join(self.mnt, 'full.bin')
        args = ['download', '--no-tracker', '--peer', self.seeder.address, '-o', out,
                '--progress=json', meta.path]
        first = swarm.run_client(*args, timeout=TIMEOUT)
        self.assertEqual(first.returncode, 1, first)
        p = mount('-o', 'remount,size=64m', self.mnt)
        self.assertEqual(p.returncode, 0, p.stdout)
        r = swarm.run_client(*args, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, out))
        self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(self.data))
        self.assertFalse(os.path.exists(out + '.part'))


if __name__ == '__main__':
    relcommon.main()
