"""The ``.prnn`` file format (specified in docs/format.md): the header, its packing and parsing,
the model fingerprint and the checksums. No coding here (see :mod:`.coder`).

A file is ``header | CRC-32 of the header | payload (uint32 words) | CRC-32 of the payload``.
The header is compact binary (about 45 bytes without names), because per-file overhead matters
for small images: 1000 binarized MNIST digits code to about 17 kB.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..errors import FormatError, ModelMismatchError

MAGIC = b"\x89PRN"                # the high bit catches 7-bit transfers
VERSION = 2                       # 2 records the encoder's torch thread count; 1 is still read
READABLE = (1, 2)
DEFAULT_CHUNK = 128               # images coded together (one cached-sampler batch)
FIXED = struct.Struct("<4sB8s8s4s")  # magic, version, model fingerprint, pixel checksum, environment
CRC = struct.Struct("<I")
MAX_NAMES = 64 << 20              # decompressed names, bytes
MAX_SIDE = 1 << 16                # image height / width
MAX_LEVELS = 1 << 24              # the range coder's probability resolution
MAX_VALUES = 1 << 34              # values in one file (bounds the decoding time of crafted headers)


class NamedImage(NamedTuple):
    name: str | None           # as given to compress(), None when no names were given
    image: torch.Tensor        # int64 (C, H, W) on the CPU


class DecodedImage(NamedImage):
    """One decoded image: unpacks as ``(name, image)``; ``label`` is its label for a conditional
    model (coded under the model's prior before the image), else None."""

    def __new__(cls, name: str | None, image: torch.Tensor, label: int | None = None):
        self = super().__new__(cls, name, image)
        self.label = label
        return self


@dataclass(frozen=True)
class Encoded:
    """What :func:`encode` returns: the file and the code length the model predicted for it."""

    data: bytes
    values: int                # number of coded values (sum of C*H*W)
    nll_bits: float            # -log2 p(images) under the model (the sampler's float64 softmax)
    header_bytes: int          # everything but the payload words (header, its CRC, payload CRC)

    @property
    def bits_per_dim(self) -> float:
        return 8 * len(self.data) / self.values

    @property
    def nll_bits_per_dim(self) -> float:
        return self.nll_bits / self.values


@dataclass(frozen=True)
class Header:
    """The parsed header of a compressed file (see docs/format.md)."""

    version: int
    fingerprint: str           # the model's fingerprint() truncated to 64 bits (16 hex digits)
    pixels_checksum: str       # SHA-256 of the pixel values truncated to 64 bits (hex)
    environment: str           # environment_tag() of the encoder (8 hex digits), informational
    channels: int
    levels: int
    chunk: int
    threads: int | None        # the encoder's torch thread count (the decoder uses it); None in version 1
    shapes: tuple[tuple[int, int, int], ...]   # (C, H, W) per image, in input order
    names: tuple[str, ...] | None
    payload_words: int
    header_bytes: int          # size of the file without the payload words

    @property
    def count(self) -> int:
        return len(self.shapes)

    @property
    def values(self) -> int:
        return sum(c * h * w for c, h, w in self.shapes)


# --------------------------------------------------------------------------------------------
# Model fingerprint, checksums, environment
# --------------------------------------------------------------------------------------------

def fingerprint(model) -> str:
    """SHA-256 (hex) of a model: ``b"pixelrnn-model\\0"``, its canonical JSON config (sorted keys,
    separators ``,`` and ``:``), then for every ``state_dict`` entry in sorted key order
    ``NUL key NUL dtype NUL shape NUL raw-bytes`` (dtype like ``float32``, shape like ``[16, 1, 7,
    7]``, the tensor's bytes in C order, native byte order: little-endian on every supported
    machine). Two models with the same fingerprint compute the same logits on the same machine."""
    h = hashlib.sha256()
    h.update(b"pixelrnn-model\0")
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, separators=(",", ":")).encode())
    state = model.state_dict()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        h.update(f"\0{key}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pixels_dtype(levels: int) -> np.dtype:
    """The dtype in which the pixel checksum sees the values: uint8 up to 256 levels, then
    little-endian uint16 / uint32."""
    return np.dtype(np.uint8) if levels <= 256 else np.dtype("<u2") if levels <= 65536 else np.dtype("<u4")


def pixels_checksum(images: Sequence[torch.Tensor], levels: int) -> bytes:
    """The first 8 bytes of the SHA-256 of the values of every image (C, H, W), in order."""
    h = hashlib.sha256()
    dt = pixels_dtype(levels)
    for im in images:
        h.update(np.ascontiguousarray(im.cpu().numpy().astype(dt)).tobytes())
    return h.digest()[:8]


def environment_tag(device: torch.device | str = "cpu") -> str:
    """8 hex digits identifying the software that computes the probabilities: the first 4 bytes
    of the SHA-256 of ``"pixelrnn V; torch V; constriction V; DEVICE_TYPE"`` (on CUDA also the GPU
    model and the CUDA and cuDNN versions, whose kernels differ). Stored in every file to explain
    a failed decode; files from another environment may still decode."""
    from .. import __version__
    device = torch.device(device)
    text = (f"pixelrnn {__version__}; torch {torch.__version__}; constriction {_version('constriction')}; "
            f"{device.type}")
    if device.type == "cuda":
        text += (f"; {torch.cuda.get_device_name(device)}; cuda {torch.version.cuda}; "
                 f"cudnn {torch.backends.cudnn.version()}")
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def check_model(model, header: Header) -> None:
    """ModelMismatchError unless ``model`` is the model the file was compressed with."""
    fp = fingerprint(model)[:16]
    same_kind = (header.channels, header.levels) == (model.channels, model.levels)
    if fp == header.fingerprint and not same_kind:
        raise FormatError("corrupted header: channels/levels do not match the model fingerprint")
    if fp != header.fingerprint:
        what = ("same channels and levels, other weights or architecture" if same_kind else
                f"{header.channels} channel(s), {header.levels} levels; this one has "
                f"{model.channels}, {model.levels}")
        raise ModelMismatchError(f"the file was compressed with a different model ({what}; model "
                                 f"fingerprint {header.fingerprint}, this model's is {fp})")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def shape_runs(shapes) -> list[list[int]]:
    """Run-length coded shapes (C, H, W): [[H, W, count], ...] in input order (C is the model's)."""
    runs: list[list[int]] = []
    for _, h, w in shapes:
        if runs and runs[-1][:2] == [h, w]:
            runs[-1][2] += 1
        else:
            runs.append([h, w, 1])
    return runs


def _put_uvarint(out: bytearray, v: int) -> None:
    """Unsigned LEB128: 7 bits per byte, least significant first, high bit = more bytes follow."""
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return


def pack_header(*, model_fp: bytes, pixels: bytes, environment: bytes, channels: int,
                levels: int, chunk: int, threads: int | None, payload_words: int, runs, names) -> bytes:
    """The header bytes, its CRC-32 included (see docs/format.md); ``threads=None`` writes the
    version-1 layout (no thread count), which only tests need."""
    out = bytearray(FIXED.pack(MAGIC, 1 if threads is None else VERSION, model_fp, pixels, environment))
    counts = (channels, levels, chunk) + (() if threads is None else (threads,))
    for v in counts + (payload_words, len(runs)):
        _put_uvarint(out, v)
    for run in runs:
        for v in run:
            _put_uvarint(out, v)
    packed = b"" if names is None else zlib.compress("\0".join(names).encode("utf-8"), 9)
    _put_uvarint(out, len(packed))
    out += packed
    return bytes(out) + CRC.pack(zlib.crc32(out))


def pack_file(header: bytes, payload: bytes) -> bytes:
    """A whole file: the packed header, the payload words and the payload's CRC-32."""
    return header + payload + CRC.pack(zlib.crc32(payload))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

class _Reader:
    """Reads the header fields, saying "truncated" when the data ends inside them."""

    def __init__(self, data: memoryview, pos: int):
        self.data, self.pos = data, pos

    def uvarint(self) -> int:
        v = shift = 0
        for _ in range(10):  # < 2**70: more bytes can only be damage
            if self.pos >= len(self.data):
                raise FormatError("truncated file (it ends inside the header)")
            byte = self.data[self.pos]
            self.pos += 1
            v |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return v
        raise FormatError("corrupted header: an integer field is too long")

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise FormatError("truncated file (it ends inside the header)")
        self.pos += n
        return self.data[self.pos - n:self.pos]


def read_fields(data: memoryview, version: int) -> tuple[tuple, int]:
    """The raw variable-length header fields (channels, levels, chunk, threads (None in version 1),
    payload words, shape runs, compressed names) of a file with a valid fixed part, and where the
    header ends (its CRC)."""
    r = _Reader(data, FIXED.size)
    channels, levels, chunk = (r.uvarint() for _ in range(3))
    threads = r.uvarint() if version >= 2 else None
    words, nruns = r.uvarint(), r.uvarint()
    runs = []
    for _ in range(nruns):  # each run takes >= 3 bytes, so this loop is bounded by the file size
        runs.append((r.uvarint(), r.uvarint(), r.uvarint()))
    packed = r.take(r.uvarint())
    return (channels, levels, chunk, threads, words, runs, packed), r.pos


def _check(v: int, what: str, lo: int, hi: int) -> int:
    if not lo <= v <= hi:
        raise FormatError(f"corrupted header: bad {what} {v}")
    return v


def _fixed_part(data) -> tuple[memoryview, int, bytes, bytes, bytes]:
    """(the file as bytes, version, model fingerprint, pixel checksum, environment) after checking
    the magic bytes and the version."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"expected the bytes of a compressed file, got {type(data).__name__}")
    data = memoryview(data).cast("B")
    if len(data) == 0:
        raise FormatError("empty file: not a pixelrnn compressed file")
    start = bytes(data[:len(MAGIC)])
    if start != MAGIC:
        if MAGIC.startswith(start):
            raise FormatError("truncated file (it ends inside the magic bytes)")
        raise FormatError("not a pixelrnn compressed file (bad magic bytes)")
    if len(data) < FIXED.size:
        raise FormatError("truncated file (it ends inside the header)")
    _, version, fp, pixels, env = FIXED.unpack_from(data)
    if version not in READABLE:
        raise FormatError(f"unsupported format version {version} (this pixelrnn reads versions "
                          f"{', '.join(map(str, READABLE))}); or a corrupted file")
    return data, version, fp, pixels, env


def _shapes(channels: int, runs) -> list[tuple[int, int, int]]:
    """The (C, H, W) of every image from the checked shape runs."""
    shapes: list[tuple[int, int, int]] = []
    values = 0
    for h, w, k in runs:
        _check(h, "height", 1, MAX_SIDE)
        _check(w, "width", 1, MAX_SIDE)
        values += channels * h * w * _check(k, "image count", 1, MAX_VALUES)
        if values > MAX_VALUES:
            raise FormatError(f"corrupted header: implausibly many values (over {MAX_VALUES})")
        shapes.extend([(channels, h, w)] * k)
    if not shapes:
        raise FormatError("corrupted header: no images")
    return shapes


def _names(packed: memoryview, count: int) -> tuple[str, ...] | None:
    """The image names of the header (None when there are none)."""
    if not len(packed):
        return None
    try:
        z = zlib.decompressobj()
        raw = z.decompress(packed, MAX_NAMES)
        names = tuple(raw.decode("utf-8").split("\0"))
    except (zlib.error, UnicodeDecodeError):
        raise FormatError("corrupted header: unreadable image names") from None
    if z.unconsumed_tail or not z.eof or z.unused_data:
        raise FormatError("corrupted header: unreadable image names")
    if len(names) != count or not all(names):
        raise FormatError("corrupted header: bad image names")
    return names


def _payload(data: memoryview, end: int, words: int) -> memoryview:
    """The payload words behind a header that ends at ``end``, its size and CRC-32 checked."""
    payload_end = end + CRC.size + 4 * words
    if len(data) < payload_end + CRC.size:
        raise FormatError(f"truncated file: {len(data)} bytes, expected {payload_end + CRC.size}")
    if len(data) > payload_end + CRC.size:
        raise FormatError(f"corrupted file: {len(data) - payload_end - CRC.size} unexpected trailing bytes")
    payload = data[end + CRC.size:payload_end]
    if zlib.crc32(payload) != CRC.unpack_from(data, payload_end)[0]:
        raise FormatError("corrupted file: payload checksum mismatch")
    return payload


def split_file(data) -> tuple[Header, memoryview]:
    """(the parsed header, the payload words) of a compressed file, every check done: magic,
    version, both CRC-32s, the field ranges, the sizes. FormatError when it is not a valid file."""
    data, version, fp, pixels, env = _fixed_part(data)
    # read the structure first, check the CRC, then the values
    (channels, levels, chunk, threads, words, runs, packed), end = read_fields(data, version)
    if zlib.crc32(data[:end]) != CRC.unpack(_Reader(data, end).take(CRC.size))[0]:
        raise FormatError("corrupted file: header checksum mismatch")
    channels = _check(channels, "channel count", 1, 1 << 16)
    levels = _check(levels, "level count", 2, MAX_LEVELS)
    chunk = _check(chunk, "chunk size", 1, 1 << 32)
    if threads is not None:
        threads = _check(threads, "thread count", 1, 4096)
    shapes = _shapes(channels, runs)
    names = _names(packed, len(shapes))
    payload = _payload(data, end, words)
    header = Header(version=version, fingerprint=fp.hex(), pixels_checksum=pixels.hex(),
                    environment=env.hex(), channels=channels, levels=levels, chunk=chunk,
                    threads=threads, shapes=tuple(shapes), names=names, payload_words=words,
                    header_bytes=end + 2 * CRC.size)
    return header, payload


def read_header(data) -> Header:
    """Parse and verify a compressed file (magic, version, both checksums, sizes) without
    decoding it; FormatError when it is not a valid file."""
    return split_file(data)[0]
