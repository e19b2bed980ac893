#!/usr/bin/python3
"""The magnet commands as the CodeCrafters BitTorrent course's checker drives them (issue 11):
`magnet_parse`, `magnet_handshake`, `magnet_info`, `magnet_download_piece`, `magnet_download`.

Each case runs the real binary against a scripted HTTP tracker in this process (127.0.0.1) that
checks the announce the way the course's tracker does (left a positive placeholder no larger than
the file, compact=1, a 20-byte peer id and info hash, numeric port/uploaded/downloaded) and one
scripted peer (fakepeer.MagnetConn) on its own 127.0.31.x that behaves like the course's: the
extension bit in its reserved bytes, a BITFIELD and its extended handshake (ut_metadata = a
random 1..255) right after the handshake, metadata blocks on request, then pieces. Beyond the
course's output checks, the cases judge the order of what the client sends (its first message is
the extended handshake; with magnet_info the next is the request for metadata piece 0, sent to
the peer's ut_metadata id), compare `magnet_info` with `torrent info` on a .torrent of the same
info dict, and cover the errors: malformed magnets (exit 2, one line naming the parameter), a
peer that rejects the metadata request, metadata that does not hash to the info hash.

One case (LibtorrentSanity) points python3-libtorrent at the scripted peer: it passes without
the client and shows that the fake's BEP 9/10 framing is right. Every wait has a timeout, every
run of the binary is killed by PID after its timeout; runtime ~15 s when the commands work.

Usage: magnet_course.py <path to torrent binary>       (run with /usr/bin/python3)
"""

import base64
import hashlib
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import fakepeer as fp  # noqa: E402
import trackers as T  # noqa: E402
from btcommon import bdecode, bencode  # noqa: E402

KiB = 1024
RUN_TIMEOUT = 30        # seconds for one run of the binary that should succeed
ERROR_TIMEOUT = 45      # a run that must fail on its own (metadata rejected or wrong)
PYTHON = '/usr/bin/python3'  # Debian's, with python3-libtorrent

_hosts = itertools.count(2)


def next_host():
    """A fresh 127.0.31.x for every scripted peer (other scripts use other 127.0.y.x)."""
    return '127.0.31.%d' % next(_hosts)


def magnet_uri(info_hash_hex, tracker=None, name=None, course_style=False):
    """A magnet link. course_style: the tracker encoded as the course does it (only ':' and '/'
    after the scheme escaped: 'http%3A%2F%2F127.0.0.1:PORT%2Fannounce')."""
    parts = ['xt=urn:btih:' + info_hash_hex]
    if name is not None:
        parts.append('dn=' + urllib.parse.quote(name, safe=''))
    if tracker is not None:
        if course_style:
            parts.append('tr=' + tracker.replace(':', '%3A', 1).replace('/', '%2F'))
        else:
            parts.append('tr=' + urllib.parse.quote(tracker, safe=''))
    return 'magnet:?' + '&'.join(parts)


# --- the course's tracker -------------------------------------------------------------------------

