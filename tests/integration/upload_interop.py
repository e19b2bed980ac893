"""`torrent seed` as the uploader to real clients on loopback: libtorrent (python3-libtorrent),
aria2c and Transmission (transmission-cli) each download a single-file and a multi-file
torrent (nested directories, an empty file, short last pieces) from it, directly and through a
real opentracker; the result must be byte-identical to the source (Transmission 3.00 never
creates zero-length files: only those may be missing), the seed must count the bytes it
uploaded, and it must exit 0 with a summary on Ctrl-C. Also the seed's own checks: data that
does not match is refused naming the pieces, --seed-time and --seed-ratio end it.

How each client meets our seed (see ../shared/REAL-PEERS.md):
- libtorrent dials the seed's --listen address (connect_peer), the seed dials libtorrent
  (--peer), and libtorrent finds the seed through the tracker;
- aria2c cannot be given a peer: the seed dials it (--peer), or aria2c finds the seed through
  the tracker;
- Transmission never dials 127.x peers: the seed dials it, either given with --peer or learnt
  from the tracker (Transmission announces first, then the seed).

The seed's tracker announces leave from 127.0.0.1 whatever --listen says (the kernel's source
address for loopback), and opentracker records that address: seeds that announce listen on
127.0.0.1. Every other process has its own 127.0.5.x. Every payload has its own info hash, so
each client can only have got its data from our seed. The downloads of one client run at the
same time (threads; Transmission alone waits ~10 s before its first byte).

Run as: /usr/bin/python3 upload_interop.py <path to torrent binary>
"""

import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB  # noqa: E402
from upload_common import (Aria2Downloader, Seed, Tracker,  # noqa: E402
                           TransmissionDownloader, add_announce, lt_add, lt_session,
                           lt_wait_seeding, stop_on_sigterm, wait_listening)

IPS = swarm.IpPool('127.0.5.')
W = None
TRACKER = None
TIMEOUT = 90  # per download; Transmission waits for its timers

SINGLE = 1000003  # 31 pieces of 32 KiB, the last 16387 bytes
MULTI = [('a/one.bin', 300001), ('a/b/two.bin', 3), ('three.bin', 64 * KiB),
         ('c/d/four.bin', 400009), ('empty.txt', 0), ('z.bin', 77777)]
# label -> (meta, data path): every download has a payload of its own
PAYLOADS = {}
LABELS = [client + '-' + how + '-' + kind
          for client, hows in (('lt', ('in', 'out', 'trk')), ('aria2', ('out', 'trk')),
                               ('tr', ('out', 'trk')))
          for how in hows for kind in ('single', 'multi')]
_lock = threading.Lock()  # the cases run in threads


def take_ip():
    with _lock:
        return IPS.take()


def setUpModule():
    """Every payload and torrent first, then opentracker with all the tracked ones
    whitelisted, then its URL written into those torrents (their info hashes unchanged)."""
    global W, TRACKER
    W = tempfile.mkdtemp(prefix='upload-interop-')
    try:
        for n, label in enumerate(LABELS):
            PAYLOADS[label] = make_payload(label, n + 1)
        tracked = [label for label in LABELS if '-trk-' in label]
        TRACKER = Tracker([PAYLOADS[label][0].info_hash_hex for label in tracked], W)
        for label in tracked:
            meta, data = PAYLOADS[label]
            PAYLOADS[label] = (add_announce(meta, TRACKER.url), data)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if TRACKER:
        TRACKER.stop()
    if W:
        shutil.rmtree(W, ignore_errors=True)


def make_payload(label, seed):
    """A payload of its own (its own random bytes, so its own info hash) under W/label/src,
    and its v1 torrent (mktorrent, no tracker). Returns (meta, data path: the file, or the
    directory named after the torrent)."""
    d = os.path.join(W, label)
    src = os.path.join(d, 'src')
    os.makedirs(src)
    if label.endswith('multi'):
        data = swarm.make_multi(src, 'tree-' + label, MULTI, seed)
        plen = 64 * KiB
    else:
        data = swarm.make_single(src, 'file-%s.bin' % label, SINGLE, seed)
        plen = 32 * KiB
    meta = swarm.make_torrent(data, os.path.join(d, label + '.torrent'), plen, tool='mktorrent')
    return meta, data


def same_content(meta, data, out, skip_empty=False):
    """None if out (file, or directory for a multi-file torrent) holds exactly the source's
    bytes, paths and sizes; else a description of the difference. skip_empty: empty files of
    the source may be missing (Transmission 3.00 never creates zero-length files)."""
    if not os.path.exists(out):
        return '%s does not exist' % out
    if meta.multi:
        got, want = swarm.tree(out), swarm.tree(data)
        if skip_empty:
            want = {k: v for k, v in want.items() if v[:2] != ('file', 0) or k in got}
        if got != want:
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want)
                    if got.get(k) != want.get(k)}
            return 'tree %s differs from the source: %r' % (out, diff)
        return None
    if swarm.sha1_file(out) != swarm.sha1_file(data):
        return '%s differs from the source (%d bytes, want %d)' % (
            out, os.path.getsize(out), meta.total)
    return None


