"""lgd's TensorBoard event files, read by an independent TFRecord + protobuf reader and by
TensorBoard's own (the tensorboard package, where installed: tests/python/references.py).

usage: tensorboard_reader_test.py TB_WRITE_TOOL

Checks every record's two masked CRC-32C values (CRC computed here bit by bit), the
file_version event, and each scalar's tag, step and value.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

from references import tensorboard_scalars

from tb_events import crc32c, read_records, scalars as read_scalars


assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value

with tempfile.TemporaryDirectory() as tmp:
    path = subprocess.run([sys.argv[1], tmp], check=True, capture_output=True, text=True).stdout.strip()
    events = read_records(path)
    by_tensorboard = tensorboard_scalars(Path(path).parent)

scalars = []
for tag, step, value, wall in read_scalars(events):
    assert wall > 1.6e9, wall
    scalars.append((tag, step, value))

expected = []
for step in range(10):
    expected += [("loss", step, 1.0 / (step + 1)), ("lr", step, 0.1 * step)]
expected.append(("a/b c", 7, -2.5))
assert len(scalars) == len(expected), (len(scalars), len(expected))
for (tag, step, value), (etag, estep, evalue) in zip(scalars, expected):
    assert tag == etag and step == estep and abs(value - evalue) < 1e-6, (tag, step, value)
print(f"ok: {len(events)} records, CRCs valid, {len(scalars)} scalars as written")
if by_tensorboard is not None:
    got = sorted((tag, step, value) for tag, values in by_tensorboard.items() for step, value in values)
    want = sorted(expected)
    assert len(got) == len(want), (len(got), len(want))
    for (tag, step, value), (etag, estep, evalue) in zip(got, want):
        assert tag == etag and step == estep and abs(value - evalue) < 1e-6, (tag, step, value)
    print(f"ok: TensorBoard's EventAccumulator reads the same {len(got)} scalars")