class CourseTracker:
    """A scripted HTTP tracker (trackers.FakeHTTPTracker) that answers as the course's does: a
    failure reason for a missing or bad parameter, no peers for left=0, else the peer list. Every
    problem is kept in .problems, so a test can say what was wrong with the announce.
    Unlike the course's Go server it does not read '+' in the query as a space: our client
    escapes every byte outside [A-Za-z0-9-._~] as %XX (src/tracker_proto.c)."""

    def __init__(self, size, info_hash, peers):
        self.size = size
        self.info_hash = info_hash
        self.peers = list(peers)
        self.problems = []
        self.lefts = []
        self.http = T.FakeHTTPTracker(self._answer).start()

    def url(self):
        return self.http.url('/announce')

    def stop(self):
        self.http.stop()

    def announces(self):
        return self.http.announces()

    def _fail(self, problem, reason):
        self.problems.append(problem)
        return T.Reply(bencode({'failure reason': reason}))

    def _answer(self, req):
        p = req['params']
        if req['path'] != '/announce':
            return self._fail('path %r, not /announce' % req['path'], 'not found')
        left = p.get('left')
        if left is None or not left.isdigit():
            return self._fail('left missing or not a number: %r (a magnet needs a positive '
                              'placeholder such as left=1)' % left,
                              'failed to parse parameter: left')
        self.lefts.append(int(left))
        if int(left) == 0:
            # Fine once the size is known (a 'completed' or 'stopped' announce), not before.
            if len(self.lefts) == 1:
                self.problems.append('left=0 in the first announce: the course\'s tracker '
                                     'answers with no peers (use a placeholder such as 1)')
            return T.Reply(bencode({'complete': 4, 'incomplete': 0, 'interval': 60,
                                    'min interval': 60}))
        if int(left) > self.size:
            return self._fail('left=%s is larger than the file (%d bytes)' % (left, self.size),
                              'provided invalid left value')
        for name in ('port', 'downloaded', 'uploaded'):
            if not (p.get(name) or b'x').isdigit():
                return self._fail('%s missing or not a number: %r' % (name, p.get(name)),
                                  'failed to parse parameter: ' + name)
        if p.get('compact') != b'1':
            return self._fail('compact=%r, not 1' % p.get('compact'),
                              'failed to parse parameter: compact')
        if len(p.get('peer_id') or b'') != 20:
            return self._fail('peer_id %r is not 20 bytes' % p.get('peer_id'),
                              'failed to provide valid peer_id')
        if p.get('info_hash') != self.info_hash:
            return self._fail('info_hash %r is not the raw 20-byte hash %r' % (
                p.get('info_hash'), self.info_hash), 'provided invalid infohash')
        return T.Reply(T.ok_body(self.peers, interval=60,
                                 extra={'complete': 1, 'incomplete': 0, 'min interval': 60}))


# --- cases ----------------------------------------------------------------------------------------

class MagnetCase(unittest.TestCase):
    """Per case: a temporary directory. swarm() adds a torrent fixture, a scripted peer serving
    it and a course tracker listing that peer, all stopped at the end of the case."""
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='magnet-course-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def swarm(self, size, piece_length, seed, name='magnet.gif', **peer_opts):
        self.fx = fp.Torrent(self.tmp, size, piece_length=piece_length, seed=seed, name=name)
        self.ut_metadata = peer_opts.setdefault('ut_metadata', random.randint(1, 255))
        self.peer = fp.FakePeer(self.fx, next_host(), conn_class=fp.MagnetConn,
                                **peer_opts).start()
        self.addCleanup(self.peer.stop)
        self.tracker = CourseTracker(size, self.fx.info_hash, [(self.peer.host, self.peer.port)])
        self.addCleanup(self.tracker.stop)
        self.ih = self.fx.info_hash.hex()
        self.magnet = magnet_uri(self.ih, self.tracker.url(), name, course_style=True)
        return self.fx

    def run_cmd(self, *args, timeout=RUN_TIMEOUT):
        return T.run_torrent(*args, timeout=timeout)

    def ctx(self, r):
        return '%r\ntracker problems: %r, announces: %d\npeer: %s' % (
            r, self.tracker.problems, len(self.tracker.announces()), self.peer.describe())

    def settle(self):
        self.assertTrue(self.peer.settle(), self.peer.describe())

    def conns(self):
        return self.peer.handshaken()

    # --- what the course's tracker and peer check -------------------------------------------

    def assertCourseAnnounce(self, r):
        ctx = self.ctx(r)
        self.assertEqual(self.tracker.problems, [], ctx)
        self.assertGreaterEqual(len(self.tracker.announces()), 1, 'no announce; ' + ctx)
        first = self.tracker.lefts[0]
        self.assertTrue(0 < first <= self.fx.size, 'first left=%d; %s' % (first, ctx))

    def assertCourseHandshake(self, c, r):
        """Our reserved bytes are exactly the BEP 10 bit, and our first message after the
        handshake is the extended handshake with m.ut_metadata in 1..255. Returns the id."""
        ctx = self.ctx(r)
        self.assertEqual(c.client_reserved, fp.EXT_RESERVED, ctx)
        self.assertGreaterEqual(len(c.messages), 1, 'nothing sent after the handshake; ' + ctx)
        _, mid, payload = c.messages[0]
        self.assertEqual(mid, fp.EXTENDED, 'first message id %r (%r), not the extended '
                         'handshake; %s' % (mid, payload[:40], ctx))
        self.assertGreaterEqual(len(payload), 2, ctx)
        self.assertEqual(payload[0], fp.EXT_HANDSHAKE, ctx)
        d = bdecode(payload[1:])
        self.assertIsInstance(d, dict, ctx)
        self.assertIsInstance(d.get(b'm'), dict, ctx)
        ut = d[b'm'].get(b'ut_metadata')
        self.assertIsInstance(ut, int, ctx)
        self.assertTrue(1 <= ut <= 255, 'ut_metadata %r; %s' % (ut, ctx))
        self.assertEqual(c.client_ut_metadata, ut, ctx)
        return ut

    def assertMetadataRequestNext(self, c, r):
        """The message right after our extended handshake asks for metadata piece 0, under
        the PEER's ut_metadata id."""
        ctx = self.ctx(r)
        self.assertGreaterEqual(len(c.messages), 2, 'no message after the extended '
                                'handshake; ' + ctx)
        _, mid, payload = c.messages[1]
        self.assertEqual(mid, fp.EXTENDED, 'second message id %r, not a metadata request; %s'
                         % (mid, ctx))
        self.assertEqual(payload[0], self.ut_metadata,
                         'metadata request under extended id %d, the peer gave ut_metadata=%d; '
                         '%s' % (payload[0], self.ut_metadata, ctx))
        d = bdecode(payload[1:])
        self.assertEqual(d.get(b'msg_type'), 0, ctx)
        self.assertEqual(d.get(b'piece'), 0, ctx)

    def assertNoProtocolErrors(self, r):
        for c in self.peer.conns:
            self.assertEqual(c.protocol_errors, [], self.ctx(r))
            self.assertIsNone(c.error, self.ctx(r))

    def info_block(self, tracker_url):
        """`torrent info` on a .torrent of the same info dict with `tracker_url` as announce:
        its first block (Tracker URL .. the piece hashes), as lines."""
        path = os.path.join(self.tmp, 'same-info.torrent')
        with open(path, 'wb') as f:
            f.write(bencode({'announce': tracker_url, 'info': self.fx.info}))
        r = self.run_cmd('info', path)
        self.assertEqual(r.returncode, 0, r)
        lines = r.out.splitlines()
        return lines[:5 + self.fx.piece_count]

    def expected_block(self, tracker_url):
        return (['Tracker URL: ' + tracker_url, 'Length: %d' % self.fx.size,
                 'Info Hash: ' + self.ih, 'Piece Length: %d' % self.fx.piece_length,
                 'Piece Hashes:'] + [h.hex() for h in self.fx.hashes])


