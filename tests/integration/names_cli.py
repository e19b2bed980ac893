"""Names the file system cannot take as they are: an output path over the name limit must fail
with the reason in the error ("File name too long", however long the path: error messages are
shortened in the middle); a torrent whose name holds control characters, bidi overrides or
invalid UTF-8 is saved under a sanitised name (each such character or bad byte becomes '_'),
with one warning naming both, and the same info hash.

Run as: /usr/bin/python3 names_cli.py <path to torrent binary>
"""

import hashlib
import os
import shutil
import sys
import tempfile
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB  # noqa: E402
from upload_common import Seed, stop_on_sigterm  # noqa: E402

IPS = swarm.IpPool('127.0.10.')


class Names(unittest.TestCase):
    def setUp(self):
        self.w = tempfile.mkdtemp(prefix='names-cli-')
        self.addCleanup(shutil.rmtree, self.w, ignore_errors=True)
        self.src = swarm.make_single(os.path.join(self.w, 'src'), 'n.bin', 100 * KiB + 7, 4)
        self.meta = swarm.make_torrent(self.src, os.path.join(self.w, 'n.torrent'), 32 * KiB)

    def test_long_output_name_keeps_reason(self):
        for out in [os.path.join(self.w, 'n' * 300),
                    os.path.join(self.w, 'd' * 200, 'e' * 200, 'f' * 300)]:
            r = swarm.run_client('download', '--no-tracker', '--peer',
                                 '%s:%d' % (swarm.LOOPBACK, swarm.closed_port()), '-q',
                                 '-o', out, self.meta.path, timeout=30)
            self.assertEqual(r.returncode, 1, r.err)
            lines = [ln for ln in r.err.splitlines() if ln.strip()]
            self.assertTrue(any('File name too long' in ln for ln in lines), r.err)
            self.assertTrue(all(len(ln.encode()) < 300 for ln in lines), r.err)

    def test_hostile_name_sanitised(self):
        # The data of the payload, served by `torrent seed` from a file named as on disk.
        with open(self.src, 'rb') as f:
            data = f.read()
        raw = b'bad\x1b[2J\xe2\x80\xaetxt.exe\xff'
        disk = 'bad_[2J_txt.exe_'
        info = {'length': len(data), 'name': raw, 'piece length': 32 * KiB,
                'pieces': b''.join(hashlib.sha1(data[i:i + 32 * KiB]).digest()
                                   for i in range(0, len(data), 32 * KiB))}
        path = os.path.join(self.w, 'hostile.torrent')
        with open(path, 'wb') as f:
            f.write(btcommon.bencode({'info': info}))
        seed_dir = os.path.join(self.w, 'seed')
        os.mkdir(seed_dir)
        shutil.copy(self.src, os.path.join(seed_dir, disk))
        ip = IPS.take()
        seed = Seed(types.SimpleNamespace(path=path), os.path.join(seed_dir, disk), ip)
        self.addCleanup(seed.close)
        out = os.path.join(self.w, 'out')
        os.mkdir(out)
        r = swarm.run_client('download', '--no-tracker', '--peer', seed.address, '-q',
                             '--listen', IPS.take(), '--dir', out, path, timeout=60)
        self.assertEqual(r.returncode, 0, r.err)
        self.assertEqual(os.listdir(out), [disk])
        with open(os.path.join(out, disk), 'rb') as f:
            self.assertEqual(f.read(), data)
        warn = [ln for ln in r.err.splitlines() if 'for the file system' in ln]
        self.assertEqual(warn, ["torrent: download: renamed "
                                "'bad\\x1b[2J\\xe2\\x80\\xaetxt.exe\\xff' to '%s' "
                                "for the file system" % disk], r.err)
        seed.stop()


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
