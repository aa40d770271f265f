"""Lossless image compression with a trained model: an exact likelihood is a code length.

    from pixelrnn.compression import compress, decompress, fingerprint
    data = compress(model, images, names=["a.png", "b.png"])   # bytes (the .prnn format)
    for name, image in decompress(model, data):                 # int64 (C, H, W) per image
        ...

Every value is entropy-coded with the model's exact conditional distribution (the softmax of its
logits, computed in float64) by constriction's range coder (``constriction.stream.queue``,
``Categorical(perfect=False)``, 24-bit probabilities), one batched ``encode``/``decode`` call per
step of the cached sampler with all the positions of that step. The file format is specified in
``docs/format.md``.

Bit-exact by construction
-------------------------
The encoder and the decoder must quantize *identical* probability tables. Logits of a full
teacher-forced pass and of the cached sampler differ by float rounding (~1e-7), so the encoder
does not use the forward pass: both sides run the same cached sampler
(:func:`pixelrnn.sampling.core.generate`) with the random draw replaced by a callback (``decide``)
— the decoder's callback decodes the values of a step, the encoder's returns the true values of
that step (and encodes them). The sampler starts from the same all-zero state on both sides and
sees the same values in the same order, so it performs the same floating-point operations on the
same numbers: the logits, hence the probabilities, are bit-for-bit equal as long as the
computation is deterministic. Batch composition matters (BLAS may block a matrix product
differently for another number of rows), so images are coded in fixed groups: images of one shape
(C, H, W), in input order, in chunks of ``chunk`` images (recorded in the header); the decoder
rebuilds exactly the same chunks. Encoding therefore costs one cached pass (about one forward
pass, see SPEC §2), like decoding.

What must match between encoder and decoder: the model (checked with :func:`fingerprint`: SHA-256
of the config and every weight), the device type and the numerical library (torch build, CPU
instruction set). A checksum (SHA-256, 64 bits kept) of the decoded pixels is verified, so a
mismatch is always detected (FormatError) and never returns wrong pixels. The torch thread count
can change a rounding step in BLAS, and with it a quantized probability, so the file records the
encoder's count (format version 2) and the decoder computes with it, whatever its own setting;
see docs/format.md.

The header is compact binary (about 45 bytes without names), because per-file overhead matters
for small images: 1000 binarized MNIST digits code to about 17 kB.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import numbers
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from .errors import ArgumentError, FormatError, ModelMismatchError

__all__ = ["FormatError", "ModelMismatchError", "Header", "DecodedImage", "Encoded", "MAGIC",
           "VERSION", "DEFAULT_CHUNK", "fingerprint", "environment_tag", "compress", "encode",
           "decompress", "read_header", "check_model", "pixels_dtype"]

MAGIC = b"\x89PRN"                # the high bit catches 7-bit transfers
VERSION = 2                       # 2 records the encoder's torch thread count; 1 is still read
_READABLE = (1, 2)
DEFAULT_CHUNK = 128               # images coded together (one cached-sampler batch)
_FIXED = struct.Struct("<4sB8s8s4s")  # magic, version, model fingerprint, pixel checksum, environment
_CRC = struct.Struct("<I")
_MAX_NAMES = 64 << 20             # decompressed names, bytes
_MAX_SIDE = 1 << 16               # image height / width
_MAX_LEVELS = 1 << 24             # the range coder's probability resolution
_MAX_VALUES = 1 << 34             # values in one file (bounds the decoding time of crafted headers)


class DecodedImage(NamedTuple):
    name: str | None           # as given to compress(), None when no names were given
    image: torch.Tensor        # int64 (C, H, W) on the CPU


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
# Model fingerprint
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


def _pixels_checksum(images: Sequence[torch.Tensor], levels: int) -> bytes:
    """The first 8 bytes of the SHA-256 of the values of every image, in order."""
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
    from . import __version__
    device = torch.device(device)
    text = (f"pixelrnn {__version__}; torch {torch.__version__}; constriction {_version('constriction')}; "
            f"{device.type}")
    if device.type == "cuda":
        text += (f"; {torch.cuda.get_device_name(device)}; cuda {torch.version.cuda}; "
                 f"cudnn {torch.backends.cudnn.version()}")
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------------------------
# Coding: the cached sampler with an entropy coder in place of the random draw
# --------------------------------------------------------------------------------------------

def _constriction():
    try:
        import constriction
    except ImportError:  # pragma: no cover - a declared dependency
        raise ArgumentError("compression needs the 'constriction' package (pip install constriction)") from None
    return constriction.stream


def _probabilities(logits: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """(log-probabilities float64 (N, L), probabilities as a float64 numpy array (N, L)): the
    model's exact conditionals, computed the same way on both sides."""
    logp = torch.log_softmax(logits.to(torch.float64), dim=-1)
    return logp, logp.exp().cpu().numpy()


