#!/usr/bin/python3
"""rtorrent as a one-shot downloader and Transmission as a seeder, for bench/wan.sh and
bench/download.sh.

Usage:
  /usr/bin/python3 bench/realpeer.py rtorrent TORRENT OUT_DIR IP TIMEOUT_S
  /usr/bin/python3 bench/realpeer.py transmission-seed TORRENT SAVE_PATH IP PORT WORK_DIR

Both start the real clients the way the integration tests do (tests/integration/swarm.py and
upload_common.py: the settings REAL-PEERS.md found to work on loopback), so the two stay one
recipe, not two copies.

rtorrent: rtorrent 0.9.8 headless (daemon mode, its own HOME under OUT_DIR's parent) downloads
TORRENT into OUT_DIR, listening on IP; it finds its peers through the torrent's tracker. Its
finished hook (every piece verified) ends the wait; rtorrent is then stopped by its PID and
this exits 0 after printing "finished=S" (seconds since rtorrent was started). Exits 1 with a
one-line error if rtorrent dies or does not finish within TIMEOUT_S.

transmission-seed: transmission-cli 3.00 on IP:PORT seeds TORRENT from SAVE_PATH (encryption
preferred, as by default; no DHT/LPD/PEX/uTP, no limits; it verifies the data first), its
settings and log in a new directory under WORK_DIR. Prints "ready" once a probe peer sees every
piece, then serves until SIGTERM or SIGINT, which stop transmission-cli by its PID. (It still
looks up dht.transmissionbt.com by name, as in the tests: the lookup fails here, nothing more.)
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests',
                                'integration'))
import swarm  # noqa: E402  (its import also stops every child on SIGTERM/SIGINT/SIGHUP)
from upload_common import RtorrentDownloader  # noqa: E402


def die(msg):
    print('realpeer.py: %s' % msg, file=sys.stderr, flush=True)
    sys.exit(1)


def load(torrent):
    try:
        return swarm.Meta(os.path.abspath(torrent))
    except OSError as e:
        die('%s: %s' % (torrent, e.strerror))
    except Exception as e:  # noqa: BLE001  (the test decoder's errors: not a torrent)
        die('%s: not a torrent we can read (%s)' % (torrent, e))


def rtorrent(torrent, out_dir, ip, timeout):
    meta = load(torrent)
    home = os.path.dirname(os.path.abspath(out_dir))
    rt = RtorrentDownloader(ip, meta, out_dir, home)
    try:
        took = rt.wait(timeout)
    except AssertionError as e:
        die('rtorrent: %s' % str(e).replace('\n', ' ')[:400])
    finally:
        rt.stop()
    print('finished=%.4f' % took, flush=True)


def transmission_seed(torrent, save_path, ip, port, work_dir):
    meta = load(torrent)
    save_path = os.path.abspath(save_path)
    work = tempfile.mkdtemp(prefix='tx-seed-', dir=work_dir)
    config = os.path.join(work, 'config')
    os.mkdir(config)
    # Transmission's default, "prefer encrypted": it still takes plaintext peers (ours, aria2c),
    # and unlike "tolerated" (-et, the tests' choice) it also completes rtorrent's encrypted
    # handshake (seen here: "tolerated" dropped it).
    swarm.write_transmission_settings(config, ip, port, save_path, encryption=1)
    argv = [swarm.TRANSMISSION_CLI, '-g', config, '-w', save_path, '-p', str(port), '-ep', '-M',
            '-U', '-D', '-v', meta.path]
    proc = swarm.Proc(argv, os.path.join(work, 'log.txt'), cwd=work)
    try:
        swarm.wait_seeding(ip, port, [meta], 60, proc)
    except (RuntimeError, TimeoutError) as e:
        proc.stop()
        die('transmission-seed: %s' % str(e).replace('\n', ' ')[:400])
    print('ready', flush=True)
    # swarm's handlers stop transmission-cli on SIGTERM/SIGINT; until then, nothing to do
    while proc.alive():
        time.sleep(0.5)
    die('transmission-seed: transmission-cli exited: %s' % proc.read_log(400))


def main():
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == 'rtorrent':
        try:
            timeout = float(args[4])
        except ValueError:
            die('rtorrent: TIMEOUT_S %r is not a number' % args[4])
        rtorrent(args[1], args[2], args[3], timeout)
    elif len(args) == 6 and args[0] == 'transmission-seed':
        if not args[4].isdigit() or not 0 < int(args[4]) < 65536:
            die('transmission-seed: PORT %r is not a port from 1 to 65535' % args[4])
        transmission_seed(args[1], args[2], args[3], int(args[4]), args[5])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
