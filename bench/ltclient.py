#!/usr/bin/python3
"""A one-shot libtorrent downloader for bench/download.sh: downloads and exits when finished.

Usage: /usr/bin/python3 bench/ltclient.py TORRENT SAVE_DIR IP PORT [HOST:PORT...]

Listens and dials from IP (its own loopback address), announces to the torrent's tracker and
also dials every HOST:PORT given. DHT, LSD, UPnP, NAT-PMP and uTP off, several connections per
IP allowed, libtorrent's other settings at their defaults (sparse files, its own disk cache).
Exits 0 when the torrent is finished (every piece downloaded, hash-checked and handed to the
disk threads), after libtorrent's normal shutdown (which sends the tracker a "stopped" announce,
bounded by its stop_tracker_timeout, and closes the files). Prints on standard output its own
view: "first_byte=S finished=S payload=BYTES", seconds since the session was created.
Exits 1 on a torrent or file error, or if nothing arrives for 60 s.
"""
import sys
import time

import libtorrent as lt


def main():
    torrent, save_dir, ip, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    peers = sys.argv[5:]
    t0 = time.monotonic()
    ses = lt.session({
        'listen_interfaces': '%s:%d' % (ip, port),
        'outgoing_interfaces': ip,
        'enable_dht': False, 'enable_lsd': False,
        'enable_upnp': False, 'enable_natpmp': False,
        'enable_incoming_utp': False, 'enable_outgoing_utp': False,
        'allow_multiple_connections_per_ip': True,
        'alert_mask': lt.alert.category_t.error_notification
                      | lt.alert.category_t.status_notification,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_dir
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = ses.add_torrent(atp)
    for p in peers:
        host, _, pport = p.rpartition(':')
        h.connect_peer((host, int(pport)))

    first = None
    finished = None
    last_progress = (0, time.monotonic())
    while finished is None:
        # fine polling until the first byte (to time it), coarse afterwards
        ses.wait_for_alert(5 if first is None else 200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_finished_alert):
                finished = time.monotonic()
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                print('ltclient: %s' % a.message(), file=sys.stderr, flush=True)
                sys.exit(1)
        st = h.status()
        now = time.monotonic()
        if first is None and st.total_payload_download > 0:
            first = now
        if st.total_payload_download != last_progress[0]:
            last_progress = (st.total_payload_download, now)
        elif now - last_progress[1] > 60:
            print('ltclient: nothing received for 60 s', file=sys.stderr, flush=True)
            sys.exit(1)
    payload = h.status().total_payload_download
    del h
    del ses  # libtorrent's shutdown: stopped announce, files closed
    print('first_byte=%.4f finished=%.4f payload=%d'
          % ((first or finished) - t0, finished - t0, payload), flush=True)


if __name__ == '__main__':
    main()