class MagnetParse(MagnetCase):
    IH = hashlib.sha1(b'magnet_parse').hexdigest()

    def parse(self, uri):
        r = self.run_cmd('magnet_parse', uri)
        self.assertEqual(r.returncode, 0, r)
        return r

    def test_course_links(self):
        """The course's two links: mixed-case hex printed as is in lower case, and a link with
        only xt (the course then checks only the info hash)."""
        h = 'c77829d2a77d6516F88cd7a3de1a26abcbfab0db'
        r = self.parse('magnet:?xt=urn:btih:%s&dn=codercat.gif&tr=http%%3A%%2F%%2F'
                       'bittorrent-test-tracker.codecrafters.io%%2Fannounce' % h)
        self.assertEqual(r.out, 'Tracker URL: http://bittorrent-test-tracker.codecrafters.io/'
                         'announce\nInfo Hash: %s\n' % h.lower(), r)
        r = self.parse('magnet:?xt=urn:btih:' + h)
        self.assertIn('Info Hash: %s\n' % h.lower(), r.out, r)

    def test_upper_case_hex(self):
        r = self.parse(magnet_uri(self.IH.upper(), 'http://127.0.0.1:6969/announce', 'x'))
        self.assertEqual(r.out, 'Tracker URL: http://127.0.0.1:6969/announce\n'
                         'Info Hash: %s\n' % self.IH, r)

    def test_base32(self):
        b32 = base64.b32encode(bytes.fromhex(self.IH)).decode()
        self.assertEqual(len(b32), 32)
        r = self.parse(magnet_uri(b32, 'http://127.0.0.1:6969/announce'))
        self.assertEqual(r.out, 'Tracker URL: http://127.0.0.1:6969/announce\n'
                         'Info Hash: %s\n' % self.IH, r)

    def test_first_tracker_percent_decoded(self):
        """Parameters in any order; the first tr, fully percent-decoded (a query string with
        an escaped '&' and '=' inside it); other parameters ignored."""
        first = 'http://tracker.example:8080/announce?passkey=a%26b&x=1'
        uri = 'magnet:?tr=%s&dn=My%%20File.bin&x.pe=127.0.0.1:1&xt=urn:btih:%s&tr=%s' % (
            urllib.parse.quote(first, safe=''), self.IH, urllib.parse.quote('udp://second.example:80', safe=''))
        r = self.parse(uri)
        self.assertEqual(r.out, 'Tracker URL: %s\nInfo Hash: %s\n' % (first, self.IH), r)


