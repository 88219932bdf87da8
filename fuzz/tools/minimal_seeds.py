#!/usr/bin/env python3
"""Writes small hand-built seeds that give each binary target a valid starting point: a MySQL
login and one of each command, inter-node frames, a checkpoint data file and a log segment.
Seeds recorded from a real cluster (seeds_from_capture.py) complement them.
Usage: python3 fuzz/tools/minimal_seeds.py (from the repository root)."""
import os, struct

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def write(target, name, data):
    os.makedirs("fuzz/seeds/" + target, exist_ok=True)
    open("fuzz/seeds/%s/%s" % (target, name), "wb").write(data)

def packet(payload, seq):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload

def lenenc(b):
    return bytes([len(b)]) + b

# ----- MySQL -----
CAPS = 0x1 | 0x200 | 0x8000 | 0x80000 | 0x200000 | 0x10000 | 0x20000 | 0x40000 | 0x2000 | 0x100000 | 0x1000000
def handshake(user, answer, caps=CAPS):
    attrs = lenenc(b"_client_name") + lenenc(b"libmariadb") + lenenc(b"program_name") + lenenc(b"mysql")
    return (struct.pack("<IIB", caps, 16 << 20, 45) + bytes(23) + user + b"\0" + lenenc(answer)
            + b"mysql_native_password\0" + lenenc(attrs))

def commands():
    out = b""
    out += packet(b"\x03select @@version_comment limit 1", 0)
    out += packet(b"\x03SET NAMES utf8mb4; SELECT 1; fail now", 0)
    out += packet(b"\x16SELECT ?, ?, ?", 0)                       # COM_STMT_PREPARE
    out += packet(b"\x18" + struct.pack("<IH", 1, 2) + b"long data", 0)  # COM_STMT_SEND_LONG_DATA
    execute = (b"\x17" + struct.pack("<IBI", 1, 0, 1) + b"\x00" + b"\x01"
               + struct.pack("<HHH", 8, 0x0c, 0xfe) + struct.pack("<q", -5)
               + bytes([7]) + struct.pack("<HBBBBB", 2024, 2, 29, 23, 59, 58))
    out += packet(execute, 0)
    out += packet(b"\x1a" + struct.pack("<I", 1), 0)               # COM_STMT_RESET
    out += packet(b"\x19" + struct.pack("<I", 1), 0)               # COM_STMT_CLOSE
    out += packet(b"\x0e", 0)                                      # COM_PING
    out += packet(b"\x02calmail", 0)                               # COM_INIT_DB
    out += packet(b"\x04account\0", 0)                             # COM_FIELD_LIST
    out += packet(b"\x1b\x01\x00", 0)                              # COM_SET_OPTION
    out += packet(b"\x09", 0)                                      # COM_STATISTICS
    out += packet(b"\x1f", 0)                                      # COM_RESET_CONNECTION
    out += packet(b"\x11fuzz\0\x00calmail\0" + struct.pack("<H", 45) + b"mysql_native_password\0", 0)  # COM_CHANGE_USER
    out += packet(b"\x01", 0)                                      # COM_QUIT
    return out

write("mysql_handshake", "min-login-open", bytes([0xFF]) + packet(handshake(b"fuzz", b""), 1) + commands())
write("mysql_handshake", "min-login-refused", bytes([3]) + packet(handshake(b"exim", bytes(range(20))), 1))
# A caching_sha2 account answered with a native-password scramble: the server switches the client.
write("mysql_handshake", "min-auth-switch", bytes([0xFF]) + packet(handshake(b"sha_exim", bytes(20)), 1) + packet(bytes(32), 3))
write("mysql_packets", "min-commands-eof", bytes([3]) + commands())
write("mysql_packets", "min-commands-plain", bytes([0xF8]) + commands())

# ----- Inter-node frames (protobuf by hand: Frame{request_id, body}) -----
def field(number, wire, payload):
    key = bytes([(number << 3) | wire])
    return key + (bytes([len(payload)]) + payload if wire == 2 else payload)
heartbeat = field(1, 0, b"\x01") + field(14, 2, b"")
raft_message = field(1, 0, b"\x03") + field(2, 0, b"\x02") + field(3, 0, b"\x01") + field(4, 0, b"\x05")
raft = field(1, 0, b"\x07") + field(10, 2, field(1, 0, b"\x01") + field(2, 2, raft_message))
def sealed_frame(payload):
    return struct.pack(">II", len(payload), crc32c(payload)) + payload
write("frame", "min-sealed-heartbeat", b"\x01" + heartbeat)
write("frame", "min-sealed-raft", b"\x01" + raft)
write("frame", "min-stream", b"\x00" + sealed_frame(heartbeat) + sealed_frame(raft))

# ----- A checkpoint data file: header, one block of records -----
header = b"CAIRNLCP" + struct.pack("<HHI", 2, 1, 0) + bytes(12)
header += struct.pack("<I", crc32c(header))
records = (b"\x01" + struct.pack("<II", 1, 0) + b"\x02" + struct.pack("<II", 0, 3) + b"abc"
           + b"\x03" + struct.pack("<I", 0) + b"\x04")
block_head = b"CBLK" + struct.pack("<II", len(records), 4)
block = block_head + struct.pack("<I", crc32c(records, crc32c(block_head))) + records
write("checkpoint", "min-datafile", b"\x01" + header + block)

# ----- A log segment: header, then records of kinds 1..8 with small payloads -----
ident = struct.pack("<QQQ", 1, 2, 3)
seg = b"CAIRNWAL" + struct.pack("<I", 1) + ident + struct.pack("<Q", 1)
seg += struct.pack("<I", crc32c(seg))
write("wal", "min-segment-empty", b"\x00" + seg)
sealed = b""
for kind in range(1, 9):
    payload = struct.pack("<QQ", 1, 1) + bytes(8)
    sealed += struct.pack("<I", len(payload)) + bytes([kind]) + payload
write("wal", "min-sealed-kinds", b"\x01" + sealed)
