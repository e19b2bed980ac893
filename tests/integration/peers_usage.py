#!/usr/bin/python3
"""Integration tests for `torrent peers` usage: bad options and arguments exit 2 with one line on
stderr and contact no tracker; unreadable or invalid torrents exit 2; a torrent without trackers
exits 1 with a clear message.

Usage: peers_usage.py <path to torrent binary>
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import trackers as T  # noqa: E402
from btcommon import bencode  # noqa: E402
from trackers import Reply, ok_body  # noqa: E402

ERR = 'torrent: peers: '


class UsageTest(btcommon.CliTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='peers-usage-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        # A live tracker behind the torrent: bad usage must not reach it.
        self.tracker = T.FakeHTTPTracker(lambda req: Reply(ok_body([('10.0.0.1', 1)]))).start()
        self.addCleanup(self.tracker.stop)
        self.path, _ = T.make_torrent(self.tmp, announce=self.tracker.url(), seed=1,
                                      torrent_name='good.torrent')

    def run_peers(self, *args):
        return T.run_torrent('peers', *args, timeout=20)

    def assertUsage(self, args, *needles, code=2):
        r = self.run_peers(*args)
        line = self.assertFails(r, ERR, code=code, msg=repr(args))
        for n in needles:
            self.assertIn(n, line, args)
        self.assertEqual(self.tracker.announces(), [], 'a tracker was contacted: %r' % (args,))
        return line

    def test_sanity_the_good_torrent_works(self):
        r = self.run_peers(self.path)
        self.assertEqual((r.returncode, r.stdout), (0, b'10.0.0.1:1\n'), r)

    def test_bad_timeout(self):
        for v in ['abc', '0', '-1', '', '3601', 'nan', 'inf', '5s', '0.0001']:
            with self.subTest(timeout=v):
                self.assertUsage(['--timeout', v, self.path], '--timeout', repr(v)[1:-1])
        self.assertUsage(['-t', 'abc', self.path], '--timeout')
        self.assertUsage([self.path, '--timeout'], '-timeout')

    def test_bad_port(self):
        for v in ['70000', '65536', '0', '-1', '1.5', 'http', '']:
            with self.subTest(port=v):
                self.assertUsage(['--port', v, self.path], '--port')
        self.assertUsage(['-p', '99999', self.path], '--port')

    def test_bad_listen(self):
        for v in ['localhost', '127.0.0.300', '', '1.2.3']:
            with self.subTest(listen=v):
                self.assertUsage(['--listen', v, self.path], '--listen')

    def test_file_count(self):
        self.assertUsage([], 'one .torrent file')
        self.assertUsage([self.path, self.path], 'one .torrent file')
        self.assertUsage(['--json'], 'one .torrent file')

    def test_unknown_option(self):
        self.assertUsage(['--bogus', self.path], '--bogus')

    def test_missing_or_invalid_torrent(self):
        missing = os.path.join(self.tmp, 'missing.torrent')
        self.assertUsage([missing], 'missing.torrent')
        self.assertUsage([self.tmp])
        garbage = os.path.join(self.tmp, 'garbage.torrent')
        with open(garbage, 'wb') as f:
            f.write(b'<html>not a torrent</html>')
        self.assertUsage([garbage], 'garbage.torrent')
        no_info = os.path.join(self.tmp, 'noinfo.torrent')
        with open(no_info, 'wb') as f:
            f.write(bencode({'announce': self.tracker.url()}))
        self.assertUsage([no_info], 'noinfo.torrent')

    def test_trackerless_torrent(self):
        for name, root in [('none', {}), ('empty-announce', {'announce': ''}),
                           ('empty-list', {'announce-list': []}),
                           ('empty-tiers', {'announce-list': [[], []]})]:
            with self.subTest(name):
                path, _ = T.make_torrent(self.tmp, seed=name, torrent_name=name + '.torrent',
                                         announce=root.get('announce'),
                                         announce_list=root.get('announce-list'))
                for opts in ([], ['--json']):
                    r = self.run_peers(*opts, path)
                    self.assertEqual(r.returncode, 1, r)
                    self.assertEqual(r.err, ERR + 'the torrent lists no trackers (--dht asks the DHT)\n', r)

    def test_help(self):
        r = self.run_peers('--help')
        self.assertEqual(r.returncode, 0, r)
        self.assertTrue(r.out.startswith('Usage: torrent peers'), r)
        for opt in ('--timeout', '--port', '--listen', '--json'):
            self.assertIn(opt, r.out)
        self.assertEqual(self.tracker.announces(), [])


if __name__ == '__main__':
    btcommon.main()