class MagnetMalformed(MagnetCase):
    """Exit 2 and one stderr line 'torrent: ...' naming the bad parameter, for every command,
    before any network traffic; nothing written."""

    GOOD_HASH = hashlib.sha1(b'malformed').hexdigest()
    CASES = [
        ('no xt', 'magnet:?dn=x&tr=http%3A%2F%2F127.0.0.1%3A9%2Fannounce', 'xt'),
        ('39 hex digits', 'magnet:?xt=urn:btih:%s&tr=http%%3A%%2F%%2F127.0.0.1%%3A9%%2F'
         'announce' % GOOD_HASH[:39], 'xt'),
        ('bad percent escape', 'magnet:?xt=urn:btih:%s&tr=http%%3A%%2F%%2F127.0.0.1%%3A9%%2'
         'Fannounce%%zz' % GOOD_HASH, 'tr'),
    ]

    def argvs(self, uri):
        out = os.path.join(self.tmp, 'out.bin')
        return [('magnet_parse', uri), ('magnet_handshake', uri), ('magnet_info', uri),
                ('magnet_download_piece', '-o', out, uri, '0'),
                ('magnet_download', '-o', out, uri)]

    def test_malformed(self):
        for what, uri, param in self.CASES:
            for argv in self.argvs(uri):
                with self.subTest(what=what, command=argv[0]):
                    r = self.run_cmd(*argv, timeout=10)
                    ctx = '%s: %r' % (what, r)
                    self.assertEqual(r.returncode, 2, ctx)
                    self.assertEqual(r.stdout, b'', ctx)
                    self.assertEqual(r.err.count('\n'), 1, ctx)
                    self.assertTrue(r.err.startswith('torrent: '), ctx)
                    self.assertRegex(r.err, r'\b%s\b' % param, ctx)
                    self.assertLess(r.elapsed, 5, ctx)
                    self.assertEqual(os.listdir(self.tmp), [], ctx)


class MagnetHandshake(MagnetCase):
    def test_handshake(self):
        self.swarm(300 * KiB + 77, 128 * KiB, seed=11)
        r = self.run_cmd('magnet_handshake', self.magnet)
        self.settle()
        ctx = self.ctx(r)
        self.assertEqual(r.returncode, 0, ctx)
        self.assertEqual(r.out, 'Peer ID: %s\nPeer Metadata Extension ID: %d\n' % (
            self.peer.peer_id.hex(), self.ut_metadata), ctx)
        self.assertCourseAnnounce(r)
        conns = self.conns()
        self.assertEqual(len(conns), 1, ctx)
        self.assertCourseHandshake(conns[0], r)
        self.assertNoProtocolErrors(r)

    def test_handshake_extension_ids_vary(self):
        """The printed id is the peer's, whatever it is (1 and 255, the ends of the range)."""
        for n in (1, 255):
            with self.subTest(ut_metadata=n):
                self.swarm(40 * KiB, 16 * KiB, seed=12 + n, ut_metadata=n)
                r = self.run_cmd('magnet_handshake', self.magnet)
                self.assertEqual(r.returncode, 0, self.ctx(r))
                self.assertIn('Peer Metadata Extension ID: %d\n' % n, r.out, self.ctx(r))


