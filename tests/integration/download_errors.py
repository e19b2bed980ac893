"""Errors of `torrent download`, `download_piece` and `handshake` that users will meet: clear
messages and exit 1 (no peer reachable, all peers gone, tracker down or refusing, output path
not writable, write errors), exit 2 for bad usage.

Run as: /usr/bin/python3 download_errors.py <path to torrent binary>
"""

import http.server
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

TIMEOUT = 60
W = None
META = None  # single file, 256 KiB pieces
MULTI = None


def setUpModule():
    global W, META, MULTI
    W = tempfile.mkdtemp(prefix='download-errors-')
    src = os.path.join(W, 'src')
    META = swarm.make_torrent(swarm.make_single(src, 'err.bin', 4 * MiB + 999, 41),
                              os.path.join(W, 'err.torrent'), 256 * KiB)
    MULTI = swarm.make_torrent(swarm.make_multi(src, 'err-tree', [('a.bin', 300001),
                                                                  ('b/c.bin', 200003)], 42),
                               os.path.join(W, 'err-tree.torrent'), 64 * KiB)


def tearDownModule():
    if W:
        shutil.rmtree(W, ignore_errors=True)


def closed_peer():
    return '127.0.0.1:%d' % swarm.closed_port()


class Case(btcommon.CliTestCase):

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix='case-', dir=W)

    def assertExit1(self, r, *mentions):
        """Exit 1, nothing on stdout, no sanitizer report, the last stderr line a 'torrent:'
        message that mentions each of `mentions`. Returns that line."""
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stdout, b'', r)
        lines = r.err.splitlines()
        self.assertTrue(lines, r)
        last = lines[-1]
        self.assertTrue(last.startswith('torrent'), r)
        for m in mentions:
            self.assertIn(m, last, r)
        return last


class NoPeers(Case):

    def test_unreachable_peer_named(self):
        peer = closed_peer()
        out = os.path.join(self.d, 'out')
        r = run_client('download', '--no-tracker', '--peer', peer, '-o', out, '-q', META.path,
                       timeout=TIMEOUT)
        line = self.assertFails(r, 'torrent', code=1)  # exactly one line with --quiet
        self.assertIn(peer, line)
        self.assertFalse(os.path.exists(out))

    def test_unreachable_peers_all_named_with_progress(self):
        peers = [closed_peer(), '127.0.0.2:%d' % swarm.closed_port('127.0.0.2')]
        r = run_client('download', '--no-tracker', '--peer', peers[0], '--peer', peers[1], '-o',
                       os.path.join(self.d, 'out'), '--stall-timeout', '5', META.path,
                       timeout=TIMEOUT)
        self.assertExit1(r, *peers)

    def test_stall_while_reconnecting_does_not_claim_connected_peers(self):
        # At 2 s the client is dialling the refusing peers again; none has ever connected, so
        # the message must not say "2 peers connected" but name the peers and why they failed.
        # (The other cases here use stall timeouts that fall between two dialling rounds.)
        peers = [closed_peer(), '127.0.0.2:%d' % swarm.closed_port('127.0.0.2')]
        r = run_client('download', '--no-tracker', '--peer', peers[0], '--peer', peers[1], '-o',
                       os.path.join(self.d, 'out'), '-q', '--stall-timeout', '2', META.path,
                       timeout=TIMEOUT)
        line = self.assertFails(r, 'torrent', code=1)
        self.assertNotIn('connected', line.replace('connect:', ''))
        for p in peers:
            self.assertIn(p, line)

    def test_download_piece_unreachable_peer(self):
        peer = closed_peer()
        out = os.path.join(self.d, 'piece')
        r = run_client('download_piece', '--no-tracker', '--peer', peer, '-o', out, '-q',
                       '--stall-timeout', '5', META.path, 0, timeout=TIMEOUT)
        line = self.assertFails(r, 'torrent', code=1)
        self.assertIn(peer, line)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + '.part'))

    def test_no_tracker_and_no_peer(self):
        r = run_client('download', '--no-tracker', '-o', os.path.join(self.d, 'out'), '-q',
                       META.path, timeout=TIMEOUT)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, b'', r)
        self.assertIn(r.returncode, (1, 2), r)
        self.assertEqual(len(r.err.splitlines()), 1, r)

    def test_all_peers_gone(self):
        # A real seeder, rate-limited; it dies mid-download: the client gives up with exit 1,
        # naming the peer, and keeps its verified pieces in the temporary file.
        seeder = swarm.LibtorrentSeeder('127.0.4.11', [META], os.path.join(W, 'src'), W,
                                        upload_limit=1 * MiB)
        try:
            out = os.path.join(self.d, 'out')
            c = swarm.Client('download', '--no-tracker', '--peer', seeder.address, '-o', out,
                             '--progress=json', META.path)
            try:
                swarm.wait_until(lambda: any(o.get('done', 0) > 0 for o in c.progress()) or
                                 c.proc.poll() is not None, 20, what='a first verified piece')
                seeder.proc.kill(signal.SIGKILL)
                r = c.wait(TIMEOUT)
            finally:
                c.close()
        finally:
            seeder.stop()
        swarm.check_sanitizers(r.stderr)
        self.assertExit1(r, seeder.address)
        self.assertFalse(os.path.exists(out))
        self.assertTrue(os.path.exists(out + '.part'))


