"""`torrent bench`: the built-in local swarm verifies its download and cleans up after itself,
when it finishes and when it is interrupted. Small sizes: this checks behaviour, not speed."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

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
        # The peer count comes from the downloader's JSON, read as JSON: every seeder.
        self.assertEqual(res["peers_connected"], 3)
        self.assertEqual(res["peers_used"], 3)
        self.assertGreater(res["mib_per_s"], 0)
        self.assertNotIn("mb_per_s", res)
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
                      "127.0.0.12", "peers           2 connected, 2 sent data (of 2 seeders)"):
            self.assertIn(label, r.stdout)
        # One unit convention: binary units, never decimal MB.
        self.assertRegex(r.stdout, r"throughput +[0-9.]+ [KMG]iB/s\n")
        self.assertNotRegex(r.stdout + r.stderr, r"\b[kKMG]B\b")
        self.assertEqual(os.listdir(self.tmp.name), [])

    def test_progress_line_shows_the_seeders_on_a_terminal(self):
        # The redrawn line (stderr on a pty) must count the seeders, not "peers 0".
        master, slave = pty.openpty()
        p = subprocess.Popen([TORRENT, "bench", "--size", "8M", "--seeders", "3"],
                             stdout=subprocess.DEVNULL, stderr=slave, env=self.env)
        os.close(slave)
        out = b""
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1)
                if not ready:
                    if p.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the pty closes when the bench exits
                    break
                if not chunk:
                    break
                out += chunk
            p.wait(timeout=30)
        finally:
            os.close(master)
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, out)
        text = out.decode("utf-8", "replace")
        counts = [int(n) for n in re.findall(r"downloading .*?peers (\d+) \(", text)]
        self.assertTrue(counts, text)
        self.assertEqual(counts[-1], 3, text)

    def test_plot_and_stats(self):
        svg = os.path.join(self.tmp.name, "..", os.path.basename(self.tmp.name) + "-p.svg")
        stats = svg[:-4] + ".jsonl"
        self.addCleanup(lambda: [os.remove(f) for f in (svg, stats) if os.path.exists(f)])
        r = subprocess.run([TORRENT, "bench", "--size", "8M", "--seeders", "3", "--json",
                            "--plot", svg, "--stats", stats],
                           capture_output=True, text=True, timeout=120, env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = sorted("127.0.0.%d:%d" % (11 + i, 17011 + i) for i in range(3))
        root = ET.parse(svg).getroot()
        series = [e.get("data-peer") for e in root.iter("{http://www.w3.org/2000/svg}path")
                  if e.get("class") == "peer"]
        self.assertEqual(sorted(series), names)
        with open(stats) as f:
            objs = [json.loads(line) for line in f]
        self.assertGreaterEqual(len(objs), 2)
        self.assertEqual(sorted(objs[-1]["peers"]), names)
        self.assertEqual(objs[-1]["received"], 8 << 20)
        self.assertEqual(os.listdir(self.tmp.name), [], "bench left files behind")

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