class MagnetInfo(MagnetCase):
    def check_info(self, r):
        self.settle()
        ctx = self.ctx(r)
        self.assertEqual(r.returncode, 0, ctx)
        lines = r.out.splitlines()
        expected = self.expected_block(self.tracker.url())
        self.assertEqual(lines[:len(expected)], expected, ctx)
        self.assertEqual(lines[:len(expected)], self.info_block(self.tracker.url()), ctx)
        self.assertCourseAnnounce(r)
        c = self.conns()[0]
        self.assertCourseHandshake(c, r)
        self.assertMetadataRequestNext(c, r)
        self.assertNoProtocolErrors(r)

    def test_info(self):
        """3 pieces of 128 KiB, the last short; the info dict in one metadata block."""
        self.swarm(300 * KiB + 77, 128 * KiB, seed=21)
        self.assertLess(len(self.fx.info_bytes), fp.METADATA_BLOCK)
        r = self.run_cmd('magnet_info', self.magnet)
        self.check_info(r)
        self.assertEqual(len(self.conns()), 1, self.ctx(r))

    def test_info_many_blocks(self):
        """An info dict of 3 metadata blocks (1,700 pieces of 16 KiB: 34,000 bytes of hashes),
        the last block short: every block asked for and the dict assembled in order."""
        self.swarm(1700 * 16 * KiB - 999, 16 * KiB, seed=22)
        nblocks = -(-len(self.fx.info_bytes) // fp.METADATA_BLOCK)
        self.assertEqual(nblocks, 3)
        r = self.run_cmd('magnet_info', self.magnet)
        self.check_info(r)
        asked = {p for c in self.conns() for _, p in c.metadata_requests}
        self.assertEqual(asked, set(range(nblocks)), self.ctx(r))


class MagnetDownload(MagnetCase):
    def test_download_piece(self):
        """As the course: two pieces of one torrent, one run each, the last piece short."""
        fx = self.swarm(300 * KiB + 77, 128 * KiB, seed=31)
        for index in (1, 2):
            with self.subTest(piece=index):
                out = os.path.join(self.tmp, 'piece-%d' % index)
                r = self.run_cmd('magnet_download_piece', '-o', out, self.magnet, str(index))
                ctx = self.ctx(r)
                self.assertEqual(r.returncode, 0, ctx)
                self.assertEqual(r.out, 'Piece %d downloaded to %s.\n' % (index, out), ctx)
                with open(out, 'rb') as f:
                    got = f.read()
                self.assertEqual(len(got), fx.piece_size(index), ctx)
                self.assertEqual(hashlib.sha1(got).digest(), fx.hashes[index], ctx)
        self.settle()
        for c in self.conns():
            self.assertCourseHandshake(c, r)
        self.assertCourseAnnounce(r)
        self.assertNoProtocolErrors(r)

    def test_download_piece_after_many_metadata_blocks(self):
        fx = self.swarm(1700 * 16 * KiB - 999, 16 * KiB, seed=32)
        index = fx.piece_count - 1
        out = os.path.join(self.tmp, 'last-piece')
        r = self.run_cmd('magnet_download_piece', '-o', out, self.magnet, str(index))
        ctx = self.ctx(r)
        self.assertEqual(r.returncode, 0, ctx)
        self.assertEqual(r.out, 'Piece %d downloaded to %s.\n' % (index, out), ctx)
        with open(out, 'rb') as f:
            self.assertEqual(f.read(), fx.piece(index), ctx)

    def test_download(self):
        fx = self.swarm(300 * KiB + 77, 128 * KiB, seed=33)
        out = os.path.join(self.tmp, 'magnet.gif')
        r = self.run_cmd('magnet_download', '-o', out, self.magnet)
        self.settle()
        ctx = self.ctx(r)
        self.assertEqual(r.returncode, 0, ctx)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (self.magnet, out), ctx)
        with open(out, 'rb') as f:
            self.assertTrue(f.read() == fx.data, 'output differs; ' + ctx)
        self.assertCourseAnnounce(r)
        self.assertCourseHandshake(self.conns()[0], r)
        self.assertNoProtocolErrors(r)


