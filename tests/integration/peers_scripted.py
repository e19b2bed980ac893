#!/usr/bin/python3
"""Integration tests for `torrent peers` against scripted trackers served from this process
(HTTP from http.server threads, UDP from a socket thread), for what a real tracker will not do:
failure and warning replies, bad bodies, HTTP errors, redirects, stalls, oversized and gzip-bomb
bodies, odd peer lists, and the BEP 15 corner cases (stale transaction ids, error action,
short datagrams, silence and retransmission).

Usage: peers_scripted.py <path to torrent binary>
"""

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import trackers as T  # noqa: E402
from btcommon import bencode  # noqa: E402
from trackers import Reply, ok_body  # noqa: E402

ERR = 'torrent: peers: '
PEERS = [('10.0.0.1', 6881), ('192.168.1.20', 51413), ('203.0.113.7', 1)]
STALE_ID = 0x5741_1e00_0000_0bad
PEER_LINES = ['10.0.0.1:6881', '192.168.1.20:51413', '203.0.113.7:1']


class ScriptedTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='peers-fake-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.n = 0

    # --- helpers ------------------------------------------------------------------------------

    def torrent(self, announce=None, announce_list=None, size=None):
        self.n += 1
        path, self.ih = T.make_torrent(self.tmp, announce=announce, announce_list=announce_list,
                                       size=size, seed='%s-%d' % (self.id(), self.n),
                                       torrent_name='t%d.torrent' % self.n)
        return path

    def http(self, script):
        if isinstance(script, Reply):
            reply = script
            script = lambda req: reply  # noqa: E731
        t = T.FakeHTTPTracker(script).start()
        self.addCleanup(t.stop)
        return t

    def udp(self, script=None, **kw):
        t = T.FakeUDPTracker(script, **kw).start()
        self.addCleanup(t.stop)
        return t

    def peers(self, path, *opts, timeout=5, measure_rss=False):
        return T.run_torrent('peers', '--timeout', timeout, *opts, path, timeout=timeout + 15,
                             measure_rss=measure_rss)

    def assertPeers(self, r, expected, rc=0):
        self.assertEqual(r.returncode, rc, r)
        lines = r.lines()
        self.assertEqual(len(lines), len(set(lines)), 'duplicate lines: %r' % r)
        self.assertEqual(sorted(lines), sorted(expected), r)

    def trackerError(self, r, url, *needles):
        """The stderr line for `url` (not a warning); checks it holds each needle."""
        lines = [ln for ln in r.err.splitlines()
                 if ln.startswith('%s%s: ' % (ERR, url)) and ': warning: ' not in ln]
        self.assertEqual(len(lines), 1, 'no single error line for %s: %r' % (url, r))
        for n in needles:
            self.assertIn(n, lines[0], r)
        return lines[0]

    def assertNoPeers(self, r, trackers=1):
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stdout, b'', r)
        self.assertEqual(r.err.splitlines()[-1],
                         '%sno peers from %d tracker%s' % (ERR, trackers,
                                                          '' if trackers == 1 else 's'), r)
        for line in r.err.splitlines():
            self.assertTrue(line.startswith(ERR), r)

    def one_tracker_fails(self, reply, *needles, tracker=None):
        t = tracker or self.http(reply)
        r = self.peers(self.torrent(t.url()))
        self.assertNoPeers(r)
        self.trackerError(r, t.url(), *needles)
        return t, r


