"""Shared bits of the reliability suite (tests/reliability): imports the integration helpers
(btcommon, swarm, upload_common, trackers) from tests/integration, and a few small tools.

Each script is run by meson as
    /usr/bin/python3 tests/reliability/<script>.py <path to the torrent binary>
Everything listens on and talks to 127.0.0.0/8 only; every process started is stopped by PID.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.normpath(os.path.join(HERE, '..', 'integration'))
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)

import btcommon  # noqa: E402,F401
import swarm  # noqa: E402,F401


def snapshot(root):
    """{relative path: (kind, size, mtime_ns)} of everything under root, links not followed:
    compared before and after a run to see what it created or changed."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            kind = 'link' if os.path.islink(p) else 'dir' if os.path.isdir(p) else 'file'
            out[os.path.relpath(p, root)] = (kind, st.st_size if kind == 'file' else 0,
                                             st.st_mtime_ns if kind == 'file' else 0)
    return out


def changed_outside(before, after, allowed_prefixes):
    """Paths created or changed between two snapshots that are not under an allowed prefix
    (relative paths)."""
    bad = []
    for p, v in after.items():
        if before.get(p) == v:
            continue
        if any(p == a or p.startswith(a + os.sep) for a in allowed_prefixes):
            continue
        bad.append(p)
    return sorted(bad)


def error_lines(stderr):
    """stderr's lines that are not --progress=json objects (str)."""
    text = stderr.decode('utf-8', 'replace') if isinstance(stderr, bytes) else stderr
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith('{')]


def main():
    btcommon.main()
