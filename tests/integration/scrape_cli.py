#!/usr/bin/python3
"""Integration tests for the tracker scrape (BEP 48) of `torrent peers --json`.

Against Debian's opentracker (HTTP and UDP, on a free loopback port): after a seeder, a leecher
and a peer that completed its download have announced (each from its own 127.0.0.x), the JSON of
each tracker holds its scrape, complete 2 / incomplete 1 / downloaded 1; our own query is not
counted (it is scraped after its 'stopped').

Against a scripted HTTP tracker whose announces succeed but whose scrape replies are hostile or
broken (not bencoded, no 'files', another torrent, negative counts, an HTTP error, a huge body, a
reply that never comes): the peers are still printed and the exit status is 0; only that
tracker's scrape carries a one-line error. A tracker whose URL has no scrape (BEP 48's rule) is
not asked. No traffic leaves 127.0.0.0/8.

Usage: scrape_cli.py <path to torrent binary>
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
from btcommon import bencode  # noqa: E402

TIMEOUT = 5


def peers_json(path, timeout=TIMEOUT):
    r = T.run_torrent('peers', '--json', '--timeout', timeout, path, timeout=timeout + 15)
    return r, json.loads(r.out) if r.out.strip() else None


@unittest.skipUnless(os.access(T.OPENTRACKER, os.X_OK), 'opentracker is not installed')
class OpenTrackerScrape(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='scrape-ot-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        _, self.ih = T.make_torrent(self.tmp, seed='scrape', torrent_name='probe.torrent')
        self.ot = T.OpenTracker([self.ih]).start()
        self.addCleanup(self.ot.stop)

    def swarm(self):
        url = self.ot.http_url
        T.announce_http(url, self.ih, T.peer_id(1), 6001, source_ip='127.0.0.21', left=0)
        T.announce_http(url, self.ih, T.peer_id(2), 6002, source_ip='127.0.0.22', left=5000)
        T.announce_http(url, self.ih, T.peer_id(3), 6003, source_ip='127.0.0.23', left=5000)
        T.announce_http(url, self.ih, T.peer_id(3), 6003, source_ip='127.0.0.23', left=0,
                        event='completed')
        return {'127.0.0.21:6001', '127.0.0.22:6002', '127.0.0.23:6003'}

    def check(self, announce):
        path, ih = T.make_torrent(self.tmp, announce=announce, seed='scrape',
                                  torrent_name='t.torrent')
        self.assertEqual(ih, self.ih)
        expect = self.swarm()
        r, doc = peers_json(path)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(set(doc['peers']), expect, r)
        (t,) = doc['trackers']
        self.assertIsNone(t['error'], r)
        self.assertEqual(t['scrape'], {'complete': 2, 'incomplete': 1, 'downloaded': 1,
                                       'error': None}, r)
        # The scrape ran after our 'stopped': a second run sees the same counts.
        r2, doc2 = peers_json(path)
        self.assertEqual(doc2['trackers'][0]['scrape'], t['scrape'], r2)

    def test_http_scrape(self):
        self.check(self.ot.http_url)

    def test_udp_scrape(self):
        self.check(self.ot.udp_url)

    def test_plain_output_does_not_scrape(self):
        path, _ = T.make_torrent(self.tmp, announce=self.ot.http_url, seed='scrape',
                                 torrent_name='t.torrent')
        self.swarm()
        r = T.run_torrent('peers', '--timeout', TIMEOUT, path, timeout=TIMEOUT + 15)
        self.assertEqual(r.returncode, 0, r)
        self.assertNotIn('scrape', r.out + r.err)


def announce_ok():
    return T.Reply(T.ok_body(peers=[('127.0.0.31', 7001)], extra={'complete': 4,
                                                                   'incomplete': 5}))


class ScriptedScrape(unittest.TestCase):
    """One scripted HTTP tracker per case; `scrape_reply` is what its /scrape answers."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='scrape-fake-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def run_case(self, scrape_reply, announce_path='/announce', timeout=TIMEOUT):
        def script(req):
            if 'scrape' in req['path']:
                return scrape_reply(req)
            return announce_ok()
        tr = T.FakeHTTPTracker(script).start()
        self.addCleanup(tr.stop)
        path, ih = T.make_torrent(self.tmp, announce=tr.url(announce_path), seed=self.id(),
                                  torrent_name='t.torrent')
        r, doc = peers_json(path, timeout=timeout)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(doc['peers'], ['127.0.0.31:7001'], r)
        (t,) = doc['trackers']
        self.assertIsNone(t['error'], r)
        self.assertEqual((t['seeders'], t['leechers']), (4, 5), r)
        scrapes = [q for q in tr.announces() if 'scrape' in q['path']]
        return r, ih, t['scrape'], scrapes

    def assertScrapeError(self, scrape, *words):
        self.assertEqual((scrape['complete'], scrape['incomplete'], scrape['downloaded']),
                         (None, None, None), scrape)
        self.assertIsInstance(scrape['error'], str, scrape)
        self.assertNotIn('\n', scrape['error'])
        for w in words:
            self.assertIn(w, scrape['error'], scrape)

    def test_good_reply_and_the_request(self):
        box = {}

        def reply(req):
            box['ih'] = req['params'].get('info_hash')
            files = {box['ih']: {b'complete': 3, b'incomplete': 8, b'downloaded': 21}}
            return T.Reply(bencode({b'files': files}))
        r, ih, scrape, reqs = self.run_case(reply, announce_path='/x/announce.php?passkey=k')
        self.assertEqual(scrape, {'complete': 3, 'incomplete': 8, 'downloaded': 21,
                                  'error': None}, r)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]['path'], '/x/scrape.php')
        self.assertEqual(reqs[0]['params'].get('passkey'), b'k')
        self.assertEqual(box['ih'], ih)

    def test_hostile_replies(self):
        def other_torrent(req):
            return T.Reply(bencode({b'files': {b'\xff' * 20: {b'complete': 1, b'incomplete': 1,
                                                               b'downloaded': 1}}}))

        def negative(req):
            ih = req['params']['info_hash']
            return T.Reply(bencode({b'files': {ih: {b'complete': -5, b'incomplete': 1,
                                                    b'downloaded': 1}}}))
        cases = [
            (lambda req: T.Reply(b'<html>hello</html>'), ('not bencoded',)),
            (lambda req: T.Reply(b'd5:filesi3ee'), ("'files'",)),
            (lambda req: T.Reply(b'd5:files'), ('not bencoded',)),
            (other_torrent, ('does not list this torrent',)),
            (negative, ("'complete'",)),
            (lambda req: T.Reply(bencode({b'failure reason': b'scrape disabled'})),
             ('failure reason: scrape disabled',)),
            (lambda req: T.Reply(b'oops', status=500), ('500',)),
            (lambda req: T.Reply(b'd5:filesd' + b'x' * (1 << 20)), ()),
        ]
        for reply, words in cases:
            with self.subTest(words=words):
                r, _, scrape, reqs = self.run_case(reply)
                self.assertEqual(len(reqs), 1, r)
                self.assertScrapeError(scrape, *words)

    def test_scrape_that_never_answers(self):
        r, _, scrape, _ = self.run_case(lambda req: T.Reply(stall=True), timeout=2)
        self.assertScrapeError(scrape, 'no scrape reply within 2 s')
        # The stalled scrape is bounded: announce, stopped and scrape, within about 2 s each.
        self.assertLess(r.elapsed, 7, r)

    def test_url_without_scrape(self):
        r, _, scrape, reqs = self.run_case(lambda req: T.Reply(b'de'), announce_path='/a')
        self.assertEqual(reqs, [])
        self.assertScrapeError(scrape, 'no scrape URL')

    def test_failed_announce_is_not_scraped(self):
        def script(req):
            if 'scrape' in req['path']:
                return T.Reply(b'de')
            return T.Reply(bencode({b'failure reason': b'go away'}))
        tr = T.FakeHTTPTracker(script).start()
        self.addCleanup(tr.stop)
        path, _ = T.make_torrent(self.tmp, announce=tr.url(), seed=self.id(),
                                 torrent_name='t.torrent')
        r, doc = peers_json(path)
        self.assertEqual(r.returncode, 1, r)
        t = doc['trackers'][0]
        self.assertIn('go away', t['error'])
        self.assertIn('announce failed', t['scrape']['error'])
        self.assertEqual([q for q in tr.announces() if 'scrape' in q['path']], [])


if __name__ == '__main__':
    btcommon.main()
