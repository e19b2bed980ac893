#!/usr/bin/python3
"""Integration tests for `torrent peers` against a real tracker: Debian's opentracker, started on
a free loopback port (HTTP and UDP on the same number) with the test torrents whitelisted.

Fake peers register by announcing from their own loopback addresses (127.0.0.11, .12, ...),
since opentracker records the TCP/UDP source address. `torrent peers` must then list exactly
those peers: over http://, over udp://, and with an announce-list whose first tier is dead.

Usage: peers_opentracker.py <path to torrent binary>
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import trackers as T  # noqa: E402

ERR = 'torrent: peers: '
TIMEOUT = 8  # --timeout given to the binary in these tests

# (source address, announced port, left): two seeders (left=0) and three leechers
FAKE_PEERS = [('127.0.0.11', 51413, 0), ('127.0.0.12', 6882, 0), ('127.0.0.13', 40000, 1000),
              ('127.0.0.14', 1024, 5000), ('127.0.0.15', 65535, 1)]


@unittest.skipUnless(os.access(T.OPENTRACKER, os.X_OK), 'opentracker is not installed')
class OpenTrackerTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='peers-ot-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        # The payload (and so the info hash) is the same whatever the announce URLs are.
        _, self.ih = T.make_torrent(self.tmp, seed=self.id(), torrent_name='probe.torrent')
        self.ot = T.OpenTracker([self.ih]).start()
        self.addCleanup(self.ot.stop)

    def torrent(self, name, announce=None, announce_list=None):
        path, ih = T.make_torrent(self.tmp, announce=announce, announce_list=announce_list,
                                  seed=self.id(), torrent_name=name)
        self.assertEqual(ih, self.ih)
        return path

    def register(self, peers=FAKE_PEERS):
        """Announces each fake peer from its own address; returns the expected 'ip:port' set."""
        for i, (ip, port, left) in enumerate(peers):
            r = T.announce_http(self.ot.http_url, self.ih, T.peer_id(100 + i), port,
                                source_ip=ip, left=left)
            self.assertNotIn(b'failure reason', r, r)
        expect = {'%s:%d' % (ip, port) for ip, port, _ in peers}
        # What the tracker itself now lists, seen by an observer that is then removed again.
        seen = T.announce_http(self.ot.http_url, self.ih, T.peer_id(99), 9, source_ip='127.0.0.99')
        T.announce_http(self.ot.http_url, self.ih, T.peer_id(99), 9, source_ip='127.0.0.99',
                        event='stopped')
        self.assertEqual(set(T.reply_peers(seen)) - {'127.0.0.99:9'}, expect)
        return expect

    def tracker_view(self):
        """The peer list and counts as a new peer sees them now (that peer is then removed)."""
        r = T.announce_http(self.ot.http_url, self.ih, T.peer_id(98), 8, source_ip='127.0.0.98')
        T.announce_http(self.ot.http_url, self.ih, T.peer_id(98), 8, source_ip='127.0.0.98',
                        event='stopped')
        return set(T.reply_peers(r)) - {'127.0.0.98:8'}, r

    def peers(self, path, *opts, timeout=TIMEOUT):
        return T.run_torrent('peers', '--timeout', timeout, *opts, path, timeout=timeout + 10)

    def assertExactPeers(self, r, expect):
        self.assertEqual(r.returncode, 0, r)
        lines = r.lines()
        self.assertEqual(len(lines), len(set(lines)), 'duplicates: %r' % r)
        self.assertEqual(set(lines), expect, r)
        self.assertLess(r.elapsed, TIMEOUT, r)

    # --- one live tracker ---------------------------------------------------------------------

    def test_http_lists_exactly_the_registered_peers(self):
        expect = self.register()
        r = self.peers(self.torrent('http.torrent', announce=self.ot.http_url))
        self.assertExactPeers(r, expect)
        self.assertEqual(r.stderr, b'', r)

    def test_udp_lists_exactly_the_registered_peers(self):
        expect = self.register()
        r = self.peers(self.torrent('udp.torrent', announce=self.ot.udp_url))
        self.assertExactPeers(r, expect)
        self.assertEqual(r.stderr, b'', r)

    def test_udp_peers_registered_over_udp(self):
        """Peers that registered over UDP are listed over HTTP and UDP alike."""
        expect = set()
        for i, ip in enumerate(['127.0.0.21', '127.0.0.22', '127.0.0.23']):
            T.announce_udp(T.LOOPBACK, self.ot.port, self.ih, T.peer_id(200 + i), 7000 + i,
                           source_ip=ip)
            expect.add('%s:%d' % (ip, 7000 + i))
        for name, url in (('u.torrent', self.ot.udp_url), ('h.torrent', self.ot.http_url)):
            r = self.peers(self.torrent(name, announce=url))
            self.assertExactPeers(r, expect)

    def test_no_other_peer_exits_1(self):
        """Only we are in the swarm: opentracker lists our own entry, which is not a peer."""
        for url in (self.ot.http_url, self.ot.udp_url):
            r = self.peers(self.torrent('alone.torrent', announce=url), '--timeout', '2')
            self.assertEqual(r.returncode, 1, r)
            self.assertEqual(r.stdout, b'', r)
            self.assertIn('no peers from 1 tracker', r.err, r)

    def test_our_port_shared_by_other_local_peers(self):
        """Two other peers on 127.0.0.21 and .22 announce the port we announce (6881): both are
        listed, and our own entry (127.0.0.1:6881, where our announce left from) is not."""
        others = [('127.0.0.21', 6881, 1000), ('127.0.0.22', 6881, 0)]
        expect = self.register(others)
        for name, url in (('h.torrent', self.ot.http_url), ('u.torrent', self.ot.udp_url)):
            r = self.peers(self.torrent(name, announce=url), '--port', '6881', '--json')
            self.assertEqual(r.returncode, 0, r)
            doc = json.loads(r.stdout)
            self.assertEqual(sorted(doc['peers']), sorted(expect), r)
            # The tracker did count us (a leecher beside .21), so it listed us too.
            self.assertEqual(doc['trackers'][0]['leechers'], 2, r)
            self.assertEqual(doc['trackers'][0]['seeders'], 1, r)
            plain = self.peers(self.torrent(name, announce=url), '--port', '6881')
            self.assertExactPeers(plain, expect)
            self.assertEqual(plain.stderr, b'', plain)

    def test_our_entry_at_the_listen_address(self):
        """With --listen 127.0.0.23 we are listed at 127.0.0.23:6881; a peer at 127.0.0.1:6881
        (where our announces leave from without --listen) is another peer and is listed."""
        others = [('127.0.0.1', 6881, 1000), ('127.0.0.22', 6881, 0)]
        expect = self.register(others)
        for name, url in (('h.torrent', self.ot.http_url), ('u.torrent', self.ot.udp_url)):
            r = self.peers(self.torrent(name, announce=url), '--port', '6881', '--listen',
                           '127.0.0.23', '--json')
            self.assertEqual(r.returncode, 0, r)
            doc = json.loads(r.stdout)
            self.assertEqual(sorted(doc['peers']), sorted(expect), r)
            self.assertEqual(doc['trackers'][0]['leechers'], 2, r)

    # --- dead first tier ----------------------------------------------------------------------

    def dead_tier(self):
        port = T.closed_port()
        return ['http://127.0.0.1:%d/announce' % port, 'udp://127.0.0.1:%d/announce' % port]

    def check_dead_first_tier(self, live_url):
        expect = self.register()
        dead = self.dead_tier()
        path = self.torrent('tiers.torrent', announce=dead[0],
                            announce_list=[dead, [live_url]])
        r = self.peers(path)
        self.assertExactPeers(r, expect)
        for url in dead:
            self.assertIn('\n%s%s: ' % (ERR, url), '\n' + r.err, r)
        self.assertNotIn(live_url, r.err, r)
        for line in r.err.splitlines():
            self.assertTrue(line.startswith(ERR), r)

        j = self.peers(path, '--json')
        self.assertEqual(j.returncode, 0, j)
        doc = json.loads(j.stdout)
        self.assertEqual(set(doc['peers']), expect, j)
        by_url = {t['url']: t for t in doc['trackers']}
        self.assertEqual(set(by_url), set(dead) | {live_url}, j)
        live = by_url[live_url]
        self.assertIsNone(live['error'], j)
        self.assertEqual(set(live['peers']), expect, j)
        self.assertIsInstance(live['interval'], int, j)
        self.assertGreater(live['interval'], 0, j)
        self.assertEqual(live['seeders'], 2, j)  # 127.0.0.11 and .12 announced left=0
        self.assertEqual(live['leechers'], 4, j)  # the three others and us
        if live_url.startswith('http'):
            self.assertIsInstance(live['min_interval'], int, j)
        for url in dead:
            t = by_url[url]
            self.assertIsInstance(t['error'], str, j)
            self.assertTrue(t['error'], j)
            self.assertEqual(t['peers'], [], j)
            self.assertIsNone(t['seeders'], j)
            self.assertIsNone(t['interval'], j)
        for t in doc['trackers']:
            self.assertEqual(sorted(t), sorted(['url', 'peers', 'interval', 'min_interval',
                                                'seeders', 'leechers', 'warning', 'error',
                                                'elapsed_ms', 'scrape']), j)
            self.assertLess(t['elapsed_ms'], TIMEOUT * 1000, j)

    def test_dead_first_tier_then_http(self):
        self.check_dead_first_tier(self.ot.http_url)

    def test_dead_first_tier_then_udp(self):
        self.check_dead_first_tier(self.ot.udp_url)

    def test_http_and_udp_of_one_tracker_merged(self):
        """The same swarm over both protocols: each peer printed once."""
        expect = self.register()
        path = self.torrent('both.torrent', announce=self.ot.http_url,
                            announce_list=[[self.ot.http_url, self.ot.udp_url]])
        r = self.peers(path)
        self.assertExactPeers(r, expect)
        self.assertEqual(r.stderr, b'', r)

    # --- the stopped announce -----------------------------------------------------------------

    def test_stopped_removes_us_from_the_swarm(self):
        for url, name in ((self.ot.http_url, 'h.torrent'), (self.ot.udp_url, 'u.torrent')):
            expect = self.register()
            path = self.torrent(name, announce=url)
            r = self.peers(path, '--port', '7777', '--json')
            self.assertEqual(r.returncode, 0, r)
            doc = json.loads(r.stdout)
            self.assertEqual(set(doc['peers']), expect, r)
            # While it ran, the tracker counted it (3 leechers + us): it did register ...
            self.assertEqual(doc['trackers'][0]['leechers'], 4, r)
            # ... and after it, the tracker no longer lists it.
            seen, reply = self.tracker_view()
            self.assertNotIn('127.0.0.1:7777', seen, url)
            self.assertEqual(seen, expect, url)
            self.assertEqual(reply[b'incomplete'], 4, reply)  # 3 leechers + the viewer


if __name__ == '__main__':
    btcommon.main()
