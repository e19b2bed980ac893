"""`torrent download --seed` downloading from and uploading to a libtorrent peer at the same
time. The torrent's pieces are split between the two: libtorrent starts with some of them
(a partial seed: the data of those pieces on disk, zeros elsewhere, the pieces marked had),
our client with the others (a resumed download: a .part holding only its pieces' data). Each
can only complete from the other. Both must end complete and byte-identical; our client must
report bytes received and (in its seeding lines) bytes uploaded, and must have uploaded while
it was still downloading. And a relay: our client between a libtorrent seed and an empty
libtorrent peer that do not know each other passes pieces on (HAVE) as they complete.

Run as: /usr/bin/python3 upload_both_ways.py <path to torrent binary>
"""

import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402
from upload_common import lt_add, lt_session, stop_on_sigterm  # noqa: E402

IPS = swarm.IpPool('127.0.6.')
TIMEOUT = 60


def write_partial(meta, content, have, root):
    """Writes the torrent's files under root (the file itself for a single-file torrent)
    holding content's bytes for the pieces in `have` and zeros elsewhere, every file at its
    full size."""
    masked = bytearray(len(content))
    for i in have:
        a = i * meta.piece_length
        masked[a:a + meta.piece_size(i)] = content[a:a + meta.piece_size(i)]
    offset = 0
    for rel, size in meta.files:
        path = root if not meta.multi else os.path.join(root, *rel.split('/'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(masked[offset:offset + size])
        offset += size


def rate_limit_loopback(session):
    """libtorrent exempts local peers from rate limits: put every address in the global peer
    class so that the torrent's upload limit applies on loopback too."""
    import libtorrent as lt
    f = lt.ip_filter()
    f.add_rule('0.0.0.0', '255.255.255.255', 1 << lt.session.global_peer_class_id)
    session.set_peer_class_filter(f)


class BothWays(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.w = tempfile.mkdtemp(prefix='upload-both-ways-')
        self.addCleanup(shutil.rmtree, self.w, True)

    def run_both_ways(self, meta, src, lt_has, lt_upload_limit=0):
        """libtorrent has pieces lt_has, our client the rest. Returns (result of our client,
        seconds from our start until libtorrent was complete, our progress lines then)."""
        content = meta.content(src)
        ours = [i for i in range(meta.num_pieces) if i not in lt_has]
        self.assertTrue(lt_has and ours)
        lt_dir = os.path.join(self.w, 'lt')
        write_partial(meta, content, lt_has, os.path.join(lt_dir, meta.name))
        out_dir = os.path.join(self.w, 'ours')
        os.makedirs(out_dir)
        final = os.path.join(out_dir, meta.name) if meta.multi else os.path.join(out_dir, 'out')
        write_partial(meta, content, ours, final + '.part')

        lt_ip, our_ip = IPS.take(), IPS.take()
        session, lt_port = lt_session(lt_ip, encryption=False)
        if lt_upload_limit:
            rate_limit_loopback(session)
        h = lt_add(session, meta, lt_dir, have=set(lt_has))
        if lt_upload_limit:
            h.set_upload_limit(lt_upload_limit)
        st = h.status()
        self.assertFalse(st.is_seeding)

        client = swarm.Client('download', '--seed', '--no-tracker', '--peer',
                              '%s:%d' % (lt_ip, lt_port), '--listen', our_ip,
                              '-p', swarm.free_port(our_ip), '-o',
                              out_dir if meta.multi else final, '--progress=json', '-v',
                              '--seed-time', 60, meta.path)
        try:
            start = time.monotonic()
            lt_done_at = None
            progress_then = None
            end = start + TIMEOUT
            while time.monotonic() < end:
                if h.status().is_seeding and lt_done_at is None:
                    lt_done_at = time.monotonic() - start
                    progress_then = client.progress()
                if lt_done_at is not None and any(
                        o.get('seeding') and o['uploaded'] >= len(content) - sum(
                            meta.piece_size(i) for i in lt_has) for o in client.progress()):
                    break
                if client.proc.poll() is not None:
                    break
                session.wait_for_alert(50)
                session.pop_alerts()
            self.assertIsNotNone(lt_done_at, 'libtorrent not complete after %s s: %s; ours: %s'
                                 % (TIMEOUT, h.status().progress,
                                    b''.join(client.err_lines)[-3000:]))
            self.assertIsNone(client.proc.poll(), 'our client exited while seeding')
            os.kill(client.proc.pid, signal.SIGINT)
            r = client.wait(20)
        finally:
            client.close()
        swarm.check_sanitizers(r.stderr)

        # both complete and byte-identical
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, final), r)
        self.assertFalse(os.path.exists(final + '.part'), r)
        self.assertTrue(meta.content(final) == content, 'our output differs from the source')
        h.flush_cache()
        self.assertTrue(meta.content(os.path.join(lt_dir, meta.name)) == content,
                        "libtorrent's copy differs from the source")

        # what our client says it did
        lt_bytes = sum(meta.piece_size(i) for i in lt_has)
        our_bytes = len(content) - lt_bytes
        s = r.summary()
        self.assertIsNotNone(s, r)
        self.assertGreaterEqual(s['received'], lt_bytes, s)
        self.assertLess(s['received'], len(content), s)  # it did not fetch what it had
        self.assertEqual(s['pieces_failed'], 0, s)
        self.assertEqual([p['address'] for p in s['peers'] if p['bytes']],
                         ['%s:%d' % (lt_ip, lt_port)], s)
        uploaded = max(o['uploaded'] for o in r.json_lines() if o.get('seeding'))
        self.assertGreaterEqual(uploaded, our_bytes, r)
        self.assertLess(uploaded, 2 * len(content), r)
        del session
        return r, lt_done_at, progress_then

    def test_single_file_halves_while_downloading(self):
        """libtorrent has the first half, we the second; libtorrent's upload is limited so that
        our download takes seconds: libtorrent must be complete (from our uploads) while our
        client is still downloading."""
        src = swarm.make_single(os.path.join(self.w, 'src'), 'both.bin', 2 * MiB + 12345, 41)
        meta = swarm.make_torrent(src, os.path.join(self.w, 'both.torrent'), 64 * KiB)
        half = meta.num_pieces // 2
        r, lt_done_at, progress = self.run_both_ways(meta, src, set(range(half)),
                                                     lt_upload_limit=400 * KiB)
        done = [o for o in r.json_lines() if 'done' in o and o['done'] == o['total']]
        # our download took at least ~2.5 s (1 MiB at 400 KiB/s); libtorrent finished first
        self.assertTrue(all(o['done'] < o['total'] for o in progress if 'done' in o), progress)
        if done:
            self.assertLess(lt_done_at, done[0]['elapsed'], r)

    def test_multi_file_interleaved_pieces(self):
        """A multi-file torrent (nested directories, an empty file, files across piece
        boundaries); libtorrent has the even pieces, we the odd ones."""
        src = swarm.make_multi(os.path.join(self.w, 'src'), 'tree', [
            ('a/one.bin', 500001), ('a/b/two.bin', 7), ('empty.txt', 0), ('c.bin', 300000),
            ('d/e/f.bin', 250013)], 42)
        meta = swarm.make_torrent(src, os.path.join(self.w, 'tree.torrent'), 32 * KiB)
        self.run_both_ways(meta, src, set(range(0, meta.num_pieces, 2)))


class Relay(unittest.TestCase):
    """Our client between two libtorrent peers that do not know each other: A has everything
    (its upload limited, so that our download takes seconds), B has nothing. B can only get
    data from us, and only learns what we have from our HAVE messages as our pieces complete
    (we have nothing at first, so no BITFIELD). B must complete, byte-identical, while we are
    still downloading from A."""

    def test_pieces_relayed_as_they_complete(self):
        w = tempfile.mkdtemp(prefix='upload-relay-')
        self.addCleanup(shutil.rmtree, w, True)
        src = swarm.make_single(os.path.join(w, 'a'), 'relay.bin', 2 * MiB + 777, 43)
        meta = swarm.make_torrent(src, os.path.join(w, 'relay.torrent'), 64 * KiB)
        a_ip, b_ip, our_ip = IPS.take(), IPS.take(), IPS.take()
        sa, a_port = lt_session(a_ip, encryption=False)
        rate_limit_loopback(sa)
        ha = lt_add(sa, meta, os.path.dirname(src), have=set(range(meta.num_pieces)))
        ha.set_upload_limit(600 * KiB)
        sb, b_port = lt_session(b_ip, encryption=False)
        b_dir = os.path.join(w, 'b')
        hb = lt_add(sb, meta, b_dir)
        # Our PEX would introduce them (B, the newcomer, hears of A): here they must not meet.
        import libtorrent as lt
        for h in (ha, hb):
            h.set_flags(lt.torrent_flags.disable_pex)
        final = os.path.join(w, 'ours.bin')
        client = swarm.Client('download', '--seed', '--no-tracker',
                              '--peer', '%s:%d' % (a_ip, a_port),
                              '--peer', '%s:%d' % (b_ip, b_port), '--listen', our_ip,
                              '-p', swarm.free_port(our_ip), '-o', final, '--progress=json',
                              '-v', '--seed-time', 60, meta.path)
        try:
            start = time.monotonic()
            b_done_at = None
            b_during = 0.0  # B's progress at the last sample while we were still downloading
            while time.monotonic() < start + TIMEOUT and client.proc.poll() is None:
                for s in (sa, sb):
                    s.wait_for_alert(20)
                    s.pop_alerts()
                ours = [o for o in client.progress() if 'done' in o or o.get('seeding')]
                still_downloading = bool(ours) and 'done' in ours[-1] and \
                    ours[-1]['done'] < ours[-1]['total']
                st = hb.status()
                if still_downloading:
                    b_during = st.progress
                if st.is_seeding:
                    b_done_at = time.monotonic() - start
                    break
            self.assertIsNotNone(b_done_at, 'B not complete (progress %.3f); ours: %s' % (
                hb.status().progress, b''.join(client.err_lines)[-3000:].decode('utf-8',
                                                                                 'replace')))
            swarm.wait_until(lambda: any(o.get('seeding') and o['uploaded'] >= meta.total
                                         for o in client.progress()) or
                             client.proc.poll() is not None, 10, what='uploaded >= size')
            self.assertIsNone(client.proc.poll(), 'our client exited while seeding')
            os.kill(client.proc.pid, signal.SIGINT)
            r = client.wait(20)
        finally:
            client.close()
        swarm.check_sanitizers(r.stderr)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.out, 'Downloaded %s to %s.\n' % (meta.path, final), r)
        content = meta.content(src)
        self.assertTrue(meta.content(final) == content, 'our output differs from the source')
        hb.flush_cache()
        self.assertTrue(meta.content(os.path.join(b_dir, meta.name)) == content,
                        "B's copy differs from the source")
        s = r.summary()
        self.assertEqual([p['address'] for p in s['peers'] if p['bytes']],
                         ['%s:%d' % (a_ip, a_port)], s)  # everything we got came from A
        uploaded = max(o['uploaded'] for o in r.json_lines() if o.get('seeding'))
        self.assertGreaterEqual(uploaded, meta.total, r)
        # Our download takes ~3.5 s (2 MiB from A at 600 KiB/s): B had a good part of the data
        # while our progress lines still showed it incomplete.
        self.assertGreater(b_during, 0.25, 'B had only %.2f of the torrent while we were still '
                           'downloading' % b_during)
        del sa, sb


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