class TrackerDown(Case):

    def tracker_torrent(self, url, name):
        return swarm.make_torrent(os.path.join(W, 'src', 'err.bin'),
                                  os.path.join(self.d, name + '.torrent'), 256 * KiB,
                                  trackers=[url])

    def test_http_tracker_down(self):
        port = swarm.closed_port()
        meta = self.tracker_torrent('http://127.0.0.1:%d/announce' % port, 'http')
        r = run_client('download', '-o', os.path.join(self.d, 'out'), '--stall-timeout', '3',
                       meta.path, timeout=TIMEOUT)
        self.assertExit1(r)
        self.assertIn('127.0.0.1:%d' % port, r.err, r)  # the tracker is named
        self.assertLess(r.elapsed, 20, r)

    def test_udp_tracker_down(self):
        port = swarm.closed_port()
        meta = self.tracker_torrent('udp://127.0.0.1:%d/announce' % port, 'udp')
        r = run_client('download', '-o', os.path.join(self.d, 'out'), '--stall-timeout', '3',
                       meta.path, timeout=TIMEOUT)
        self.assertExit1(r)
        self.assertLess(r.elapsed, 20, r)
        # the user must learn that the tracker is the problem: name it
        self.assertIn('127.0.0.1:%d' % port, r.err, r)

    def test_failing_tracker_is_backed_off(self):
        # A tracker that answers every announce with a failure must not be asked again every
        # second: announces after a failure wait for the back-off (DESIGN: "backoff with
        # jitter"), also when the client runs short of peers.
        requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                body = btcommon.bencode({'failure reason': 'go away'})
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = 'http://127.0.0.1:%d/announce' % server.server_address[1]
            meta = self.tracker_torrent(url, 'failing')
            r = run_client('download', '-o', os.path.join(self.d, 'out'), '-q',
                           '--stall-timeout', '6', meta.path, timeout=TIMEOUT)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
        self.assertExit1(r)
        self.assertIn('go away', r.err)
        self.assertLessEqual(len(requests), 2, '%d announces in %.1f s: %r' % (
            len(requests), r.elapsed, r))

    def test_tracker_refuses_the_torrent(self):
        tracker = swarm.OpenTracker([], W)  # META is not on its whitelist
        try:
            meta = self.tracker_torrent(tracker.url, 'refused')
            r = run_client('download', '-o', os.path.join(self.d, 'out'), '--stall-timeout',
                           '3', meta.path, timeout=TIMEOUT)
        finally:
            tracker.stop()
        self.assertExit1(r)
        self.assertIn('not authorized', r.err, r)  # the tracker's failure reason is shown


class OutputPath(Case):

    def assertNamesPath(self, r, out):
        """Exit 1 and the message names `out` or the ancestor of it that is in the way."""
        line = self.assertExit1(r)
        named = [p for p in self.ancestors(out) if p in line]
        self.assertTrue(named, 'neither %s nor a parent of it named: %r' % (out, r))

    def ancestors(self, path):
        while path.startswith(self.d):
            yield path
            path = os.path.dirname(path)

    def regular_file(self):
        path = os.path.join(self.d, 'a-file')
        with open(path, 'w') as f:
            f.write('not a directory\n')
        return path

    def check_untouched(self, path):
        with open(path) as f:
            self.assertEqual(f.read(), 'not a directory\n')

    def test_single_under_a_regular_file(self):
        f = self.regular_file()
        out = os.path.join(f, 'x')
        r = run_client('download', '--no-tracker', '--peer', closed_peer(), '-o', out,
                       META.path, timeout=TIMEOUT)
        self.assertNamesPath(r, out)
        self.check_untouched(f)

    def test_multi_under_a_regular_file(self):
        f = self.regular_file()
        out = os.path.join(f, 'x')
        r = run_client('download', '--no-tracker', '--peer', closed_peer(), '-o', out,
                       MULTI.path, timeout=TIMEOUT)
        self.assertNamesPath(r, out)
        self.check_untouched(f)

    def test_multi_output_is_a_regular_file(self):
        f = self.regular_file()
        r = run_client('download', '--no-tracker', '--peer', closed_peer(), '-o', f,
                       MULTI.path, timeout=TIMEOUT)
        self.assertExit1(r, f)
        self.check_untouched(f)

    def test_download_piece_under_a_regular_file(self):
        f = self.regular_file()
        out = os.path.join(f, 'p')
        r = run_client('download_piece', '--no-tracker', '--peer', closed_peer(), '-o', out,
                       META.path, 0, timeout=TIMEOUT)
        self.assertNamesPath(r, out)
        self.check_untouched(f)

    def test_directory_not_writable(self):
        d = os.path.join(self.d, 'ro')
        os.mkdir(d, 0o555)
        drop = None
        if os.geteuid() == 0:
            # Root ignores directory permissions: run the client as nobody, with the paths it
            # needs made reachable for it.
            for path in (self.d, W, os.path.dirname(META.path)):
                p = path
                while p not in ('/', ''):
                    os.chmod(p, os.stat(p).st_mode | 0o055)
                    p = os.path.dirname(p)

            def drop():
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
        try:
            out = os.path.join(d, 'out')
            r = run_client('download', '--no-tracker', '--peer', closed_peer(), '-o', out,
                           META.path, timeout=TIMEOUT, preexec_fn=drop)
            self.assertExit1(r, out)
            self.assertFalse(os.path.exists(out + '.part'))
        finally:
            os.chmod(d, 0o755)

    def test_write_error_names_the_path(self):
        # A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes writes fail with EFBIG, as a
        # full disk makes them fail: exit 1 with a message naming the file.
        seeder = swarm.LibtorrentSeeder('127.0.4.12', [META], os.path.join(W, 'src'), W)
        try:
            out = os.path.join(self.d, 'out')

            def limit():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (1 * MiB, 1 * MiB))

            r = run_client('download', '--no-tracker', '--peer', seeder.address, '-o', out,
                           '-q', META.path, timeout=TIMEOUT, preexec_fn=limit)
        finally:
            seeder.stop()
        self.assertExit1(r, out)
        self.assertFalse(os.path.exists(out))