class HTTPRepliesTest(ScriptedTest):
    def test_failure_reason(self):
        msg = 'torrent not registered with this tracker'
        t, r = self.one_tracker_fails(Reply(bencode({'failure reason': msg})),
                                      'failure reason: ' + msg)
        self.assertEqual(len(t.announces()), 1, 'no stopped to a tracker that refused')
        j = self.peers(self.torrent(t.url()), '--json')
        self.assertEqual(j.returncode, 1, j)
        doc = json.loads(j.stdout)
        self.assertEqual(doc['peers'], [], j)
        self.assertIn(msg, doc['trackers'][0]['error'], j)

    def test_warning_message_with_peers(self):
        msg = 'please upgrade your client'
        t = self.http(Reply(ok_body(PEERS, extra={'warning message': msg})))
        path = self.torrent(t.url())
        r = self.peers(path)
        self.assertPeers(r, PEER_LINES)
        self.assertIn('%s%s: warning: %s\n' % (ERR, t.url(), msg), r.err, r)
        j = self.peers(path, '--json')
        doc = json.loads(j.stdout)
        self.assertEqual(doc['trackers'][0]['warning'], msg, j)
        self.assertIsNone(doc['trackers'][0]['error'], j)
        self.assertEqual(sorted(doc['peers']), sorted(PEER_LINES), j)

    def test_html_body(self):
        self.one_tracker_fails(Reply(b'<html><body><h1>Welcome to nginx!</h1></body></html>\n',
                                     ctype='text/html'), 'bad reply')

    def test_truncated_body(self):
        full = ok_body(PEERS, extra={'complete': 5, 'incomplete': 7})
        self.one_tracker_fails(Reply(full[:-7]), 'bad reply')

    def test_connection_closed_before_content_length(self):
        full = ok_body(PEERS)
        self.one_tracker_fails(Reply(full[:len(full) // 2],
                                     headers={'Content-Length': str(len(full))}))

    def test_bad_peers_value(self):
        self.one_tracker_fails(Reply(bencode({'interval': 60, 'peers': 5})), 'bad reply')

    def test_neither_peers_nor_failure(self):
        self.one_tracker_fails(Reply(bencode({'interval': 60, 'complete': 1})), 'bad reply')

    def test_trailing_newline_after_the_dictionary(self):
        t = self.http(Reply(ok_body(PEERS) + b'\n'))
        self.assertPeers(self.peers(self.torrent(t.url())), PEER_LINES)

    def test_json_escapes_tracker_text(self):
        """Quotes, control characters and invalid UTF-8 from a tracker still give valid JSON."""
        reason = b'bad "key" \\ \x01\t\xff\xfe caf\xc3\xa9'
        warning = b'line1\nline2 \xc3('
        refusing = self.http(Reply(bencode({'failure reason': reason})))
        warning_t = self.http(Reply(ok_body(PEERS, extra={'warning message': warning})))
        path = self.torrent(refusing.url(), announce_list=[[refusing.url(), warning_t.url()]])
        r = self.peers(path, '--json')
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout.count(b'\n'), 1, r)
        doc = json.loads(r.stdout.decode('utf-8'))
        by_url = {t['url']: t for t in doc['trackers']}
        err = by_url[refusing.url()]['error'].encode('utf-8', 'surrogateescape')
        self.assertIn(reason, err, r)
        self.assertEqual(by_url[warning_t.url()]['warning'].encode('utf-8', 'surrogateescape'),
                         warning, r)

    def test_empty_body(self):
        self.one_tracker_fails(Reply(b''), 'bad reply')

    def test_not_a_dictionary(self):
        self.one_tracker_fails(Reply(b'l5:peerse'), 'bad reply')

    def test_http_404(self):
        self.one_tracker_fails(Reply(b'<html>Not Found</html>', status=404, ctype='text/html'),
                               'HTTP status 404')

    def test_http_500(self):
        self.one_tracker_fails(Reply(b'Internal Server Error', status=500), 'HTTP status 500')

    def test_http_500_with_peers_is_still_an_error(self):
        self.one_tracker_fails(Reply(ok_body(PEERS), status=500), 'HTTP status 500')

    def test_error_status_with_bencoded_failure_reason(self):
        self.one_tracker_fails(Reply(bencode({'failure reason': 'invalid passkey'}), status=400),
                               'invalid passkey')

    def test_compact_peers_not_a_multiple_of_6(self):
        blob = b''.join(T.compact4(*p) for p in PEERS) + b'\x01\x02\x03\x04'
        t = self.http(Reply(bencode({'interval': 1800, 'peers': blob})))
        self.assertPeers(self.peers(self.torrent(t.url())), PEER_LINES)

    def test_dictionary_peers_with_bad_entries(self):
        good = [{'ip': '10.1.1.1', 'port': 1000, 'peer id': b'A' * 20},
                {'ip': '2001:db8::7', 'port': 2000},
                {'ip': '10.1.1.2', 'port': 65535}]
        bad = [{'ip': 'tracker.example.org', 'port': 3000},  # a name: not resolved
               {'ip': '10.1.1.3', 'port': 0},
               {'ip': '10.1.1.4', 'port': 65536},
               {'ip': '10.1.1.5', 'port': -1},
               {'ip': '10.1.1.6'},
               {'port': 3001},
               {'ip': 167837959, 'port': 3002},
               {'ip': '10.1.1.8', 'port': '3003'},
               {'ip': '10.1.1', 'port': 3004},
               {'ip': '1' * 200, 'port': 3005},
               {'ip': '', 'port': 3006},
               42, b'10.1.1.9:3007', [b'10.1.1.10', 3008]]
        entries = [bad[0], good[0], *bad[1:7], good[1], *bad[7:], good[2]]
        t = self.http(Reply(ok_body(dict_peers=entries)))
        r = self.peers(self.torrent(t.url()))
        self.assertPeers(r, ['10.1.1.1:1000', '[2001:db8::7]:2000', '10.1.1.2:65535'])

    def test_dictionary_peer_ip_with_embedded_nul(self):
        """An 'ip' string with a NUL inside is not an address: the entry is skipped, not read as
        the text before the NUL."""
        t = self.http(Reply(ok_body(dict_peers=[{'ip': b'10.5.5.5\x00junk', 'port': 5},
                                                {'ip': b'10.1.1.1', 'port': 1000}])))
        r = self.peers(self.torrent(t.url()))
        self.assertPeers(r, ['10.1.1.1:1000'])

    def test_peers6(self):
        v6 = [('2001:db8::1', 6881), ('fe80::1:2:3:4', 1), ('::ffff:10.2.3.4', 7)]
        t = self.http(Reply(ok_body(PEERS[:1], peers6=v6)))
        r = self.peers(self.torrent(t.url()))
        self.assertPeers(r, ['10.0.0.1:6881', '[2001:db8::1]:6881', '[fe80::1:2:3:4]:1',
                             '[%s]:7' % socket.inet_ntop(socket.AF_INET6, socket.inet_pton(
                                 socket.AF_INET6, '::ffff:10.2.3.4'))])
        # peers6 alone, and with a 2-byte tail that is not a whole entry
        blob = b''.join(T.compact6(*p) for p in v6[:2]) + b'\xff\xff'
        t2 = self.http(Reply(bencode({'interval': 60, 'peers6': blob})))
        r = self.peers(self.torrent(t2.url()))
        self.assertPeers(r, ['[2001:db8::1]:6881', '[fe80::1:2:3:4]:1'])

    def test_duplicates_printed_once(self):
        a = self.http(Reply(ok_body(PEERS[:2] + PEERS[:1])))  # a duplicate within one reply
        b = self.http(Reply(ok_body(PEERS[1:])))
        u = self.udp(peers=PEERS[::-1])
        path = self.torrent(a.url(), announce_list=[[a.url()], [b.url(), u.url()]])
        r = self.peers(path)
        self.assertPeers(r, PEER_LINES)
        self.assertEqual(r.stderr, b'', r)
        doc = json.loads(self.peers(path, '--json').stdout)
        self.assertEqual(sorted(doc['peers']), sorted(PEER_LINES))
        self.assertEqual(len(doc['trackers']), 3)

    def test_own_entry_filtered(self):
        """Our own entry is the one at the address the announce left from (127.0.0.1 here) with
        the announced port; the same port on another loopback address is another peer."""
        port = 45678
        listed = [('127.0.0.1', port), ('127.0.0.5', port), ('127.0.0.1', port + 1),
                  ('10.9.8.7', port)]
        others = ['127.0.0.5:%d' % port, '127.0.0.1:%d' % (port + 1), '10.9.8.7:%d' % port]
        for t in (self.http(Reply(ok_body(listed))), self.udp(peers=listed)):
            r = self.peers(self.torrent(t.url()), '--port', port)
            self.assertPeers(r, others)
        # With only ourselves listed, there is no peer.
        t2 = self.http(Reply(ok_body([('127.0.0.1', 6881)])))
        r = self.peers(self.torrent(t2.url()))
        self.assertNoPeers(r)

    def test_own_entry_from_listen_address(self):
        """With --listen, announces leave from that address, and that is where we are listed."""
        port = 45679
        listed = [('127.0.0.1', port), ('127.0.0.5', port)]
        h = self.http(Reply(ok_body(listed)))
        u = self.udp(peers=listed)
        for t in (h, u):
            r = self.peers(self.torrent(t.url()), '--port', port, '--listen', '127.0.0.5')
            self.assertPeers(r, ['127.0.0.1:%d' % port])
        self.assertEqual(u.last_addr[0], '127.0.0.5')

    def test_gzip_reply_accepted(self):
        t = self.http(Reply(T.gzip_bytes(ok_body(PEERS)), headers={'Content-Encoding': 'gzip'}))
        r = self.peers(self.torrent(t.url()))
        self.assertPeers(r, PEER_LINES)
        self.assertIn('gzip', t.announces()[0]['headers'].get('Accept-Encoding', ''))


