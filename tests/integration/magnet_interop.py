"""Magnet links (BEP 9) against real clients on loopback, both ways (issue 11).

Our `torrent download "<magnet>"` fetches the metadata (ut_metadata) from the peers that the
magnet's tr= trackers and x.pe= peers (and --peer) name, then downloads like a .torrent:
1. from a libtorrent seeder found through opentracker (tr=), through x.pe only, and through
   --peer only (a magnet naming no peer at all); the output byte-identical to the source, and
   --save-torrent writing a .torrent that libtorrent loads with the same info hash;
2. the same from an aria2c seeder (tr= and x.pe=);
3. our `torrent seed` serving the metadata: a libtorrent downloader opens the magnet with our
   seed as its only peer and gets the whole torrent (also the one of case 4: 70 metadata
   blocks from us); aria2c with --bt-metadata-only finds our seed through opentracker and
   saves a .torrent with our info hash;
4. a multi-file torrent whose info dict is over 1 MiB (2,561 files with long names in long
   folder names: 70 metadata blocks), from three libtorrent seeders at once;
5. a torrent whose piece hashes pass 1 MiB (60,000 pieces of 16 KiB of a sparse file of
   zeros, so nothing is hashed to make it), whose info dict we keep in a temporary file, not in
   memory: `torrent info --json` of its magnet fetches it from a libtorrent seeder and lists
   every hash, and libtorrent opens its magnet from our seed.

Every case has a control beside it (`Control*`): the same setup with a real client in place of
ours (libtorrent or aria2c opening the same magnet from the same seeders, libtorrent seeding
in place of our seed), so a failure of ours can be told from a broken harness: the controls
pass whatever our binary does.

Every payload has its own info hash, so a client can only have got it from the seeders of its
case. Every process has its own 127.0.42.x (our seeds that announce listen on 127.0.0.1, the
address their announces leave from: see upload_interop.py), and is stopped by PID.

Run as: /usr/bin/python3 magnet_interop.py <path to torrent binary>
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402
from upload_common import (Aria2Magnet, Seed, Tracker, add_announce,  # noqa: E402
                           lt_add_magnet, lt_session, lt_wait_metadata, lt_wait_seeding,
                           magnet_uri, stop_on_sigterm, torrent_file_hash)

IPS = swarm.IpPool('127.0.42.')
_lock = threading.Lock()
W = None
SRC = None
TRACKER = None
TIMEOUT = 40  # per download (each takes a few seconds when it works)
P = {}  # label -> Meta
ROOTS = {}  # label -> the payload's path (file or folder)
SEEDERS = {}  # label -> [seeder objects]

MULTI = [('a/one.bin', 300001), ('a/b/two.bin', 3), ('three.bin', 64 * KiB),
         ('c/d/four.bin', 400009), ('z.bin', 77777)]


def take_ip():
    with _lock:
        return IPS.take()


def make_payloads():
    """Single files and folders, each its own info hash; the tracked ones get the tracker's
    URL once it runs (the info hash does not change)."""
    plan = [('lt-trk', 'single', 3 * MiB + 5), ('lt-pe', 'multi', 0),
            ('lt-peer', 'single', 1 * MiB + 77), ('a2-trk', 'single', 2 * MiB + 3),
            ('a2-pe', 'multi', 0), ('ours-lt', 'single', 4 * MiB + 1),
            ('ours-a2', 'multi', 0)]
    for n, (label, kind, size) in enumerate(plan):
        name = 'mag-%s' % label
        if kind == 'single':
            ROOTS[label] = swarm.make_single(SRC, name + '.bin', size, 100 + n)
        else:
            ROOTS[label] = swarm.make_multi(SRC, name, MULTI, 100 + n)
        P[label] = swarm.make_torrent(ROOTS[label], os.path.join(W, name + '.torrent'),
                                      64 * KiB)
    ROOTS['big'], P['big'] = swarm.make_big_info(SRC, 'mag-big', 200)
    ROOTS['spill'], P['spill'] = make_spilled(SRC, 'mag-spill.bin', W)


SPILL_PIECES = 60000  # 1.2 MB of hashes: past the 1 MiB that we keep in memory
ZERO_PIECE_SHA1 = hashlib.sha1(bytes(16 * KiB)).digest()


def make_spilled(directory, name, workdir):
    """A sparse file of SPILL_PIECES pieces of 16 KiB of zeros and its v1 torrent, written
    here: every piece has the same hash, so nothing is hashed. Returns (path, Meta)."""
    path = os.path.join(directory, name)
    with open(path, 'wb') as f:
        f.truncate(SPILL_PIECES * 16 * KiB)
    info = {b'length': SPILL_PIECES * 16 * KiB, b'name': name.encode(),
            b'piece length': 16 * KiB, b'pieces': ZERO_PIECE_SHA1 * SPILL_PIECES}
    out = os.path.join(workdir, name + '.torrent')
    with open(out, 'wb') as f:
        f.write(btcommon.bencode({b'info': info}))
    return path, swarm.Meta(out)


def setUpModule():
    global W, SRC, TRACKER
    W = tempfile.mkdtemp(prefix='magnet-interop-')
    SRC = os.path.join(W, 'src')
    os.makedirs(SRC)
    try:
        make_payloads()
        tracked = ('lt-trk', 'a2-trk', 'ours-a2')
        TRACKER = Tracker([P[label].info_hash_hex for label in tracked], W)
        for label in tracked:
            P[label] = add_announce(P[label], TRACKER.url)
        ips = {label: take_ip()
               for label in ('lt', 'lttrk', 'a2', 'big1', 'big2', 'big3', 'spill')}
        started = swarm.start_all([
            lambda: swarm.LibtorrentSeeder(ips['lt'], [P['lt-pe'], P['lt-peer']], SRC, W),
            lambda: swarm.LibtorrentSeeder(ips['lttrk'], [P['lt-trk']], SRC, W,
                                           announce=True),
            lambda: swarm.Aria2Seeder(ips['a2'], [P['a2-trk'], P['a2-pe']], SRC, W),
            lambda: swarm.LibtorrentSeeder(ips['big1'], [P['big']], SRC, W),
            lambda: swarm.LibtorrentSeeder(ips['big2'], [P['big']], SRC, W),
            lambda: swarm.LibtorrentSeeder(ips['big3'], [P['big']], SRC, W),
            lambda: swarm.LibtorrentSeeder(ips['spill'], [P['spill']], SRC, W)])
        SEEDERS['lt'], SEEDERS['lttrk'], SEEDERS['a2'] = started[:3]
        SEEDERS['big'] = started[3:6]
        SEEDERS['spill'] = started[6]
        # aria2c announces once it has checked its data; the downloaders must find it there
        TRACKER.wait_seeders(P['a2-trk'].info_hash_hex, 1, timeout=30)
        TRACKER.wait_seeders(P['lt-trk'].info_hash_hex, 1, timeout=30)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    for s in SEEDERS.values():
        for x in (s if isinstance(s, list) else [s]):
            x.stop()
    SEEDERS.clear()
    if TRACKER is not None:
        TRACKER.stop()
    swarm.kill_all_children()
    if W and not os.environ.get('KEEP_TMP'):
        shutil.rmtree(W, ignore_errors=True)


def same_content(test, label, out_path):
    """out_path (our file, or the folder named after the torrent) holds exactly the
    payload's bytes."""
    src = ROOTS[label]
    if P[label].multi:
        test.assertEqual(swarm.tree(out_path), swarm.tree(src), label)
    else:
        test.assertTrue(os.path.isfile(out_path), '%s: no %s' % (label, out_path))
        test.assertEqual(os.path.getsize(out_path), os.path.getsize(src), label)
        test.assertEqual(swarm.sha1_file(out_path), swarm.sha1_file(src), label)