class Usage(Case):
    """Bad usage: exit 2, one line on stderr, nothing on stdout, nothing written."""

    BAD_PEERS = ('nonsense', '127.0.0.1', '127.0.0.1:', ':6881', '127.0.0.1:0',
                 '127.0.0.1:65536', '127.0.0.1:70000', '127.0.0.1:-1', '127.0.0.1:http',
                 '[::1]6881', '[::1', '127.0.0.1:1x')

    def check(self, *args, clean=True):
        with self.subTest(args=args):
            r = run_client(*args, timeout=TIMEOUT, cwd=self.d)
            self.assertFails(r, 'torrent', code=2)
            if clean:
                self.assertEqual(os.listdir(self.d), [])
            for name in os.listdir(self.d):
                os.unlink(os.path.join(self.d, name))

    def test_bad_peer_syntax(self):
        for bad in self.BAD_PEERS:
            self.check('download', '--no-tracker', '--peer', bad, '-o', 'out', META.path,
                       clean=False)
            self.check('download_piece', '--no-tracker', '--peer', bad, '-o', 'out', META.path,
                       '0', clean=False)

    def test_bad_peer_syntax_writes_nothing(self):
        # A usage error is found before anything is created: no out.part is left behind.
        for bad in ('nonsense', '127.0.0.1:0'):
            self.check('download', '--no-tracker', '--peer', bad, '-o', 'out', META.path)
            self.check('download_piece', '--no-tracker', '--peer', bad, '-o', 'out', META.path,
                       '0')

    def test_missing_or_unreadable_torrent(self):
        self.check('download')
        self.check('download', '-o', 'out')
        self.check('download', '--peer', closed_peer())
        self.check('download', '-o', 'out', os.path.join(W, 'no-such.torrent'))
        self.check('download_piece', '-o', 'out', META.path)
        self.check('download_piece', '-o', 'out', os.path.join(W, 'no-such.torrent'), '0')
        self.check('download', '-o', 'out', META.path, MULTI.path)
        bad = os.path.join(W, 'garbage.torrent')
        with open(bad, 'wb') as f:
            f.write(b'd4:infoi3ee')
        self.check('download', '--no-tracker', '--peer', closed_peer(), '-o', 'out', bad)

    def test_piece_index_out_of_range(self):
        n = META.num_pieces
        for index in (str(n), str(n + 100), '-1', 'abc', '1.5', '', '0x1', '99999999999999999999'):
            self.check('download_piece', '--no-tracker', '--peer', closed_peer(), '-o', 'out',
                       META.path, index)

    def test_download_piece_needs_output(self):
        self.check('download_piece', '--no-tracker', '--peer', closed_peer(), META.path, '0')

    def test_bad_numbers_and_options(self):
        for opt in (['--max-peers', '0'], ['--max-peers', '-3'], ['--max-peers', 'many'],
                    ['--max-peers', '2.5'], ['--stall-timeout', '-1'], ['--port', '0'],
                    ['--port', '70000'], ['--progress=bogus'], ['--bogus-option'], ['-o']):
            self.check('download', '--no-tracker', '--peer', closed_peer(), *opt, META.path)

    def test_handshake_usage(self):
        self.check('handshake')
        self.check('handshake', META.path)
        self.check('handshake', META.path, 'nonsense')
        for bad in self.BAD_PEERS:  # as for --peer
            self.check('handshake', META.path, bad)
        self.check('handshake', os.path.join(W, 'no-such.torrent'), closed_peer())


if __name__ == '__main__':
    btcommon.main()