def _plan(shapes: Sequence[tuple[int, int, int]], chunk: int) -> list[tuple[tuple[int, int, int], list[int]]]:
    """The coding order: images grouped by shape (groups in order of first appearance), each
    group in input order, cut into chunks of ``chunk`` images: [(shape, image indices)]."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for k, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(k)
    return [(shape, idx[a:a + chunk]) for shape, idx in groups.items() for a in range(0, len(idx), chunk)]


class _ProgressAll:
    """Progress over a whole file (values) from generate()'s per-chunk position callbacks."""

    def __init__(self, progress, total: int, desc: str):
        self.total, self.base, self.n, self.cb, self.bar = total, 0, 1, None, None
        if callable(progress):
            self.cb = progress
        elif progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="value", unit_scale=True, file=sys.stderr,
                            leave=False, dynamic_ncols=True, mininterval=0.25)
        self.last = 0

    def start_chunk(self, n: int) -> None:
        self.n, self.last = n, 0

    def __call__(self, done: int, chunk_total: int) -> None:  # positions of one image of a chunk
        step = (done - self.last) * self.n
        self.last = done
        self.base += step
        if self.bar is not None:
            self.bar.update(step)
        if self.cb is not None:
            self.cb(self.base, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(model, plan, make_decide: Callable, progress, desc: str, total: int) -> dict[int, torch.Tensor]:
    """Run the cached sampler once per chunk with ``make_decide(shape, indices)`` as its value
    callback; returns {image index: int64 (C, H, W) on the CPU}."""
    method = "cached" if model.has_cached_sampler else "naive"
    prog = _ProgressAll(progress, total, desc)
    out: dict[int, torch.Tensor] = {}
    try:
        for shape, idx in plan:
            n = len(idx)
            prog.start_chunk(n)
            zeros = torch.zeros(n, *shape, dtype=torch.long, device=model.device)
            images, _, _ = model.generate(zeros, None, method=method, decide=make_decide(shape, idx),
                               progress=prog if progress else False)
            for k, im in zip(idx, images.cpu()):
                out[k] = im
    finally:
        prog.close()
    return out


def _check_model_kind(model) -> None:
    """ValueError for models the codec cannot drive: one network, unconditional, is needed."""
    if getattr(model, "context_channels", 0):
        raise ArgumentError("cannot compress with a conditional network (it needs a context map)")


def _check_images(model, images, names) -> tuple[list[torch.Tensor], list[str] | None]:
    """int64 (C, H, W) CPU tensors with values in [0, levels), and the names (or None)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ArgumentError(f"expected a (N, C, H, W) tensor or a list of (C, H, W) tensors, got a "
                             f"tensor of shape {tuple(images.shape)}")
        images = list(images)
    elif not isinstance(images, (list, tuple)):
        raise ArgumentError(f"expected images as a (N, C, H, W) tensor or a list of (C, H, W) tensors, "
                         f"got {type(images).__name__}")
    if not images:
        raise ArgumentError("no images to compress")
    _check_model_kind(model)
    checked = []
    for k, im in enumerate(images):
        if isinstance(im, np.ndarray):
            im = torch.from_numpy(im)
        if not isinstance(im, torch.Tensor):
            raise ArgumentError(f"image {k}: expected a torch.Tensor, got {type(im).__name__}")
        if im.dim() == 2 and model.channels == 1:
            im = im.unsqueeze(0)
        if im.dim() != 3:
            raise ArgumentError(f"image {k}: expected shape (C, H, W), got {tuple(im.shape)}")
        try:
            x = model.check_input(im.unsqueeze(0))[0]
        except ValueError as e:
            raise ArgumentError(f"image {k}: {e}") from None
        if x.shape[1] > _MAX_SIDE or x.shape[2] > _MAX_SIDE:
            raise ArgumentError(f"image {k}: {x.shape[1]}x{x.shape[2]} is too large "
                             f"(at most {_MAX_SIDE} per side)")
        checked.append(x.cpu())
    if names is not None:
        names = list(names)
        if len(names) != len(checked):
            raise ArgumentError(f"{len(names)} names for {len(checked)} images")
        for k, name in enumerate(names):
            if not isinstance(name, str) or not name or "\0" in name:
                raise ArgumentError(f"image {k}: a name must be a non-empty string without NUL, got {name!r}")
    return checked, names


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run with ``n`` torch CPU threads (None: leave them), then restore the count. BLAS may split
    its sums differently for another count, and one rounding step can change a quantized
    probability, so the decoder computes with the encoder's count."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def encode(model, images, names: Sequence[str] | None = None, *, chunk: int = DEFAULT_CHUNK,
           progress: bool | Callable[[int, int], None] = False, threads: int | None = None) -> Encoded:
    """Compress ``images`` (an int (N, C, H, W) tensor, or a list of int (C, H, W) tensors of any
    sizes the model accepts; (H, W) for a 1-channel model) losslessly into one file; see
    :func:`compress`. Also returns the model's code length (NLL in bits) for comparison."""
    from .sampling.core import slab
    stream = _constriction()
    if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
        raise ArgumentError(f"chunk must be an integer >= 1, got {chunk!r}")
    chunk = int(chunk)
    if threads is None:
        threads = torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= 4096:
        raise ArgumentError(f"threads must be an integer in 1..4096, got {threads!r}")
    threads = int(threads)
    images, names = _check_images(model, images, names)
    shapes = [tuple(im.shape) for im in images]
    family = stream.model.Categorical(perfect=False)
    encoder = stream.queue.RangeEncoder()
    nll = torch.zeros((), dtype=torch.float64)
    dev = model.device

    def make_decide(shape, idx):
        truth = torch.stack([images[k] for k in idx]).to(dev).permute(1, 2, 3, 0).contiguous()  # (C, H, W, n)
        if hasattr(model, "_generate"):  # multi-scale: the small image first, then the rest
            f = model.factor
            return coder(truth[:, ::f, ::f].contiguous()), coder(truth)
        return coder(truth)

    def coder(truth):
        def decide(logits, c, t, lo, hi, s, unknown):
            nonlocal nll
            v = slab(truth, c, t, lo, hi, s)  # (S, n): the true values of this step
            flat = v.reshape(-1, 1)
            if unknown is not None:  # only the values the decoder does not know yet
                m = unknown.reshape(-1)
                logits, flat = logits[m], flat[m]
            logp, p = _probabilities(logits)
            if not torch.isfinite(logp).all():
                raise ArgumentError("the model produced non-finite logits: it cannot code these images")
            encoder.encode(flat.view(-1).cpu().numpy().astype(np.int32), family, p)
            nll -= logp.gather(1, flat).sum().cpu()
            return v
        return decide

    total = sum(c * h * w for c, h, w in shapes)
    with _torch_threads(threads):
        _run(model, _plan(shapes, chunk), make_decide, progress, "compressing", total)
    payload = encoder.get_compressed().astype("<u4").tobytes()
    head = _pack_header(model_fp=bytes.fromhex(fingerprint(model))[:8],
                        pixels=_pixels_checksum(images, model.levels),
                        environment=bytes.fromhex(environment_tag(dev)), channels=model.channels,
                        levels=model.levels, chunk=chunk, threads=threads,
                        payload_words=len(payload) // 4, runs=_runs(shapes), names=names)
    data = head + payload + _CRC.pack(zlib.crc32(payload))
    return Encoded(data=data, values=total, nll_bits=float(nll) / math.log(2),
                   header_bytes=len(data) - len(payload))


def compress(model, images, names: Sequence[str] | None = None, *, chunk: int = DEFAULT_CHUNK,
             progress: bool | Callable[[int, int], None] = False, threads: int | None = None) -> bytes:
    """Compress ``images`` losslessly with ``model``: the bytes of one ``.prnn`` file.

    ``images``: an int (N, C, H, W) tensor, or a list of int (C, H, W) tensors (sizes may differ;
    (H, W) for a 1-channel model) with values in [0, model.levels). ``names``: optional strings
    stored with the images (e.g. file names), returned by :func:`decompress`. ``chunk``: images
    coded together per cached-sampler batch (speed; the decoder uses the same). ``progress``: True
    for a tqdm bar on stderr, or ``f(done, total)`` over values. ``threads``: torch CPU threads to
    code with (default: the current count); the file records it and the decoder uses the same.
    Raises ValueError for bad input. Decoding needs the same model, device type and numerical
    library (docs/format.md)."""
    return encode(model, images, names, chunk=chunk, progress=progress, threads=threads).data


def _runs(shapes) -> list[list[int]]:
    """Run-length coded shapes: [[H, W, count], ...] in input order (C is the model's)."""
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


def _pack_header(*, model_fp: bytes, pixels: bytes, environment: bytes, channels: int,
                 levels: int, chunk: int, threads: int | None, payload_words: int, runs, names) -> bytes:
    """The header bytes, its CRC-32 included (see docs/format.md); ``threads=None`` writes the
    version-1 layout (no thread count), which only tests need."""
    out = bytearray(_FIXED.pack(MAGIC, 1 if threads is None else VERSION, model_fp, pixels, environment))
    counts = (channels, levels, chunk) + (() if threads is None else (threads,))
    for v in counts + (payload_words, len(runs)):
        _put_uvarint(out, v)
    for run in runs:
        for v in run:
            _put_uvarint(out, v)
    packed = b"" if names is None else zlib.compress("\0".join(names).encode("utf-8"), 9)
    _put_uvarint(out, len(packed))
    out += packed
    return bytes(out) + _CRC.pack(zlib.crc32(out))


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


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


def _read_fields(data: memoryview, version: int) -> tuple[tuple, int]:
    """The raw variable-length header fields (channels, levels, chunk, threads (None in version 1),
    payload words, shape runs, compressed names) of a file with a valid fixed part, and where the
    header ends (its CRC)."""
    r = _Reader(data, _FIXED.size)
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


def _split(data) -> tuple[Header, memoryview]:
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
    if len(data) < _FIXED.size:
        raise FormatError("truncated file (it ends inside the header)")
    _, version, fp, pixels, env = _FIXED.unpack_from(data)
    if version not in _READABLE:
        raise FormatError(f"unsupported format version {version} (this pixelrnn reads versions "
                          f"{', '.join(map(str, _READABLE))}); or a corrupted file")
    # read the structure first, check the CRC, then the values
    (channels, levels, chunk, threads, words, runs, packed), end = _read_fields(data, version)
    if zlib.crc32(data[:end]) != _CRC.unpack(_Reader(data, end).take(_CRC.size))[0]:
        raise FormatError("corrupted file: header checksum mismatch")
    channels = _check(channels, "channel count", 1, 1 << 16)
    levels = _check(levels, "level count", 2, _MAX_LEVELS)
    chunk = _check(chunk, "chunk size", 1, 1 << 32)
    if threads is not None:
        threads = _check(threads, "thread count", 1, 4096)
    shapes: list[tuple[int, int, int]] = []
    values = 0
    for h, w, k in runs:
        _check(h, "height", 1, _MAX_SIDE)
        _check(w, "width", 1, _MAX_SIDE)
        values += channels * h * w * _check(k, "image count", 1, _MAX_VALUES)
        if values > _MAX_VALUES:
            raise FormatError(f"corrupted header: implausibly many values (over {_MAX_VALUES})")
        shapes.extend([(channels, h, w)] * k)
    if not shapes:
        raise FormatError("corrupted header: no images")
    names = None
    if len(packed):
        try:
            z = zlib.decompressobj()
            raw = z.decompress(packed, _MAX_NAMES)
            if z.unconsumed_tail or not z.eof or z.unused_data:
                raise ArgumentError("bad length")
            names = tuple(raw.decode("utf-8").split("\0"))
        except (zlib.error, ValueError):
            raise FormatError("corrupted header: unreadable image names") from None
        if len(names) != len(shapes) or not all(names):
            raise FormatError("corrupted header: bad image names")
    payload_end = end + _CRC.size + 4 * words
    if len(data) < payload_end + _CRC.size:
        raise FormatError(f"truncated file: {len(data)} bytes, expected {payload_end + _CRC.size}")
    if len(data) > payload_end + _CRC.size:
        raise FormatError(f"corrupted file: {len(data) - payload_end - _CRC.size} unexpected trailing bytes")
    payload = data[end + _CRC.size:payload_end]
    if zlib.crc32(payload) != _CRC.unpack_from(data, payload_end)[0]:
        raise FormatError("corrupted file: payload checksum mismatch")
    header = Header(version=version, fingerprint=fp.hex(), pixels_checksum=pixels.hex(),
                    environment=env.hex(), channels=channels, levels=levels, chunk=chunk,
                    threads=threads, shapes=tuple(shapes), names=names, payload_words=words,
                    header_bytes=end + 2 * _CRC.size)
    return header, payload


def read_header(data) -> Header:
    """Parse and verify a compressed file (magic, version, both checksums, sizes) without
    decoding it; FormatError when it is not a valid file."""
    return _split(data)[0]


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


def decompress(model, data, *, progress: bool | Callable[[int, int], None] = False,
               stats: dict | None = None) -> list[DecodedImage]:
    """Decode a file written by :func:`compress` with the same ``model``: a list of
    ``DecodedImage(name, image)`` in the original order (``image`` int64 (C, H, W) on the CPU;
    ``name`` None when no names were stored). Raises :class:`FormatError` (a ValueError) for
    anything but a valid file of this model, :class:`ModelMismatchError` for another model; the
    checksum of the decoded pixels is verified, so wrong pixels are never returned. ``progress``:
    True for a tqdm bar on stderr, or ``f(done, total)`` over values. ``stats``: a dict that
    receives the header and the model's NLL in bits of the decoded images (``nll_bits``)."""
    stream = _constriction()
    header, payload = _split(data)
    check_model(model, header)
    _check_model_kind(model)
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    family = stream.model.Categorical(perfect=False)
    try:
        decoder = stream.queue.RangeDecoder(words)
    except Exception as e:  # noqa: BLE001 - whatever the binding raises for bad data
        raise FormatError(f"corrupted payload: {type(e).__name__}") from None
    nll = torch.zeros((), dtype=torch.float64)
    dev = model.device

    def make_decide(shape, idx):
        def decide(logits, c, t, lo, hi, s, unknown):
            nonlocal nll
            S = hi - lo + 1
            m = None if unknown is None else unknown.reshape(-1)
            logp, p = _probabilities(logits if m is None else logits[m])
            try:
                sym = decoder.decode(family, p)
            except Exception as e:  # noqa: BLE001
                raise FormatError(f"corrupted payload: the range decoder failed "
                                  f"({type(e).__name__})") from None
            v = torch.from_numpy(sym.astype(np.int64)).to(dev)
            if not torch.isfinite(logp).all() or int(v.min()) < 0 or int(v.max()) >= logits.shape[-1]:
                raise FormatError("corrupted payload: decoding produced invalid values")
            nll -= logp.gather(1, v.unsqueeze(1)).sum().cpu()
            if m is None:
                return v.view(S, -1)
            out = torch.zeros(logits.shape[0], dtype=torch.long, device=dev)
            out[m] = v
            return out.view(S, -1)
        return decide

    with _torch_threads(header.threads):
        decoded = _run(model, _plan(header.shapes, header.chunk), make_decide, progress, "decompressing",
                       header.values)
    images = [decoded[k] for k in range(header.count)]
    exhausted = decoder.maybe_exhausted()
    if _pixels_checksum(images, model.levels).hex() != header.pixels_checksum or not exhausted:
        if header.environment != environment_tag(dev):
            why = ("it was encoded with other software or on another kind of device (pixelrnn, "
                   "torch, constriction version, device type, or GPU model and CUDA version differ)")
        elif header.threads is None:
            why = ("corrupted payload, encoded on another CPU type, or decoded with another torch thread "
                   "count (format version 1 does not record it: retry with the encoder's)")
        else:
            why = "corrupted payload, or encoded on another CPU type"
            if dev.type == "cuda":
                why += " (or with other GPU math settings, e.g. TF32)"
        raise FormatError(f"decoded pixels do not match the file's checksum: {why}")
    if stats is not None:
        stats.update(header=header, nll_bits=float(nll) / math.log(2))
    names = header.names or (None,) * header.count
    return [DecodedImage(name, im) for name, im in zip(names, images)]
