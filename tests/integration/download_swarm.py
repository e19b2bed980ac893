"""`torrent download` from many seeders at once: 8 libtorrent seeders, each on its own loopback
address, all given with --peer. Every one of them must have sent data (the per-peer byte
counts of the --progress=json summary), the counts must add up, and the output must be
byte-identical.

Run as: /usr/bin/python3 download_swarm.py <path to torrent binary>
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

NSEEDERS = 8
BLOCK = 16 * KiB


class ManySeeders(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='download-swarm-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        src = os.path.join(cls.w, 'src')
        # 97 pieces of 256 KiB, the last 4097 bytes
        cls.single = swarm.make_torrent(swarm.make_single(src, 'swarm.bin', 24 * MiB + 4097, 7),
                                        os.path.join(cls.w, 'swarm.torrent'), 256 * KiB)
        # 5 pieces of 4 MiB for download_piece: one piece, many peers
        cls.big = swarm.make_torrent(swarm.make_single(src, 'big.bin', 16 * MiB + 11, 8),
                                     os.path.join(cls.w, 'big.torrent'), 4 * MiB)
        cls.src = src
        ips = swarm.IpPool('127.0.2.')
        factories = [lambda ip=ips.take(): swarm.LibtorrentSeeder(ip, [cls.single, cls.big],
                                                                   src, cls.w)
                     for _ in range(NSEEDERS)]
        cls.seeders = swarm.start_all(factories)
        for s in cls.seeders:
            cls.addClassCleanup(s.stop)
        cls.addresses = sorted(s.address for s in cls.seeders)
        assert len({s.ip for s in cls.seeders}) == NSEEDERS

    def peer_args(self):
        return sum((['--peer', a] for a in self.addresses), [])

    def test_download_uses_every_seeder(self):
        meta = self.single
        out = os.path.join(self.w, 'out.bin')
        r = run_client('download', '--no-tracker', *self.peer_args(), '-o', out,
                       '--progress=json', meta.path, timeout=120)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, out))
        self.assertEqual(swarm.sha1_file(out),
                         swarm.sha1_file(os.path.join(self.src, 'swarm.bin')))
        s = r.summary()
        self.assertIsNotNone(s, r)
        counts = {p['address']: p['bytes'] for p in s['peers']}
        sys.stderr.write('\n  per-peer bytes: %s\n' % ', '.join(
            '%s=%d' % kv for kv in sorted(counts.items())))
        self.assertEqual(sorted(counts), self.addresses, s)
        for addr in self.addresses:
            self.assertGreater(counts[addr], 0, 'seeder %s sent nothing: %s' % (addr, s))
        self.assertFalse(any(p['banned'] for p in s['peers']), s)
        self.assertEqual(s['pieces_failed'], 0, s)
        self.assertEqual(sum(counts.values()), s['received'], s)
        self.assertEqual(s['received'], meta.total, 'bytes received twice (endgame): %s' % s)
        self.assertEqual(s['total'], meta.total, s)

    def test_download_piece_uses_several_seeders(self):
        # One 4 MiB piece is 256 blocks: "many peers at once for its blocks".
        meta = self.big
        index = 2
        out = os.path.join(self.w, 'piece')
        r = run_client('download_piece', '--no-tracker', *self.peer_args(), '-o', out,
                       '--progress=json', meta.path, index, timeout=60)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Piece %d downloaded to %s.\n' % (index, out))
        with open(out, 'rb') as f:
            data = f.read()
        self.assertEqual(data, meta.piece(os.path.join(self.src, 'big.bin'), index))
        s = r.summary()
        self.assertIsNotNone(s, r)
        used = [p for p in s['peers'] if p['bytes'] > 0]
        sys.stderr.write('\n  per-peer bytes: %s\n' % ', '.join(
            '%s=%d' % (p['address'], p['bytes']) for p in used))
        self.assertGreaterEqual(len(used), 2, s)
        self.assertEqual(sum(p['bytes'] for p in s['peers']), s['received'], s)
        self.assertGreaterEqual(s['received'], meta.piece_length)
        # no more than the endgame's bounded duplicates
        self.assertLessEqual(s['received'], meta.piece_length + NSEEDERS * BLOCK, s)


if __name__ == '__main__':
    btcommon.main()
