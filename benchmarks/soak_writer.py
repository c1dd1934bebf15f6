"""The soak's writer (benchmarks/soak.py): numbered lines of four OpenStack log families
appended at a steady rate, with logrotate-style rotations, in a process of its own so
that the orchestrator's faults never stall it.

    python -m hekapy.benchmarks.soak_writer ROOT --rate 2000 --seconds 180 --rotate-every 10

ROOT is laid out as /var/log (the LMA configuration's directories). Every line carries
`hkseq=<n>`, numbered 0, 1, 2 … across the files in turn, where the decoder keeps it in
the Elasticsearch document (the message, or the request's URL). Every `--rotate-every`
seconds each file is rotated, the way its logrotate configuration does it:
- the oslo.log files (nova-api, the LBaaS agent) and Keystone's Apache access log
  alternate between a rename (`create`: x.log → x.log.1, a new x.log) and
  `copytruncate` (x.log copied to x.log.1, then truncated in place; the writer keeps
  its descriptor, as the service does). No line is written between the copy and the
  truncation (this writer is the only one): logrotate's own copytruncate loses those,
  and that loss would be logrotate's, not the collector's;
- haproxy.log is always renamed: LMA's `file_match` for it has no sequence group, so
  haproxy.log.1 is not part of the stream and a copy would never be read (Debian's
  logrotate configuration for HAProxy renames too).
Older files shift (x.log.1 → x.log.2 …) and the oldest beyond `--keep` is deleted.
On exit (the time is up, or SIGTERM) it prints one JSON line: {"written": N,
"per_file": {...}, "rotations": R, "renames": n, "copytruncates": n}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

# file (relative to ROOT) → whether its rotation alternates with copytruncate
FILES = {
    "nova/nova-api.log": True,
    "neutron/lbaas-agent.log": True,
    "apache2/keystone_wsgi_main_access.log": True,
    "haproxy.log": False,
}
# The order numbered lines go to the files: nova-api gets two in five.
ROUND = ["nova/nova-api.log", "neutron/lbaas-agent.log", "nova/nova-api.log",
         "apache2/keystone_wsgi_main_access.log", "haproxy.log"]
USER = "309cad68386d070c415ed7e70cad1946"
TENANT = "53e5753dc98fa36a1009aecac22ae386"


def oslo_time(now: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + \
        f".{int(now * 1000) % 1000:03d}"


def line(rel: str, seq: int, now: float) -> str:
    """One line of the family `rel` numbered `seq` (UTC time stamps)."""
    if rel == "nova/nova-api.log":
        status = (200, 202, 404)[seq % 3]
        return (f"{oslo_time(now)} 2310 INFO nova.osapi_compute.wsgi.server "
                f"[req-{seq:08x}-0000-4000-8000-000000000000 {USER} {TENANT} - - -] "
                f'10.20.0.2 "GET /v2.1/{TENANT}/servers/detail?hkseq={seq} HTTP/1.1" '
                f"status: {status} len: {1800 + seq % 500} time: 0.{seq % 900 + 100:06d}\n")
    if rel == "neutron/lbaas-agent.log":
        return (f"{oslo_time(now)} 12731 INFO neutron_lbaas.drivers.haproxy.namespace_driver "
                f"[req-{seq:08x}-0000-4000-8000-000000000001 {USER} {TENANT} - - -] "
                f"Stats for pool 6bd2ed1a-4f1a-4bd6-9bce-2f5c20b0c7f5 collected hkseq={seq}\n")
    if rel == "apache2/keystone_wsgi_main_access.log":
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
        return (f'192.168.0.{seq % 250 + 2} - - [{stamp}] "GET /v3/projects?hkseq={seq} '
                f'HTTP/1.1" 200 {300 + seq % 900} {2000 + seq % 90000} "-" '
                '"python-keystoneclient"\n')
    stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(now))
    accept = time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(now))
    tr = seq % 900 + 1
    return (f"{stamp} node-1 haproxy[2210]: 192.168.0.{seq % 250 + 2}:{30000 + seq % 30000} "
            f"[{accept}.{int(now * 1000) % 1000:03d}] nova-api nova-api/node-{seq % 3 + 1} "
            f"0/0/1/{tr}/{tr + 1} 200 {200 + seq % 9000} - - ---- 3/3/0/0/0 0/0 "
            f'"GET /v2.1/servers/detail?hkseq={seq} HTTP/1.1"\n')


class Writer:
    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = keep
        self.fds: dict[str, int] = {}
        for rel in FILES:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            self.fds[rel] = self._open(rel)
        self.next_seq = 0
        self.per_file = dict.fromkeys(FILES, 0)
        self.rotations = self.renames = self.copytruncates = 0

    def _open(self, rel: str) -> int:
        return os.open(self.root / rel, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, n: int) -> None:
        if n <= 0:
            return
        now = time.time()
        pending: dict[str, list[str]] = {rel: [] for rel in FILES}
        for seq in range(self.next_seq, self.next_seq + n):
            rel = ROUND[seq % len(ROUND)]
            pending[rel].append(line(rel, seq, now))
        for rel, lines in pending.items():
            if lines:
                data = "".join(lines).encode()
                view = memoryview(data)
                while view:  # a short write on a regular file is rare, never ignored
                    view = view[os.write(self.fds[rel], view):]
                self.per_file[rel] += len(lines)
        self.next_seq += n

    def rotate(self) -> None:
        copy = self.rotations % 2 == 1
        for rel, alternates in FILES.items():
            path = self.root / rel
            for k in range(self.keep, 0, -1):
                older = path.with_name(f"{path.name}.{k}")
                if older.exists():
                    if k == self.keep:
                        older.unlink()
                    else:
                        older.rename(path.with_name(f"{path.name}.{k + 1}"))
            first = path.with_name(f"{path.name}.1")
            if copy and alternates:
                shutil.copyfile(path, first)
                os.ftruncate(self.fds[rel], 0)
                self.copytruncates += 1
            else:
                path.rename(first)
                os.close(self.fds[rel])
                self.fds[rel] = self._open(rel)
                self.renames += 1
        self.rotations += 1

    def summary(self) -> dict[str, object]:
        return {"written": self.next_seq, "per_file": self.per_file,
                "rotations": self.rotations, "renames": self.renames,
                "copytruncates": self.copytruncates}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--rate", type=float, default=2000.0, help="lines per second")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--rotate-every", type=float, default=60.0, help="seconds")
    ap.add_argument("--keep", type=int, default=4, help="rotated files kept per log")
    ap.add_argument("--tick", type=float, default=0.01, help="seconds between bursts")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.rotate_every <= 0 or args.keep < 1:
        ap.error("--rate, --seconds and --rotate-every must be positive, --keep >= 1")
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True
    signal.signal(signal.SIGTERM, stop)
    w = Writer(args.root, args.keep)
    t0 = time.monotonic()
    next_rotation = t0 + args.rotate_every
    end = t0 + args.seconds
    while not stopped and (now := time.monotonic()) < end:
        w.write(int((now - t0) * args.rate) - w.next_seq)
        if now >= next_rotation:
            w.rotate()
            next_rotation += args.rotate_every
        time.sleep(max(0.0, min(args.tick - (time.monotonic() - now), end - now)))
    if not stopped:
        w.write(int(args.seconds * args.rate) - w.next_seq)
    print(json.dumps(w.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
