"""An independent reader of TensorBoard event files: TFRecord framing with both masked
CRC-32C values checked (CRC computed bit by bit) and a minimal protobuf decoder."""
import struct


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(buf):
    """(field number, wire type, value) of a protobuf message."""
    i, out = 0, []
    while i < len(buf):
        key, i = varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wt}")
        out.append((field, wt, v))
    return out


def read_records(path):
    """The Event messages of a file, as lists of (field, wire type, value); AssertionError on
    a bad CRC."""
    data = open(path, "rb").read()
    i, events = 0, []
    while i < len(data):
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[i + 8:i + 12])
        assert len_crc == masked(header), f"{path}: length CRC of record at {i}"
        body = data[i + 12:i + 12 + length]
        (body_crc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        assert body_crc == masked(body), f"{path}: data CRC of record at {i}"
        events.append(fields(body))
        i += 16 + length
    return events


def scalars(events):
    """(tag, step, value, wall time) of every scalar event after the file_version one
    (a SessionLog event, see restarts(), is not a scalar)."""
    first = {f: v for f, _, v in events[0]}
    assert first[3] == b"brain.Event:2", first
    out = []
    for ev in events[1:]:
        d = {f: v for f, _, v in ev}
        if 7 in d:
            continue
        wall = struct.unpack("<d", d[1])[0]
        (value_msg,) = [v for f, _, v in fields(d[5]) if f == 1]
        value = {f: v for f, _, v in fields(value_msg)}
        out.append((value[1].decode(), d.get(2, 0), struct.unpack("<f", value[2])[0], wall))
    return out


def restarts(events):
    """Steps of the SessionLog{status: START} events (Event field 7, SessionLog.status field 1
    = 1), after which TensorBoard drops what earlier files logged at that step and later."""
    out = []
    for ev in events[1:]:
        d = {f: v for f, _, v in ev}
        if 7 in d:
            status = {f: v for f, _, v in fields(d[7])}
            assert status.get(1) == 1, f"SessionLog status {status}"
            out.append(d.get(2, 0))
    return out