def four_cases(prefix, one):
    """{name: callable} for the four downloads of a client: single/multi, the seed given the
    client with --peer ('dial-out') or the two meeting through the tracker."""
    cases = {}
    for how, name in (('out', 'dial-out'), ('trk', 'tracker')):
        for kind in ('single', 'multi'):
            payload = PAYLOADS['%s-%s-%s' % (prefix, how, kind)]
            cases['%s %s' % (name, kind)] = (lambda p=payload, t=(how == 'trk'): one(p, t))
    return cases


def run_parallel(cases):
    """Runs {name: callable} in threads; returns {name: None or a traceback string}."""
    errors = {}

    def run(name, fn):
        try:
            fn()
            errors[name] = None
        except BaseException:  # noqa: BLE001
            errors[name] = traceback.format_exc()

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in cases.items()]
    for t in threads:
        t.start()
    end = time.monotonic() + TIMEOUT + 60
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    for name in cases:
        errors.setdefault(name, 'did not finish in time')
    return errors


class UploadCase(unittest.TestCase):
    maxDiff = None

    def check_seed(self, seed, meta):
        """The seed counted at least the torrent's size as uploaded, is still running, and
        exits 0 with a summary on Ctrl-C."""
        up = seed.wait_uploaded(meta.total, timeout=10)
        self.assertTrue(seed.alive(), seed.stderr()[-2000:])
        self.assertGreaterEqual(up, meta.total, seed.stderr()[-2000:])
        r = seed.stop()
        self.assertEqual(r.returncode, 0, r)
        self.assertIsNotNone(r.summary(), r)
        self.assertEqual(r.summary()['verified'], meta.total, r)

    def report(self, errors):
        for name in sorted(errors):
            with self.subTest(case=name):
                if errors[name]:
                    self.fail(errors[name])


# --- libtorrent -------------------------------------------------------------------------------

class Libtorrent(UploadCase):
    """One libtorrent session (in this process) on its own address downloads six torrents at
    once: two it dials, two whose seed dials it, two found through the tracker."""

    def test_libtorrent_downloads_from_seed(self):
        lt_ip = take_ip()
        session, lt_port = lt_session(lt_ip)
        out = os.path.join(W, 'lt-out')
        os.makedirs(out)
        cases = {}  # name: (meta, data, seed, handle)
        seeds = []
        try:
            # seeds that are dialled, and seeds found through the tracker, first
            for kind in ('single', 'multi'):
                meta, data = PAYLOADS['lt-in-' + kind]
                seed = Seed(meta, data, take_ip())
                seeds.append(seed)
                cases['dial-in ' + kind] = [meta, data, seed, None]
                meta, data = PAYLOADS['lt-trk-' + kind]
                seed = Seed(meta, data, '127.0.0.1', tracker=True)
                seeds.append(seed)
                cases['tracker ' + kind] = [meta, data, seed, None]
                TRACKER.wait_seeders(meta.info_hash_hex, 1, timeout=15)
                meta, data = PAYLOADS['lt-out-' + kind]
                cases['dial-out ' + kind] = [meta, data, None, None]
            # libtorrent knows every torrent before any seed dials it
            for name, c in cases.items():
                c[3] = lt_add(session, c[0], out)
            for name, c in cases.items():
                if name.startswith('dial-in'):
                    c[3].connect_peer((c[2].ip, c[2].port))
                elif name.startswith('dial-out'):
                    c[2] = Seed(c[0], c[1], take_ip(), peers=['%s:%d' % (lt_ip, lt_port)])
                    seeds.append(c[2])
            errors = {}
            for name, (meta, data, seed, h) in sorted(cases.items()):
                try:
                    lt_wait_seeding(session, h, TIMEOUT, 'libtorrent %s' % name)
                    h.flush_cache()
                    where = os.path.join(out, meta.name)
                    diff = same_content(meta, data, where)
                    if diff:
                        raise AssertionError(diff)
                    self.check_seed(seed, meta)
                    errors[name] = None
                except BaseException:  # noqa: BLE001
                    errors[name] = traceback.format_exc() + '\nseed stderr:\n' + \
                        seed.stderr()[-3000:]
            self.report(errors)
        finally:
            for seed in seeds:
                seed.close()
            del session


# --- aria2c -----------------------------------------------------------------------------------

