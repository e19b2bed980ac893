"""`torrent bench`: the built-in local swarm verifies its download and cleans up after itself,
when it finishes and when it is interrupted. Small sizes: this checks behaviour, not speed."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

TORRENT = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else None


def processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class BenchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.env = dict(os.environ, TMPDIR=self.tmp.name)

    def tearDown(self):
        for pid in processes_mentioning(self.tmp.name):
            os.kill(pid, signal.SIGKILL)
        self.tmp.cleanup()

    def test_json_result_verified_and_clean(self):
        r = subprocess.run([TORRENT, "bench", "--size", "8M", "--seeders", "3",
                            "--piece-length", "256K", "--json"],
                           capture_output=True, text=True, timeout=120, env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertTrue(res["verified"])
        self.assertEqual(res["size"], 8 << 20)
        self.assertEqual(res["seeders"], 3)
        self.assertEqual(len(res["peers"]), 3)
        self.assertEqual(sum(p["bytes"] for p in res["peers"]), 8 << 20)
        self.assertGreater(res["wall_s"], 0)
        self.assertGreater(res["peak_rss_kib"], 0)
        self.assertGreaterEqual(res["first_byte_s"], 0)
        self.assertEqual(os.listdir(self.tmp.name), [], "bench left files behind")
        self.assertEqual(processes_mentioning(self.tmp.name), [], "bench left processes")

    def test_table(self):
        r = subprocess.run([TORRENT, "bench", "--size", "4M", "--seeders", "2"],
                           capture_output=True, text=True, timeout=120, env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        for label in ("size", "verified        yes", "wall time", "throughput", "first byte",
                      "CPU, download", "CPU, seeders", "peak memory", "127.0.0.11",
                      "127.0.0.12"):
            self.assertIn(label, r.stdout)
        self.assertEqual(os.listdir(self.tmp.name), [])

    def test_interrupted_cleans_up(self):
        p = subprocess.Popen([TORRENT, "bench", "--size", "2G", "--seeders", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=self.env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not os.listdir(self.tmp.name):
                time.sleep(0.05)
            time.sleep(0.3)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("torrent: bench: interrupted", err)
        self.assertEqual(os.listdir(self.tmp.name), [], "bench left files behind")
        self.assertEqual(processes_mentioning(self.tmp.name), [], "bench left processes")

    def test_bad_usage(self):
        for args in (["--size", "0"], ["--seeders", "0"], ["--seeders", "65"],
                     ["--piece-length", "1000"], ["extra"]):
            r = subprocess.run([TORRENT, "bench"] + args, capture_output=True, text=True,
                               timeout=10, env=self.env)
            self.assertEqual(r.returncode, 2, args)
            self.assertTrue(r.stderr.startswith("torrent: bench: "), r.stderr)
            self.assertEqual(len(r.stderr.splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
