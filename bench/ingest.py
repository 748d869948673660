"""Bridge ingest speed on the full recorded AMI event mix, against panoramisk's bare parse.

Both sides get the same bytes in the same 4 KiB reads a socket would give. The floor is
panoramisk 1.4's own `AMIProtocol.data_received` with message handling reduced to a
counter; the bridge side is our FrameParser plus the CallTracker, i.e. everything the
bridge does per event before publishing. Prints events/s for both and their ratio
(goal: bridge >= 0.3x the bare parse).

    .venv/bin/python bench/ingest.py [--repeat 40]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from panoramisk.ami_protocol import AMIProtocol

from ami_bridge.frames import FrameParser
from ami_bridge.tracker import CallTracker

TRACES = Path(__file__).resolve().parent.parent.parent / "shared" / "ami-traces"
CHUNK = 4096


def recorded_mix() -> bytes:
    """Every recording, each with its banner, as one stream."""
    return b"".join(p.read_bytes() for p in sorted(TRACES.glob("*.ami")))


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


class _CountingProtocol(AMIProtocol):
    """panoramisk's protocol with dispatch replaced by a counter: its parse cost only."""

    def handle_message(self, message):  # type: ignore[no-untyped-def]
        self.count += 1


def panoramisk_parse(reads: list[bytes], repeat: int) -> tuple[int, float]:
    proto = _CountingProtocol()
    proto.connection_made(None)
    proto.count = 0
    proto.encoding = "utf8"
    start = time.perf_counter()
    for _ in range(repeat):
        for read in reads:
            proto.data_received(read)
    return proto.count, time.perf_counter() - start


def bridge_ingest(reads: list[bytes], repeat: int) -> tuple[int, int, float]:
    count = call_events = 0
    start = time.perf_counter()
    for _ in range(repeat):
        parser = FrameParser()
        tracker = CallTracker()
        for read in reads:
            for msg in parser.feed(read):
                count += 1
                call_events += len(tracker.feed(msg))
    return count, call_events, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40)
    args = ap.parse_args()
    data = recorded_mix()
    reads = chunks(data)
    panoramisk_parse(reads, 2)  # warm up both paths
    bridge_ingest(reads, 2)
    floor_n, floor_s = min((panoramisk_parse(reads, args.repeat) for _ in range(3)), key=lambda r: r[1])
    ours_n, call_events, ours_s = min((bridge_ingest(reads, args.repeat) for _ in range(3)),
                                      key=lambda r: r[2])
    floor_rate, ours_rate = floor_n / floor_s, ours_n / ours_s
    print(f"input: {len(data)} bytes x {args.repeat} = {len(data) * args.repeat / 1e6:.1f} MB, "
          f"{CHUNK}-byte reads")
    print(f"panoramisk bare parse (floor): {floor_n} messages in {floor_s:.3f} s = {floor_rate:,.0f} msg/s")
    print(f"bridge parse + track:          {ours_n} messages in {ours_s:.3f} s = {ours_rate:,.0f} msg/s "
          f"({call_events} call events)")
    print(f"ratio bridge/floor: {ours_rate / floor_rate:.2f}x  (goal >= 0.30x)")


if __name__ == "__main__":
    main()