class MagnetErrors(MagnetCase):
    def assertFailedClearly(self, r):
        ctx = self.ctx(r)
        self.assertNotEqual(r.returncode, 0, ctx)
        self.assertEqual(r.stdout, b'', 'printed although the metadata was bad; ' + ctx)
        last = r.err.splitlines()[-1] if r.err.strip() else ''
        self.assertTrue(last.startswith('torrent: '), ctx)
        self.assertRegex(last.lower(), 'metadata|info dict|info hash', ctx)
        self.assertLess(r.elapsed, ERROR_TIMEOUT, ctx)

    def test_metadata_rejected(self):
        """The only peer rejects the metadata request (msg_type 2): a clear error, in time."""
        self.swarm(300 * KiB + 77, 128 * KiB, seed=41, metadata_reply='reject')
        r = self.run_cmd('magnet_info', self.magnet, timeout=ERROR_TIMEOUT)
        self.settle()
        self.assertFailedClearly(r)
        sent = [m for c in self.conns() for m in c.metadata_sent]
        self.assertTrue(sent and all(m[2] == fp.META_REJECT for m in sent), self.ctx(r))

    def test_metadata_wrong_hash(self):
        """The only peer serves an info dict that does not hash to the magnet's info hash
        (another name, same size): refused, never printed, never downloaded."""
        fx = self.swarm(300 * KiB + 77, 128 * KiB, seed=42)
        other = dict(fx.info, name='not-' + fx.info['name'])
        self.peer.opts['metadata'] = bencode(other)
        for cmd in ('magnet_info', 'magnet_download'):
            with self.subTest(command=cmd):
                out = os.path.join(self.tmp, 'out.bin')
                # A download waits for peers as long as it takes unless told otherwise
                # (like aria2 and Transmission); `info` gives up by itself after 30 s.
                argv = (cmd, self.magnet) if cmd == 'magnet_info' else (
                    cmd, '--stall-timeout', '10', '-o', out, self.magnet)
                r = self.run_cmd(*argv, timeout=ERROR_TIMEOUT)
                self.assertFailedClearly(r)
                self.assertFalse(os.path.exists(out), self.ctx(r))
                self.assertNotIn(fx.hashes[0].hex(), r.out, self.ctx(r))
        self.settle()
        sent = [m for c in self.conns() for m in c.metadata_sent]
        self.assertTrue(any(m[2] == fp.META_DATA for m in sent),
                        'the wrong metadata was never asked for: the case proves nothing; '
                        + self.ctx(r))
        blocks = [m for c in self.conns() for m in c.messages if m[1] == fp.REQUEST]
        self.assertEqual(blocks, [], 'pieces asked for under wrong metadata; ' + self.ctx(r))


# --- sanity check of the scripted peer ------------------------------------------------------------

# A libtorrent downloader in its own process: adds the magnet without its trackers, dials the
# scripted peer, prints 'done' when seeding or 'timeout ...' after argv[5] seconds.
_LT_CHILD = r'''
import sys, time
import libtorrent as lt
ip, peer_ip, peer_port, uri, save, limit = sys.argv[1:7]
off = int(lt.enc_policy.disabled)
s = lt.session({'listen_interfaces': ip + ':0', 'outgoing_interfaces': ip,
                'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
                'enable_natpmp': False, 'enable_incoming_utp': False,
                'enable_outgoing_utp': False, 'allow_multiple_connections_per_ip': True,
                'out_enc_policy': off, 'in_enc_policy': off})
p = lt.parse_magnet_uri(uri)
p.trackers = []
p.save_path = save
h = s.add_torrent(p)
h.connect_peer((peer_ip, int(peer_port)))
end = time.monotonic() + float(limit)
while time.monotonic() < end:
    st = h.status()
    if st.is_seeding:
        print('done', flush=True)
        sys.exit(0)
    time.sleep(0.05)
print('timeout', st.state, st.progress, st.has_metadata, flush=True)
sys.exit(1)
'''


class LibtorrentSanity(MagnetCase):
    def test_libtorrent_fetches_metadata_and_data_from_the_fake(self):
        try:
            subprocess.run([PYTHON, '-c', 'import libtorrent'], check=True, timeout=20,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            self.skipTest('python3-libtorrent is not installed')
        fx = self.swarm(1700 * 16 * KiB - 999, 16 * KiB, seed=51, name='lt.bin')
        save = os.path.join(self.tmp, 'lt-save')
        os.mkdir(save)
        argv = [PYTHON, '-c', _LT_CHILD, next_host(), self.peer.host, str(self.peer.port),
                self.magnet, save, '30']
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=dict(os.environ, no_proxy='*'))
        try:
            out, _ = p.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, 9)
            out, _ = p.communicate(timeout=10)
        self.settle()
        ctx = 'libtorrent: rc=%s %r; peer: %s' % (p.returncode, out[-1500:], self.peer.describe())
        self.assertEqual(p.returncode, 0, ctx)
        with open(os.path.join(save, 'lt.bin'), 'rb') as f:
            self.assertTrue(f.read() == fx.data, 'libtorrent got other bytes; ' + ctx)
        asked = {pc for c in self.conns() for _, pc in c.metadata_requests}
        self.assertEqual(asked, {0, 1, 2}, ctx)
        self.assertNoProtocolErrors(ctx)


if __name__ == '__main__':
    btcommon.main()
