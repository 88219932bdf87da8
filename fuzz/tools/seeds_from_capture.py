#!/usr/bin/env python3
"""Turns a captured session of a real cluster into seed corpora for the fuzz targets.

Usage: seeds_from_capture.py MYSQL_CAPTURE_DIR NODE_CAPTURE_DIR DATAD_DATA_DIR

- MYSQL_CAPTURE_DIR: record_proxy.py's files for MySQL client connections (client -> server
  bytes become mysql_handshake seeds whole, and mysql_packets seeds without the handshake
  response);
- NODE_CAPTURE_DIR: record_proxy.py's files for a data node's link to the management node
  (both directions become frame seeds, raw and frame by frame in the sealed form);
- DATAD_DATA_DIR: a data node's data directory after it wrote a local checkpoint (checkpoint
  seeds, raw and sealed) and Raft log segments (wal seeds, raw and sealed).

The seed formats are those documented in crates/fuzzing/src/*.rs.
"""
import glob, os, struct, sys

SEEDS = "fuzz/seeds"
RAW_LIMIT = 16 << 10


def write(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def mysql_seeds(capture):
    k = 0
    for path in sorted(glob.glob(os.path.join(capture, "*-c2s"))):
        data = open(path, "rb").read()
        if len(data) < 4:
            continue
        k += 1
        data = data[:RAW_LIMIT]
        # The whole stream, cut into reads of 7 bytes (cut byte 6) and in one read (0xFF).
        write("mysql_handshake", "client-%d-reads7" % k, bytes([6]) + data)
        write("mysql_handshake", "client-%d-whole" % k, bytes([0xFF]) + data)
        first = 4 + int.from_bytes(data[0:3], "little")
        # Commands after the target's own login: with DEPRECATE_EOF and multi-statements (3), and
        # without either, in one read (0xF8).
        write("mysql_packets", "client-%d-eof-multi" % k, bytes([3]) + data[first:])
        write("mysql_packets", "client-%d-plain" % k, bytes([0xF8]) + data[first:])


def frames(stream):
    at = 0
    while at + 8 <= len(stream):
        n = int.from_bytes(stream[at:at + 4], "big")
        if at + 8 + n > len(stream):
            break
        yield stream[at + 8:at + 8 + n]
        at += 8 + n


def frame_seeds(capture):
    for path in sorted(glob.glob(os.path.join(capture, "*-*"))):
        data = open(path, "rb").read()
        if not data:
            continue
        name = os.path.basename(path)
        write("frame", "stream-" + name, bytes([0]) + data[:RAW_LIMIT])
        seen = set()
        for i, payload in enumerate(frames(data)):
            # One sealed seed per distinct (size class, first bytes) so that every message kind
            # is kept without keeping hundreds of heartbeats.
            key = (payload[:3], len(payload).bit_length())
            if key in seen or len(payload) > RAW_LIMIT:
                continue
            seen.add(key)
            write("frame", "sealed-%s-%d" % (name, i), bytes([1]) + payload)


def checkpoint_seeds(data_dir):
    for manifest_path in sorted(glob.glob(os.path.join(data_dir, "lcp", "*", "MANIFEST")))[:2]:
        cid = os.path.basename(os.path.dirname(manifest_path))
        manifest = open(manifest_path, "rb").read()
        write("checkpoint", "manifest-%s" % cid, bytes([0]) + manifest)
        payload_len = struct.unpack_from("<I", manifest, 12)[0]
        payload = manifest[16:16 + payload_len]
        records, count = b"", 0
        for data_path in sorted(glob.glob(os.path.join(os.path.dirname(manifest_path), "*"))):
            if os.path.basename(data_path).startswith("MANIFEST"):
                continue
            data = open(data_path, "rb").read()
            write("checkpoint", "datafile-%s-%s" % (cid, os.path.basename(data_path)), bytes([1]) + data[:RAW_LIMIT])
            at = 32
            while at + 16 <= len(data):
                _, n, c, _ = struct.unpack_from("<IIII", data, at)
                records += data[at + 16:at + 16 + n]
                count += c
                at += 16 + n
        write("checkpoint", "sealed-%s" % cid,
              bytes([3]) + struct.pack("<I", len(payload)) + payload + struct.pack("<I", count) + records)


def wal_seeds(data_dir):
    for group_dir in sorted(glob.glob(os.path.join(data_dir, "raft", "*"))):
        group = os.path.basename(group_dir)
        sealed = b""
        for i, segment in enumerate(sorted(glob.glob(os.path.join(group_dir, "*.wal")))):
            data = open(segment, "rb").read()
            if i == 0:
                write("wal", "segment-group%s" % group, bytes([0]) + data[:RAW_LIMIT])
            else:
                sealed += struct.pack("<I", 0) + bytes([0xFF])
            at = 48
            while at + 9 <= len(data) and len(sealed) < RAW_LIMIT:
                n = struct.unpack_from("<I", data, at)[0]
                if n == 0 and data[at + 8] == 0:
                    break
                sealed += struct.pack("<I", n) + data[at + 8:at + 9 + n]
                at += 9 + n
        write("wal", "sealed-group%s" % group, bytes([1]) + sealed)


if __name__ == "__main__":
    mysql_dir, node_dir, datad_dir = sys.argv[1:4]
    mysql_seeds(mysql_dir)
    frame_seeds(node_dir)
    checkpoint_seeds(datad_dir)
    wal_seeds(datad_dir)
