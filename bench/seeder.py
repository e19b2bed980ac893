#!/usr/bin/python3
"""One libtorrent seeder for bench/download.sh, on its own loopback address.

Usage: /usr/bin/python3 bench/seeder.py TORRENT SAVE_PATH IP PORT

Adds TORRENT with every piece marked had and verified (no seed_mode, which re-hashes each piece
on its first upload, and no initial check), so it serves at full speed from the first request.
DHT, LSD, UPnP, NAT-PMP and uTP are off; several connections from one IP are allowed; no rate
limits. It announces to the torrent's tracker, prints "ready" on standard output once the
tracker has answered (or "ready no-tracker" if the torrent has none), then serves until
SIGTERM or SIGINT, and on the way out prints its upload total and exits 0.
"""
import signal
import sys
import time

import libtorrent as lt


def main():
    torrent, save_path, ip, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    ses = lt.session({
        'listen_interfaces': '%s:%d' % (ip, port),
        'outgoing_interfaces': ip,
        'enable_dht': False, 'enable_lsd': False,
        'enable_upnp': False, 'enable_natpmp': False,
        'enable_incoming_utp': False, 'enable_outgoing_utp': False,
        'allow_multiple_connections_per_ip': True,
        'alert_mask': lt.alert.category_t.error_notification
                      | lt.alert.category_t.status_notification
                      | lt.alert.category_t.tracker_notification,
    })
    if ses.listen_port() != port:
        # libtorrent moves to another port when the one asked for is taken: refuse instead, so
        # the tracker and the clients are never pointed at someone else's peer
        print('seeder %s:%d: cannot listen there (port %d in use?)' % (ip, port, port),
              file=sys.stderr, flush=True)
        sys.exit(1)
    ti = lt.torrent_info(torrent)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    n = ti.num_pieces()
    atp.have_pieces = [True] * n
    atp.verified_pieces = [True] * n
    atp.flags = (atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) \
        | lt.torrent_flags.no_verify_files
    h = ses.add_torrent(atp)

    has_tracker = len(list(ti.trackers())) > 0
    ready = False
    deadline = time.monotonic() + 30
    while not stop:
        st = h.status()
        if not ready and st.is_seeding:
            if not has_tracker:
                print('ready no-tracker', flush=True)
                ready = True
        for a in ses.pop_alerts():
            if isinstance(a, lt.tracker_reply_alert) and not ready and st.is_seeding:
                print('ready', flush=True)
                ready = True
            elif isinstance(a, (lt.tracker_error_alert, lt.torrent_error_alert,
                                lt.file_error_alert, lt.listen_failed_alert)):
                print('seeder %s:%d: %s' % (ip, port, a.message()), file=sys.stderr, flush=True)
                if not ready and not isinstance(a, lt.tracker_error_alert):
                    sys.exit(1)
        if not ready and st.is_seeding and has_tracker and time.monotonic() > deadline:
            print('seeder %s:%d: no tracker reply in 30 s' % (ip, port), file=sys.stderr,
                  flush=True)
            sys.exit(1)
        ses.wait_for_alert(500 if ready else 20)
    st = h.status()
    print('uploaded %d' % st.total_payload_upload, flush=True)


if __name__ == '__main__':
    main()