class HTTPRequestTest(ScriptedTest):
    def test_announce_parameters_and_stopped(self):
        t = self.http(Reply(ok_body(PEERS)))
        path = self.torrent(t.url('/announce?passkey=s3cr%20t&x=1'), size=123457)
        r = self.peers(path, '--port', '51000')
        self.assertPeers(r, PEER_LINES)
        reqs = t.announces()
        self.assertEqual(len(reqs), 2, reqs)
        started, stopped = reqs
        for q in (started, stopped):
            p = q['params']
            self.assertEqual(q['path'], '/announce')
            self.assertEqual(p['passkey'], b's3cr t', 'the query string of the URL is kept')
            self.assertEqual(p['x'], b'1')
            self.assertEqual(p['info_hash'], self.ih)
            self.assertEqual(len(p['peer_id']), 20)
            self.assertEqual(p['port'], b'51000')
            self.assertEqual(p['left'], b'123457')
            self.assertEqual(p['uploaded'], b'0')
            self.assertEqual(p['downloaded'], b'0')
            self.assertEqual(p['compact'], b'1')
            self.assertIn('key', p)
        self.assertEqual(started['params']['event'], b'started')
        self.assertEqual(stopped['params']['event'], b'stopped')
        self.assertEqual(started['params']['peer_id'], stopped['params']['peer_id'])
        self.assertEqual(started['params']['key'], stopped['params']['key'])
        self.assertGreater(int(started['params']['numwant']), 0)
        self.assertLessEqual(started['time'], stopped['time'])

    def test_grace_after_the_first_peers(self):
        """Once a tracker gave peers, the others get about half a second more: a reply 0.2 s
        later is merged, one 4 s later is cut off (and not waited for)."""
        fast = self.http(Reply(ok_body(PEERS[:1])))
        late = self.http(Reply(ok_body(PEERS[1:2]), delay=0.2))
        slow = self.http(Reply(ok_body([('10.77.77.77', 77)]), delay=4))
        path = self.torrent(fast.url(), announce_list=[[fast.url(), late.url(), slow.url()]])
        r = self.peers(path, timeout=10)
        self.assertPeers(r, PEER_LINES[:2])
        self.trackerError(r, slow.url(), 'no reply yet when the others had answered')
        self.assertNotIn(late.url(), r.err, r)
        self.assertLess(r.elapsed, 4, r)
        self.assertGreaterEqual(r.elapsed, 0.4, r)

    def test_empty_answer_does_not_start_the_grace(self):
        """An answer without peers does not cut the others short."""
        empty = self.http(Reply(ok_body([])))
        later = self.http(Reply(ok_body(PEERS), delay=1.5))
        path = self.torrent(empty.url(), announce_list=[[empty.url()], [later.url()]])
        r = self.peers(path, timeout=10)
        self.assertPeers(r, PEER_LINES)
        self.assertEqual(r.stderr, b'', r)

    def test_sigint_while_waiting(self):
        t = self.http(Reply(stall=True))
        path = self.torrent(t.url())
        with tempfile.TemporaryFile() as err:
            p = subprocess.Popen([btcommon.TORRENT, 'peers', '--timeout', '20', path],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            try:
                self.assertTrue(T.wait_until(lambda: t.announces(), 10), 'no announce seen')
                sent = time.monotonic()
                os.kill(p.pid, signal.SIGINT)
                rc = p.wait(5)
                took = time.monotonic() - sent
            finally:
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(5)
            err.seek(0)
            text = err.read().decode('utf-8', 'replace')
        self.assertEqual(rc, 1, text)
        self.assertIn(ERR + 'interrupted', text)
        self.assertLess(took, 2, text)

    def test_many_trackers_asked_concurrently(self):
        """12 HTTP and 8 UDP trackers, each answering after 1 s with its own peer: all peers are
        listed well within a timeout that asking them one after another would overrun."""
        urls, expect = [], []
        for i in range(12):
            peer = ('10.20.0.%d' % (i + 1), 1000 + i)
            urls.append(self.http(Reply(ok_body([peer]), delay=1)).url())
            expect.append('%s:%d' % peer)

        def slow(kind, pkt, fake):
            if kind == 'announce' and fake.count('announce') == 1:
                time.sleep(1)
            return None
        for i in range(8):
            peer = ('10.30.0.%d' % (i + 1), 2000 + i)
            urls.append(self.udp(slow, peers=[peer]).url())
            expect.append('%s:%d' % peer)
        path = self.torrent(urls[0], announce_list=[urls[i::3] for i in range(3)])
        r = self.peers(path, timeout=10)
        self.assertPeers(r, expect)
        self.assertEqual(r.stderr, b'', r)
        self.assertLess(r.elapsed, 10, r)

    def test_same_url_in_two_tiers_asked_once(self):
        t = self.http(Reply(ok_body(PEERS)))
        path = self.torrent(t.url(), announce_list=[[t.url()], [t.url()]])
        r = self.peers(path, '--json')
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual([x['url'] for x in json.loads(r.stdout)['trackers']], [t.url()])
        # --json then scrapes it once too (BEP 48), which is no announce.
        self.assertEqual([q['params'].get('event') for q in t.announces()],
                         [b'started', b'stopped', None])
        self.assertEqual(t.announces()[2]['path'], '/scrape')

    def test_stopped_only_to_trackers_that_answered(self):
        good = self.http(Reply(ok_body(PEERS)))
        refusing = self.http(Reply(bencode({'failure reason': 'no'})))
        missing = self.http(Reply(b'gone', status=404))
        empty = self.http(Reply(ok_body([])))
        path = self.torrent(good.url(), announce_list=[[refusing.url(), missing.url()],
                                                       [good.url(), empty.url()]])
        r = self.peers(path)
        self.assertPeers(r, PEER_LINES)
        self.trackerError(r, refusing.url(), 'failure reason: no')
        self.trackerError(r, missing.url(), 'HTTP status 404')
        ev = lambda t: [q['params'].get('event') for q in t.announces()]  # noqa: E731
        self.assertEqual(ev(good), [b'started', b'stopped'])
        self.assertEqual(ev(empty), [b'started', b'stopped'])
        self.assertEqual(ev(refusing), [b'started'])
        self.assertEqual(ev(missing), [b'started'])

    def test_every_tier_asked_at_once(self):
        """Trackers of later tiers are asked without waiting for the first tier's answer."""
        slow = self.http(Reply(stall=True))
        fast = self.http(Reply(ok_body(PEERS)))
        path = self.torrent(slow.url(), announce_list=[[slow.url()], [fast.url()]])
        r = self.peers(path, timeout=10)
        self.assertPeers(r, PEER_LINES)
        self.assertLess(r.elapsed, 10, r)
        self.trackerError(r, slow.url(), 'no reply')
        self.assertEqual(len(slow.announces()), 1)


class HTTPTransportTest(ScriptedTest):
    def test_redirect_to_a_good_tracker(self):
        good = self.http(Reply(ok_body(PEERS)))

        def redirect(req):
            q = '&'.join('%s=%s' % (k, ''.join('%%%02X' % c for c in v))
                         for k, v in req['params'].items())
            return Reply(b'moved', status=302, headers={'Location': good.url() + '?' + q})
        mover = self.http(redirect)
        r = self.peers(self.torrent(mover.url()))
        self.assertPeers(r, PEER_LINES)
        self.assertEqual(r.stderr, b'', r)
        self.assertEqual(good.announces()[0]['params']['info_hash'], self.ih)

    def test_redirect_to_file_scheme_refused(self):
        t, r = self.one_tracker_fails(Reply(b'', status=302,
                                            headers={'Location': 'file:///etc/passwd'}))
        self.assertNotIn(b'root:', r.stdout + r.stderr)

    def test_redirect_to_ftp_refused(self):
        lsn = socket.socket()
        lsn.bind((T.LOOPBACK, 0))
        lsn.listen(4)
        self.addCleanup(lsn.close)
        target = 'ftp://127.0.0.1:%d/announce' % lsn.getsockname()[1]
        self.one_tracker_fails(Reply(b'', status=302, headers={'Location': target}))
        readable, _, _ = select.select([lsn], [], [], 0.2)
        self.assertEqual(readable, [], 'the client connected to the ftp:// target')

    def test_redirect_loop_bounded(self):
        port = {}
        t = self.http(lambda req: Reply(b'', status=302, headers={
            'Location': 'http://127.0.0.1:%d/again?%d' % (port['n'], len(req['path']))}))
        port['n'] = t.port
        self.one_tracker_fails(None, 'redirect', tracker=t)
        self.assertLessEqual(len(t.announces()), 10, 'redirects are capped')

    def test_reply_never_comes(self):
        t = self.http(Reply(stall=True))
        r = self.peers(self.torrent(t.url()), timeout=2)
        self.assertNoPeers(r)
        self.trackerError(r, t.url(), 'no reply within 2 s')
        self.assertGreaterEqual(r.elapsed, 1.9, r)
        self.assertLess(r.elapsed, 4, r)

    def test_oversized_body(self):
        pad = 5 << 20
        body = b'd8:intervali1800e7:padding%d:' % pad + b'x' * pad + b'5:peers6:' + \
            T.compact4('10.0.0.1', 1) + b'e'
        self.one_tracker_fails(Reply(body), 'larger')

    def test_gzip_bomb(self):
        """16 MiB of zeros gzip-compressed to ~16 KiB: refused once the decoded bytes pass the
        cap, and the peak RSS stays well below what holding the decoded body would take."""
        zeros = 16 << 20
        bomb = T.gzip_bytes(b'd5:peers%d:' % zeros + bytes(zeros) + b'e')
        self.assertLess(len(bomb), 100 << 10)
        base = self.http(Reply(b'x', status=404))
        baseline = self.peers(self.torrent(base.url()), measure_rss=True)
        self.assertEqual(baseline.returncode, 1, baseline)
        t = self.http(Reply(bomb, headers={'Content-Encoding': 'gzip'}))
        r = self.peers(self.torrent(t.url()), measure_rss=True)
        self.assertNoPeers(r)
        self.trackerError(r, t.url(), 'larger')
        self.assertLess(r.maxrss_kib - baseline.maxrss_kib, 12 << 10,
                        'peak RSS %d KiB vs %d KiB without the bomb' % (
                            r.maxrss_kib, baseline.maxrss_kib))

    def test_https_to_a_plain_http_server(self):
        t = self.http(Reply(ok_body(PEERS)))
        url = 'https://127.0.0.1:%d/announce' % t.port
        r = self.peers(self.torrent(url))
        self.assertNoPeers(r)
        self.trackerError(r, url)

    def test_connection_refused(self):
        url = 'http://127.0.0.1:%d/announce' % T.closed_port()
        r = self.peers(self.torrent(url))
        self.assertNoPeers(r)
        self.trackerError(r, url)
        self.assertLess(r.elapsed, 5, r)

    def test_unusable_urls_reported_others_used(self):
        good = self.http(Reply(ok_body(PEERS)))
        bad = ['wss://127.0.0.1:1/announce', 'udp://127.0.0.1/announce', 'nonsense']
        path = self.torrent(good.url(), announce_list=[bad, [good.url()]])
        r = self.peers(path)
        self.assertPeers(r, PEER_LINES)
        for url in bad:
            self.trackerError(r, url)


class UDPTest(ScriptedTest):
    def test_udp_announce_packet_and_connection_id_reused_for_stopped(self):
        u = self.udp(peers=PEERS)
        r = self.peers(self.torrent(u.url(), size=99999), '--port', '40001')
        self.assertPeers(r, PEER_LINES)
        self.assertEqual(r.stderr, b'', r)
        self.assertEqual(u.count('connect'), 1, u.received)
        anns = [u.announce_fields(p) for p in u.packets('announce')]
        self.assertEqual([a['event'] for a in anns], [2, 3], 'started, then stopped')
        for a in anns:
            self.assertEqual(a['connection_id'], u.issued_ids[0])
            self.assertEqual(a['info_hash'], self.ih)
            self.assertEqual(a['port'], 40001)
            self.assertEqual(a['left'], 99999)
        self.assertGreater(anns[0]['numwant'], 0)
        self.assertEqual(anns[0]['peer_id'], anns[1]['peer_id'])

    def test_udp_json_fields(self):
        u = self.udp(peers=PEERS, interval=1234, seeders=5, leechers=6)
        j = self.peers(self.torrent(u.url()), '--json')
        self.assertEqual(j.returncode, 0, j)
        t = json.loads(j.stdout)['trackers'][0]
        self.assertEqual((t['interval'], t['seeders'], t['leechers'], t['error']),
                         (1234, 5, 6, None), j)
        self.assertEqual(sorted(t['peers']), sorted(PEER_LINES))

    def test_udp_wrong_transaction_id_then_right(self):
        def script(kind, pkt, fake):
            tid = fake.tid(pkt)
            if kind == 'connect':
                return [struct.pack('>IIQ', 0, tid ^ 1, STALE_ID), fake.connect_reply(pkt)]
            if kind == 'announce':
                return [fake.announce_reply(pkt, peers=[('10.66.66.66', 666)], tid=tid + 1),
                        fake.announce_reply(pkt)]
            return []
        u = self.udp(script, peers=PEERS)
        r = self.peers(self.torrent(u.url()))
        self.assertPeers(r, PEER_LINES)
        self.assertEqual(u.count('connect'), 1, 'no retransmission needed')
        for a in map(u.announce_fields, u.packets('announce')):
            self.assertEqual(a['connection_id'], u.issued_ids[0], 'the stale reply was taken')
        self.assertLess(r.elapsed, 5, r)

    def test_udp_short_and_wrong_action_datagrams_ignored(self):
        def script(kind, pkt, fake):
            tid = struct.pack('>I', fake.tid(pkt))
            if kind == 'connect':
                return [b'', b'\x00', struct.pack('>I', 0) + tid,  # 8 bytes: no connection id
                        (struct.pack('>I', 0) + tid + b'\x01\x02\x03'),  # 11 bytes
                        struct.pack('>I', 1) + tid + bytes(12),  # an announce reply: wrong action
                        fake.connect_reply(pkt)]
            if kind == 'announce':
                return [b'\x00\x00\x00\x01' + tid, struct.pack('>I', 1) + tid + bytes(8),  # < 20
                        struct.pack('>I', 0) + tid + bytes(8),  # connect reply: wrong action
                        fake.announce_reply(pkt)]
            return []
        u = self.udp(script, peers=PEERS)
        r = self.peers(self.torrent(u.url()))
        self.assertPeers(r, PEER_LINES)
        self.assertEqual(r.stderr, b'', r)
        self.assertEqual(u.count('connect'), 1)

    def test_udp_reply_from_another_address_ignored(self):
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(('127.0.0.2', 0))
        self.addCleanup(other.close)

        def script(kind, pkt, fake):
            if kind == 'announce':
                # Same transaction id, but from another address: must not be taken.
                other.sendto(fake.announce_reply(pkt, peers=[('10.66.66.66', 666)]),
                             fake.last_addr)
                return [fake.announce_reply(pkt)]
            return None
        u = self.udp(script, peers=PEERS)
        r = self.peers(self.torrent(u.url()))
        self.assertPeers(r, PEER_LINES)

    def test_udp_odd_length_peer_list(self):
        def script(kind, pkt, fake):
            if kind == 'announce':
                return [fake.announce_reply(pkt) + b'\x0a\x00\x00']
            return None
        u = self.udp(script, peers=PEERS)
        self.assertPeers(self.peers(self.torrent(u.url())), PEER_LINES)

    def test_udp_error_action_on_announce(self):
        msg = b'info_hash not in whitelist'

        def script(kind, pkt, fake):
            if kind == 'announce':
                return [fake.error_reply(pkt, msg)]
            return None
        u = self.udp(script)
        r = self.peers(self.torrent(u.url()))
        self.assertNoPeers(r)
        self.trackerError(r, u.url(), msg.decode())
        self.assertLess(r.elapsed, 5, r)
        self.assertEqual(u.count('announce'), 1, 'no stopped to a tracker that refused')

    def test_udp_error_action_on_connect(self):
        u = self.udp(lambda kind, pkt, fake: [fake.error_reply(pkt, b'go away')])
        r = self.peers(self.torrent(u.url()))
        self.assertNoPeers(r)
        self.trackerError(r, u.url(), 'go away')

    def test_udp_silence_retransmits_then_gives_up(self):
        """BEP 15: first retransmission after 15 s; with --timeout 17 exactly one."""
        u = self.udp(lambda kind, pkt, fake: [])
        r = self.peers(self.torrent(u.url()), timeout=17)
        self.assertNoPeers(r)
        self.trackerError(r, u.url(), 'no reply within 17 s')
        self.assertGreaterEqual(r.elapsed, 16.8, r)
        self.assertLess(r.elapsed, 19, r)
        with u.lock:
            times = [t for k, _, t in u.received if k == 'connect']
        self.assertEqual(len(times), 2, u.received)
        self.assertEqual(len(u.received), 2, 'only connects: %r' % u.received)
        self.assertGreaterEqual(times[1] - times[0], 14.5)
        self.assertLess(times[1] - times[0], 16)


class UDPDuplicateURLTest(ScriptedTest):
    def test_same_tracker_under_two_urls(self):
        """Two tiers name the same UDP tracker with different URLs: both are asked, peers merged,
        and each stopped announce reuses a connection id (no connect in the stopped round)."""
        u = self.udp(peers=PEERS)
        a, b = u.url('/a'), 'udp://127.0.0.1:%d' % u.port
        r = self.peers(self.torrent(a, announce_list=[[a], [b]]))
        self.assertPeers(r, PEER_LINES)
        anns = [u.announce_fields(p) for p in u.packets('announce')]
        self.assertEqual(sorted(a['event'] for a in anns), [2, 2, 3, 3], anns)
        self.assertLessEqual(u.count('connect'), 2)
        for a in anns:
            self.assertIn(a['connection_id'], u.issued_ids)


if __name__ == '__main__':
    btcommon.main()
