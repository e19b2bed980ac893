"""`torrent download --plot FILE.svg --stats FILE` against three libtorrent seeders on loopback
(each on its own 127.0.31.x, started and stopped by PID by swarm.py): the SVG is well-formed XML
with one stacked series and one share bar per seeder, the stats file is one JSON object per
line whose peer names are the seeders' addresses and whose counts add up to the download; bad
paths are refused at once, in one line, leaving nothing behind.

Run as: /usr/bin/python3 plot_cli.py <path to torrent binary>
"""

import json
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

NSEEDERS = 3
SVG = '{http://www.w3.org/2000/svg}'


class PlotAndStats(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='plot-cli-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        src = os.path.join(cls.w, 'src')
        cls.meta = swarm.make_torrent(swarm.make_single(src, 'plot.bin', 6 * MiB + 123, 31),
                                      os.path.join(cls.w, 'plot.torrent'), 64 * KiB)
        ips = swarm.IpPool('127.0.31.')
        factories = [lambda ip=ips.take(): swarm.LibtorrentSeeder(ip, [cls.meta], src, cls.w)
                     for _ in range(NSEEDERS)]
        cls.seeders = swarm.start_all(factories)
        for s in cls.seeders:
            cls.addClassCleanup(s.stop)
        cls.addresses = sorted(s.address for s in cls.seeders)
        cls.src = src

    def peer_args(self):
        return sum((['--peer', a] for a in self.addresses), [])

    def test_svg_and_stats_of_a_download(self):
        d = tempfile.mkdtemp(dir=self.w)
        svg, stats = os.path.join(d, 'run.svg'), os.path.join(d, 'run.jsonl')
        # At most 2 MiB/s: about three seconds, so several samples.
        r = run_client('download', '--no-tracker', *self.peer_args(), '--dir', d, '-q',
                       '--max-down', '2M', '--plot', svg, '--stats', stats, self.meta.path,
                       timeout=120)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(swarm.sha1_file(os.path.join(d, 'plot.bin')),
                         swarm.sha1_file(os.path.join(self.src, 'plot.bin')))

        with open(stats) as f:
            lines = f.read().splitlines()
        self.assertGreaterEqual(len(lines), 3, lines)
        objs = [json.loads(line) for line in lines]
        for prev, cur in zip(objs, objs[1:]):
            self.assertGreater(cur['t'], prev['t'])
            self.assertGreaterEqual(cur['received'], prev['received'])
        for o in objs:
            self.assertEqual(set(o), {'t', 'rate', 'received', 'peers'}, o)
            self.assertLessEqual(set(o['peers']), set(self.addresses), o)
        last = objs[-1]
        self.assertEqual(sorted(last['peers']), self.addresses, last)
        self.assertEqual(last['received'], self.meta.total, last)
        self.assertEqual(sum(last['peers'].values()), last['received'], last)
        self.assertTrue(any(o['rate'] > 0 for o in objs), objs)

        root = ET.parse(svg).getroot()
        self.assertEqual(root.tag, SVG + 'svg')
        series = [e for e in root.iter(SVG + 'path') if e.get('class') == 'peer']
        self.assertEqual(sorted(e.get('data-peer') for e in series), self.addresses)
        bars = [e for e in root.iter(SVG + 'rect') if e.get('class') == 'share']
        self.assertEqual(sorted(e.get('data-peer') for e in bars), self.addresses)
        totals = [e for e in root.iter(SVG + 'polyline') if e.get('class') == 'total']
        self.assertEqual(len(totals), 1)
        # The total line has a point per sample.
        self.assertEqual(len(totals[0].get('points').split()), len(objs))

    def test_unwritable_paths_refused_at_once(self):
        d = tempfile.mkdtemp(dir=self.w)
        missing = os.path.join(d, 'no', 'such', 'dir', 'p.svg')
        for opt in ('--plot', '--stats'):
            with self.subTest(opt=opt):
                r = run_client('download', '--no-tracker', '--peer', self.addresses[0],
                               '--dir', d, opt, missing, self.meta.path, timeout=30)
                line = self.assertFails(r, 'torrent: download: %s: cannot write' % opt,
                                        code=1)
                self.assertIn(missing, line)
                self.assertEqual(os.listdir(d), [])

    def test_same_file_twice_and_seed_refused(self):
        d = tempfile.mkdtemp(dir=self.w)
        same = os.path.join(d, 'x')
        r = run_client('download', '--no-tracker', '--dir', d, '--plot', same, '--stats', same,
                       self.meta.path, timeout=30)
        self.assertFails(r, 'torrent: download: --plot and --stats both name', code=1)
        r = run_client('seed', '--plot', same, self.meta.path, self.src, timeout=30)
        self.assertFails(r, "torrent: seed: --plot and --stats are for 'download'", code=2)
        self.assertEqual(os.listdir(d), [])

    def test_nothing_left_when_the_run_never_starts(self):
        d = tempfile.mkdtemp(dir=self.w)
        svg, stats = os.path.join(d, 'p.svg'), os.path.join(d, 's.jsonl')
        r = run_client('download', '--plot', svg, '--stats', stats,
                       os.path.join(d, 'missing.torrent'), timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(os.listdir(d), [])


if __name__ == '__main__':
    btcommon.main()