def seeder_addresses(key):
    s = SEEDERS[key]
    return [x.address for x in (s if isinstance(s, list) else [s])]


class OurMagnetDownloads(unittest.TestCase):
    """`torrent download "<magnet>"` from real seeders."""

    def fetch(self, label, uri, extra=(), timeout=TIMEOUT):
        """Runs ours on the magnet into a fresh dir with --save-torrent; checks exit 0, the
        content and the saved .torrent. Returns the Result."""
        meta = P[label]
        out = tempfile.mkdtemp(prefix='ours-%s-' % label, dir=W)
        saved = os.path.join(out, 'saved.torrent')
        ip = take_ip()
        r = swarm.run_client('download', '--dir', out, '--listen', ip, '-p',
                             swarm.free_port(ip), '--progress=json', '-v', '--save-torrent',
                             saved, *extra, uri, timeout=timeout)
        self.assertEqual(r.returncode, 0, r)
        same_content(self, label, os.path.join(out, meta.name))
        self.assertTrue(os.path.isfile(saved), 'no --save-torrent file: %r' % r)
        with open(saved, 'rb') as f:
            self.assertEqual(btcommon.info_hash(f.read()), meta.info_hash_hex)
        self.assertEqual(torrent_file_hash(saved), meta.info_hash_hex,
                         'libtorrent reads another info hash from the saved .torrent')
        summary = r.summary()
        self.assertIsNotNone(summary, r)
        self.assertEqual(summary['verified'], meta.total, summary)
        print('  %s: %.2f s, first byte %.2f s' % (label, r.elapsed, summary['first_byte']),
              file=sys.stderr)
        return r

    def test_libtorrent_through_tracker(self):
        self.fetch('lt-trk', magnet_uri(P['lt-trk'], trackers=[TRACKER.url]))

    def test_libtorrent_through_x_pe(self):
        self.fetch('lt-pe', magnet_uri(P['lt-pe'], peers=seeder_addresses('lt')))

    def test_libtorrent_through_peer_option(self):
        # the magnet names no peer: --peer is the only way to the seeder
        self.fetch('lt-peer', magnet_uri(P['lt-peer']),
                   extra=['--peer', seeder_addresses('lt')[0]])

    def test_aria2_through_tracker(self):
        self.fetch('a2-trk', magnet_uri(P['a2-trk'], trackers=[TRACKER.url]))

    def test_aria2_through_x_pe(self):
        self.fetch('a2-pe', magnet_uri(P['a2-pe'], peers=seeder_addresses('a2')))

    def test_big_info_dict_from_three_libtorrent_seeders(self):
        addrs = seeder_addresses('big')
        r = self.fetch('big', magnet_uri(P['big'], peers=addrs), timeout=TIMEOUT * 2)
        # Which peers served metadata: the -v lines that mention metadata and a seeder.
        lines = [ln for ln in r.err.splitlines() if 'metadata' in ln.lower()]
        served = {a for a in addrs for ln in lines if a in ln}
        if lines and served:
            self.assertGreater(len(served), 1, 'metadata from one peer only: %s'
                               % '\n'.join(lines[-20:]))
        else:
            print('  big: no -v line names a metadata peer; checked completion only',
                  file=sys.stderr)
        # the JSON lines while fetching say how many peers the metadata was asked of
        asked = max([o.get('metadata_peers', 0) for o in r.json_lines()], default=0)
        print('  big: at most %d metadata peers in the JSON lines' % asked, file=sys.stderr)
        peers = {p['address'] for p in r.summary()['peers'] if p['bytes'] > 0}
        print('  big: data from %d of 3 seeders, metadata from %s'
              % (len(peers & set(addrs)), sorted(served) or '?'), file=sys.stderr)