class Aria2(UploadCase):
    """aria2c, one process per torrent, each on its own address: the seed dials it (--peer),
    or it finds the seed through the tracker. aria2c exits 0 once it has verified it all."""

    def one(self, payload, tracked):
        meta, data = payload
        out = os.path.join(os.path.dirname(meta.path), 'out')
        os.makedirs(out)
        seed = aria = None
        try:
            if tracked:
                seed = Seed(meta, data, '127.0.0.1', tracker=True)
                TRACKER.wait_seeders(meta.info_hash_hex, 1, timeout=15)
                aria = Aria2Downloader(take_ip(), meta, out, cwd=W)
            else:
                aria = Aria2Downloader(take_ip(), meta, out, cwd=W)
                wait_listening(aria.ip, aria.port, 20, aria.proc.alive, aria.proc.read_log)
                seed = Seed(meta, data, take_ip(), peers=['%s:%d' % (aria.ip, aria.port)])
            try:
                aria.wait(TIMEOUT)
            except AssertionError as e:
                raise AssertionError('%s\nseed stderr:\n%s' % (e, seed.stderr()[-3000:]))
            diff = same_content(meta, data, os.path.join(out, meta.name))
            if diff:
                raise AssertionError(diff)
            self.check_seed(seed, meta)
        finally:
            if aria:
                aria.stop()
            if seed:
                seed.close()

    def test_aria2_downloads_from_seed(self):
        errors = run_parallel(four_cases('aria2', self.one))
        self.report(errors)


class Transmission(UploadCase):
    """transmission-cli, one process per torrent, each on its own address. It never dials
    loopback peers, so our seed dials it: given with --peer, or learnt from the tracker after
    Transmission announced. The four downloads run at once (Transmission is slow to start)."""

    def one(self, payload, tracked):
        meta, data = payload
        out = os.path.join(os.path.dirname(meta.path), 'out')
        os.makedirs(out)
        seed = tr = None
        try:
            tr = TransmissionDownloader(take_ip(), meta, out, cwd=W)
            if tracked:
                swarm.wait_until(lambda: TRACKER.scrape(meta.info_hash_hex)[1] >= 1, 20,
                                 step=0.1, what='Transmission to announce')
                seed = Seed(meta, data, '127.0.0.1', tracker=True)
            else:
                wait_listening(tr.ip, tr.port, 20, tr.proc.alive, tr.proc.read_log)
                seed = Seed(meta, data, take_ip(), peers=['%s:%d' % (tr.ip, tr.port)])
            try:
                tr.wait(TIMEOUT)
            except AssertionError as e:
                raise AssertionError('%s\nseed stderr:\n%s' % (e, seed.stderr()[-3000:]))
            tr.stop()
            diff = same_content(meta, data, os.path.join(out, meta.name), skip_empty=True)
            if diff:
                raise AssertionError(diff)
            self.check_seed(seed, meta)
        finally:
            if tr:
                tr.stop()
            if seed:
                seed.close()

    def test_transmission_downloads_from_seed(self):
        errors = run_parallel(four_cases('tr', self.one))
        self.report(errors)


# --- the seed's own checks and limits ---------------------------------------------------------

class SeedChecks(UploadCase):

    def test_refuses_data_that_does_not_match(self):
        meta, data = PAYLOADS['lt-in-single']
        bad = os.path.join(W, 'bad-copy.bin')
        shutil.copy(data, bad)
        with open(bad, 'r+b') as f:
            for piece in (3, 20):
                f.seek(piece * meta.piece_length + 100)
                b = f.read(1)
                f.seek(piece * meta.piece_length + 100)
                f.write(bytes([b[0] ^ 0xff]))
        r = swarm.run_client('seed', '--no-tracker', '--listen', take_ip(), meta.path, bad,
                             timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stdout, b'', r)
        self.assertIn(bad, r.err)
        self.assertRegex(r.err, r'\b2 of %d pieces\b' % meta.num_pieces)
        self.assertRegex(r.err, r'\(3, 20\)')

    def test_refuses_missing_data(self):
        meta, data = PAYLOADS['lt-in-multi']
        missing = os.path.join(W, 'no-such-dir')
        r = swarm.run_client('seed', '--no-tracker', '--listen', take_ip(), meta.path, missing,
                             timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(missing, r.err)

    def test_seed_time_limit(self):
        meta, data = PAYLOADS['lt-in-single']
        r = swarm.run_client('seed', '--no-tracker', '--listen', take_ip(), '--seed-time', '2',
                             '--progress=json', meta.path, data, timeout=30)
        self.assertEqual(r.returncode, 0, r)
        self.assertIsNotNone(r.summary(), r)
        self.assertTrue(1.5 < r.elapsed < 15, r)

    def test_seed_ratio_limit(self):
        """--seed-ratio 1: the seed exits 0 by itself once libtorrent has downloaded it all."""
        meta, data = PAYLOADS['lt-in-multi']
        session, _ = lt_session(take_ip(), encryption=False)
        out = tempfile.mkdtemp(prefix='ratio-', dir=W)
        seed = Seed(meta, data, take_ip(), extra=['--seed-ratio', '1'])
        try:
            h = lt_add(session, meta, out)
            h.connect_peer((seed.ip, seed.port))
            lt_wait_seeding(session, h, TIMEOUT, 'libtorrent')
            r = seed.client.wait(30)
            swarm.check_sanitizers(r.stderr)
            self.assertEqual(r.returncode, 0, r)
            self.assertIsNotNone(r.summary(), r)
            self.assertIsNone(same_content(meta, data, os.path.join(out, meta.name)))
        finally:
            seed.close()
            del session


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
