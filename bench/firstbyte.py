#!/usr/bin/python3
"""Watches a download's output file from outside the client, for bench/download.sh.

Usage: /usr/bin/python3 bench/firstbyte.py SIZE READY_FILE PATH...

Creates READY_FILE once running (the caller starts the client only after that), then opens
the first PATH that exists (keeping that descriptor, so a later rename does not matter) and
polls it:
  first  the first moment some downloaded data is in the file: st_blocks > 0, and then a
         non-zero byte inside an allocated data region (SEEK_DATA/SEEK_HOLE; the payload is
         random, so any 16 KiB block it writes has one). Blocks reserved by fallocate are
         holes to SEEK_DATA on ext4, and zeros a client writes to preallocate are skipped,
         so neither counts as data. Polled every 2 ms.
  last   the first moment the allocated size (st_blocks * 512) reaches SIZE, polled every
         10 ms after the first byte; "-" when the file was already fully allocated before
         any data arrived (a client that preallocates), since then it says nothing.
When it has seen both (or on SIGTERM, or after 600 s) it prints "first=EPOCH last=EPOCH" (CLOCK_REALTIME, as bash's
EPOCHREALTIME; "-" for what it did not see) and exits. The polling itself costs a few
milliseconds of CPU per second; it is not counted in the client's CPU.
"""
import os
import signal
import sys
import time

SCAN_BUDGET = 4 << 20  # bytes of data regions read per poll, at most


def has_data(fd, size):
    """True if a data region of the file holds a non-zero byte (within the scan budget)."""
    off, budget = 0, SCAN_BUDGET
    while off < size and budget > 0:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            return False  # ENXIO: no data after off
        h = os.lseek(fd, d, os.SEEK_HOLE)
        pos = d
        while pos < h and budget > 0:
            n = min(h - pos, 65536, budget)
            buf = os.pread(fd, n, pos)
            if not buf:
                return False
            if buf.count(0) != len(buf):
                return True
            pos += len(buf)
            budget -= len(buf)
        off = h
    return False


def main():
    size = int(sys.argv[1])
    ready, paths = sys.argv[2], sys.argv[3:]
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(1))
    signal.signal(signal.SIGINT, lambda *_: done.append(1))
    open(ready, 'w').close()

    fd, first, last, prealloc = None, None, None, False
    deadline = time.monotonic() + 600
    while not done and time.monotonic() < deadline:
        now = time.time()
        if fd is None:
            for p in paths:
                try:
                    fd = os.open(p, os.O_RDONLY)
                    break
                except OSError:
                    pass
        if fd is not None:
            st = os.fstat(fd)
            alloc = st.st_blocks * 512
            if first is None:
                if alloc > 0 and has_data(fd, max(st.st_size, size)):
                    first = now
                    if alloc >= size and not prealloc:
                        last = now  # everything arrived between two polls
                elif alloc >= size:
                    prealloc = True
            elif last is None and not prealloc and alloc >= size:
                last = now
        if first is not None and (last is not None or prealloc):
            break
        time.sleep(0.002 if first is None else 0.01)

    def fmt(t):
        return '-' if t is None else '%.6f' % t
    print('first=%s last=%s' % (fmt(first), fmt(last)), flush=True)


if __name__ == '__main__':
    main()