def lt_from_our_seed(test, label, what, check, seed_timeout=30, metadata_timeout=30):
    """Our `torrent seed` of the label's payload; a libtorrent session opens its magnet with that
    seed as its only peer and must find the info hash; then check(ses, handle, torrent_info,
    out_dir, seed) runs, and the seed must stop cleanly."""
    meta = P[label]
    seed = Seed(meta, ROOTS[label], take_ip(), timeout=seed_timeout)
    try:
        ses, _ = lt_session(take_ip(), encryption=False)
        out = tempfile.mkdtemp(prefix='lt-%s-from-ours-' % label, dir=W)
        h = lt_add_magnet(ses, magnet_uri(meta, peers=[seed.address]), out,
                          peers=[seed.address])
        ti = lt_wait_metadata(ses, h, metadata_timeout, 'libtorrent opening %s from us' % what)
        test.assertEqual(str(ti.info_hashes().v1), meta.info_hash_hex)
        check(ses, h, ti, out, seed)
        ses.remove_torrent(h)
        del ses
    finally:
        r = seed.stop()
    test.assertEqual(r.returncode, 0, r)


class SpilledInfoDict(unittest.TestCase):
    """Case 5: an info dict that we keep in a temporary file, fetched and served."""

    def test_info_of_magnet_from_libtorrent(self):
        meta = P['spill']
        r = swarm.run_client('info', '--json',
                             magnet_uri(meta, peers=seeder_addresses('spill')),
                             timeout=TIMEOUT * 2)
        self.assertEqual(r.returncode, 0, r)
        obj = json.loads(r.out)
        self.assertEqual(obj['info_hash'], meta.info_hash_hex, r.err[-2000:])
        self.assertEqual((obj['piece_length'], obj['length']), (16 * KiB, meta.total))
        self.assertEqual(len(obj['piece_hashes']), SPILL_PIECES)
        self.assertEqual(set(obj['piece_hashes']), {ZERO_PIECE_SHA1.hex()})

    def test_libtorrent_opens_magnet_from_our_seed(self):
        def check(ses, h, ti, out, seed):
            self.assertEqual(ti.num_pieces(), SPILL_PIECES)
            self.assertEqual(bytes(ti.hash_for_piece(SPILL_PIECES - 1)), ZERO_PIECE_SHA1)
        # Our seed checks the 937 MiB of zeros first (read from holes, hashed): allow for it.
        lt_from_our_seed(self, 'spill', 'the spilled magnet', check, seed_timeout=120,
                         metadata_timeout=60)


