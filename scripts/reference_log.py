#!/usr/bin/env python3
"""An independent implementation of DESIGN.md's wire formats and provider rules, in plain Python.

It writes a round log (frame v1, round log v1, CRC-32C computed here bit by bit) holding two DC
nets over three rounds with missing clients, resends, and one frame for every reject reason of
DESIGN §5; and, computed here from the plaintext readings, the global.csv a correct provider
must produce and the reject counts it must report. The Rust tests aggregate this log with dcnet
and compare. Edge keys are random numbers rather than AES-CTR output: the provider never sees
keys, only that they cancel, so this also shows dcnet does not depend on how gateways made them.

Usage: python3 scripts/reference_log.py [--out data/samples/reference]
"""
import argparse
import pathlib
import random
import struct

MASK = (1 << 64) - 1
LANES = 2


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # DESIGN §8


def frame(notification, net, client, rnd, lanes, flags=1, version=1, magic=b"DC", reserved=0,
          timestamp=None, corrupt_crc=False):
    ts = timestamp if timestamp is not None else rnd * 900_000 + 1_000
    body = (magic + struct.pack("<BBBBH", version, notification, flags, len(lanes), reserved)
            + struct.pack("<III", net, client, rnd) + b"\0\0\0\0" + struct.pack("<Q", ts)
            + b"".join(struct.pack("<Q", v & MASK) for v in lanes))
    crc = crc32c(body)
    if corrupt_crc:
        crc ^= 0x1
    return body[:20] + struct.pack("<I", crc) + body[24:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/samples/reference")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261121)

    nets = {
        7: [(a, b) for i, a in enumerate([3, 11, 20, 42, 57]) for b in [3, 11, 20, 42, 57][i + 1:]],
        9: [(100 + i, 100 + (i + 1) % 6) for i in range(6)] + [(100 + i, 103 + i) for i in range(3)],
    }
    neighbours = {}
    for net, edges in nets.items():
        for a, b in edges:
            neighbours.setdefault((net, a), set()).add(b)
            neighbours.setdefault((net, b), set()).add(a)
    roster = {net: sorted({c for e in edges for c in e}) for net, edges in nets.items()}
    rounds = [96, 97, 98]
    # Who misses which round, and which resends are withheld by their senders.
    missing = {(7, 96): set(), (7, 97): {42}, (7, 98): {20},
               (9, 96): set(), (9, 97): {100, 101}, (9, 98): {100, 101, 102, 104, 105}}
    skip_resend = {(7, 98): {57}}
    readings = {(net, c, r): [rng.randrange(0, 2000), rng.randrange(0, 1 << 64)]
                for net in nets for c in roster[net] for r in rounds}
    keys = {(net, min(e), max(e), r): [rng.randrange(0, 1 << 64) for _ in range(LANES)]
            for net, edges in nets.items() for e in edges for r in rounds}

    def superposition(net, me, r, exclude):
        s = list(readings[(net, me, r)])
        for other in neighbours[(net, me)]:
            if other in exclude:
                continue
            k = keys[(net, min(me, other), max(me, other), r)]
            sign = 1 if me < other else -1
            s = [(x + sign * y) & MASK for x, y in zip(s, k)]
        return s

    frames = []
    expected = []
    for net in nets:
        for r in rounds:
            gone = missing[(net, r)]
            present = [c for c in roster[net] if c not in gone]
            needy = [c for c in present if neighbours[(net, c)] & gone]
            resent = 0
            for c in present:
                frames.append(frame(5, net, c, r, superposition(net, c, r, set())))
            for c in needy:
                if c in skip_resend.get((net, r), set()):
                    continue
                frames.append(frame(4, net, c, r, superposition(net, c, r, gone), timestamp=r * 900_000 + 300_000))
                resent += 1
            if len(present) < 2:
                status, lanes = "withheld", [""] * LANES
            elif resent < len(needy):
                status, lanes = "unrecoverable", [""] * LANES
            else:
                status = "ok"
                lanes = [sum(readings[(net, c, r)][l] for c in present) & MASK for l in range(LANES)]
            expected.append([net, r, len(roster[net]), len(present), resent, status] + lanes)

    good = frames[0]  # net 7, client 3, round 96, transmit
    bad = [
        ("duplicate", good),
        ("crc-mismatch", frame(5, 7, 11, 99, [1, 2], corrupt_crc=True)),
        ("bad-magic", frame(5, 7, 11, 99, [1, 2], magic=b"XX")),
        ("bad-version", frame(5, 7, 11, 99, [1, 2], version=2)),
        ("reserved-bits", frame(5, 7, 11, 99, [1, 2], flags=0b101)),
        ("unknown-notification", frame(6, 7, 11, 99, [1, 2])),
        ("bad-lanes", frame(5, 7, 11, 99, [1, 2, 3])),
        ("control-frame", frame(1, 7, 11, 99, [0, 0], flags=0)),
        ("no-transmission-bit", frame(5, 7, 11, 96, [5, 5], flags=0)),
        ("unknown-net", frame(5, 99, 3, 96, [1, 2])),
        ("unknown-client", frame(5, 7, 1234, 96, [1, 2])),
        ("resend-without-missing-neighbour", frame(4, 7, 3, 96, [1, 2])),
        ("resend-without-transmit", frame(4, 7, 42, 97, [1, 2])),
    ]
    order = frames + [f for _, f in bad]
    rng.shuffle(order)
    tail = frame(5, 7, 3, 98, [9, 9])[:20]
    log = (b"DCNETLOG" + struct.pack("<HHIQQ", 1, LANES, 0, 1_700_000_000_000, 0) + bytes(32)
           + b"".join(order) + tail)
    (out / "reference.dclog").write_bytes(log)
    with open(out / "graph.csv", "w") as g:
        g.write("dc_net_id,client_a,client_b\n")
        for net, edges in nets.items():
            for a, b in edges:
                g.write(f"{net},{a},{b}\n")
    with open(out / "expected-global.csv", "w") as g:
        g.write("dc_net_id,round,expected,present,resent,status,lane0,lane1\n")
        for row in expected:
            g.write(",".join(str(v) for v in row) + "\n")
    counts = {}
    for reason, _ in bad + [("truncated", tail)]:
        counts[reason] = counts.get(reason, 0) + 1
    with open(out / "expected-rejects.csv", "w") as g:
        g.write("reason,count\n")
        for reason, n in sorted(counts.items()):
            g.write(f"{reason},{n}\n")
    print(f"wrote {out}: {len(order)} frames + a truncated tail, {len(expected)} rounds")


if __name__ == "__main__":
    main()