class OurSeedServesMagnets(unittest.TestCase):
    """`torrent seed` answering ut_metadata: real clients open the magnet from us."""

    def test_libtorrent_opens_magnet_from_our_seed(self):
        meta = P['ours-lt']

        def check(ses, h, ti, out, seed):
            lt_wait_seeding(ses, h, TIMEOUT, 'libtorrent downloading from our seed')
            same_content(self, 'ours-lt', os.path.join(out, meta.name))
            self.assertGreaterEqual(seed.wait_uploaded(meta.total, timeout=10), meta.total)
        lt_from_our_seed(self, 'ours-lt', 'the magnet', check)

    def test_libtorrent_opens_big_info_dict_from_our_seed(self):
        # 70 metadata blocks served by us, the last one short
        meta = P['big']

        def check(ses, h, ti, out, seed):
            self.assertEqual(ti.num_files(), len(meta.files))
            lt_wait_seeding(ses, h, TIMEOUT, 'libtorrent downloading the big one from us')
            same_content(self, 'big', os.path.join(out, meta.name))
        lt_from_our_seed(self, 'big', 'the big magnet', check)

    def test_aria2_metadata_only_from_our_seed(self):
        label = 'ours-a2'
        meta = P[label]
        # announces leave from 127.0.0.1: listen there so that the tracker's entry is us
        seed = Seed(meta, ROOTS[label], swarm.LOOPBACK, tracker=True)
        try:
            TRACKER.wait_seeders(meta.info_hash_hex, 1, timeout=15)
            out = tempfile.mkdtemp(prefix='a2-from-ours-', dir=W)
            a = Aria2Magnet(take_ip(), magnet_uri(meta, trackers=[TRACKER.url]), out, W,
                            metadata_only=True)
            try:
                a.wait(TIMEOUT)
            finally:
                a.stop()
            saved = a.saved_torrent(meta.info_hash_hex)
            self.assertTrue(os.path.isfile(saved), 'aria2c saved no metadata: %s'
                            % os.listdir(out))
            self.assertEqual(torrent_file_hash(saved), meta.info_hash_hex)
        finally:
            r = seed.stop()
        self.assertEqual(r.returncode, 0, r)


class Control(unittest.TestCase):
    """The same magnets opened by real clients from the same seeders, and libtorrent in place
    of our seed: these prove the harness and pass whatever our binary does."""

    def lt_fetch(self, label, uri, peers=()):
        meta = P[label]
        ses, _ = lt_session(take_ip(), encryption=False)
        out = tempfile.mkdtemp(prefix='lt-%s-' % label, dir=W)
        h = lt_add_magnet(ses, uri, out, peers=peers)
        ti = lt_wait_metadata(ses, h, TIMEOUT, 'libtorrent on %s' % label)
        self.assertEqual(str(ti.info_hashes().v1), meta.info_hash_hex)
        lt_wait_seeding(ses, h, TIMEOUT, 'libtorrent on %s' % label)
        same_content(self, label, os.path.join(out, meta.name))
        ses.remove_torrent(h)

    def test_libtorrent_magnet_through_tracker(self):
        self.lt_fetch('lt-trk', magnet_uri(P['lt-trk'], trackers=[TRACKER.url]))

    def test_libtorrent_magnet_through_x_pe(self):
        self.lt_fetch('lt-pe', magnet_uri(P['lt-pe'], peers=seeder_addresses('lt')))

    def test_libtorrent_magnet_from_aria2_seeder(self):
        self.lt_fetch('a2-pe', magnet_uri(P['a2-pe'], peers=seeder_addresses('a2')))
        self.lt_fetch('a2-trk', magnet_uri(P['a2-trk'], trackers=[TRACKER.url]))

    def test_libtorrent_magnet_big_info_dict(self):
        addrs = seeder_addresses('big')
        self.lt_fetch('big', magnet_uri(P['big'], peers=addrs))

    def test_aria2_metadata_only_from_libtorrent_seeder(self):
        # what the our-seed case asks of aria2c, with libtorrent serving instead of us
        meta = P['lt-trk']
        out = tempfile.mkdtemp(prefix='a2-from-lt-', dir=W)
        a = Aria2Magnet(take_ip(), magnet_uri(meta, trackers=[TRACKER.url]), out, W,
                        metadata_only=True)
        try:
            a.wait(TIMEOUT)
        finally:
            a.stop()
        self.assertEqual(torrent_file_hash(a.saved_torrent(meta.info_hash_hex)),
                         meta.info_hash_hex)


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
