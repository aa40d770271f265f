"""The coder: the model's cached sampler with constriction's range coder in place of the random
draw (see the package docstring for why both sides run the same sampler).

Only the model's public interface is used: ``model.generate(values, known, method=, decide=,
progress=)`` (``decide`` replaces the random draw, see :func:`pixelrnn.sampling.core.generate`),
``model.has_cached_sampler``, ``check_input``, ``channels``, ``levels`` and ``device``.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import ArgumentError, FormatError
from ..progress import as_progress
from .fileformat import (DEFAULT_CHUNK, MAX_SIDE, DecodedImage, Encoded, Header, check_model,
                         environment_tag, fingerprint, pack_file, pack_header, pixels_checksum,
                         shape_runs, split_file)

ProgressArg = bool | Callable[[int, int], None]  # see pixelrnn.progress.as_progress


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


def _run(model, plan, coder, progress: ProgressArg, desc: str, total: int) -> dict[int, torch.Tensor]:
    """Run the cached sampler once per chunk with ``coder.for_chunk(shape, indices)`` (the
    value callback and, for a conditional model, the chunk's labels, which it codes first);
    returns {image index: int64 (C, H, W) on the CPU}. ``progress`` counts values."""
    method = "cached" if model.has_cached_sampler else "naive"
    out: dict[int, torch.Tensor] = {}
    start = 0
    with as_progress(progress, total, desc) as prog:
        for shape, idx in plan:
            size = len(idx) * math.prod(shape)
            zeros = torch.zeros(len(idx), *shape, dtype=torch.long, device=model.device)
            decide, labels = coder.for_chunk(shape, idx)
            images, _, _ = model.generate(zeros, None, y=labels, method=method, decide=decide,
                                          progress=prog.part(start, size) if progress else False)
            for k, im in zip(idx, images.cpu()):
                out[k] = im
            start += size
    return out


def _stage_truths(model, truth: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The true values (C, H', W', n) of each stage of ``model.generate`` (``stage_values``)."""
    return tuple(v.permute(1, 2, 3, 0).contiguous() for v in model.stage_values(truth.permute(3, 0, 1, 2)))


def _as_list(images) -> list:
    """A (N, C, H, W) tensor or array, or a list of images, as a non-empty list of images."""
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
    return images


def _check_image(model, k: int, im) -> torch.Tensor:
    """Image number ``k`` as an int64 (C, H, W) CPU tensor with values in [0, levels)."""
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
    except ArgumentError as e:
        raise ArgumentError(f"image {k}: {e}") from None
    if x.shape[1] > MAX_SIDE or x.shape[2] > MAX_SIDE:
        raise ArgumentError(f"image {k}: {x.shape[1]}x{x.shape[2]} is too large "
                            f"(at most {MAX_SIDE} per side)")
    return x.cpu()


def _check_names(names, count: int) -> list[str] | None:
    if names is None:
        return None
    names = list(names)
    if len(names) != count:
        raise ArgumentError(f"{len(names)} names for {count} images")
    for k, name in enumerate(names):
        if not isinstance(name, str) or not name or "\0" in name:
            raise ArgumentError(f"image {k}: a name must be a non-empty string without NUL, got {name!r}")
    return names


def _check_int(name: str, v, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 or (hi is not None and v > hi):
        raise ArgumentError(f"{name} must be an integer {'>= 1' if hi is None else f'in 1..{hi}'}, got {v!r}")
    return int(v)


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


def _step_values(x: torch.Tensor, c: int, t: int, lo: int, hi: int, s: int) -> torch.Tensor:
    """The values (S, n) of a (C, H, W, n) tensor at the positions of one step of the sampler's
    schedule: channel c, pixels (i, t - s*i) for i = lo..hi (S = hi - lo + 1)."""
    if lo == hi:
        return x[c, lo, t - s * lo].unsqueeze(0)
    rows = torch.arange(lo, hi + 1, device=x.device)
    return x[c, rows, t - s * rows]


def _prior(model) -> tuple[torch.Tensor, np.ndarray] | None:
    """A conditional model's label prior as (log-probabilities, probabilities) in float64."""
    return _probabilities(model.prior.log()[None]) if model.classes else None


class _Encoder:
    """The encoder's ``decide``: returns the true values of each step and range-codes them with
    the model's probabilities; sums the model's NLL in nats. A conditional model's labels are
    coded first in each chunk, under its prior."""

    def __init__(self, model, images: list[torch.Tensor], labels: torch.Tensor | None):
        stream = _constriction()
        self.model, self.images, self.labels, self.prior = model, images, labels, _prior(model)
        self.family = stream.model.Categorical(perfect=False)
        self.coder = stream.queue.RangeEncoder()
        self.nll = torch.zeros((), dtype=torch.float64)

    def for_chunk(self, shape, idx):
        """(``decide`` for the images ``idx`` (one per stage of ``model.generate``), their labels)."""
        truth = torch.stack([self.images[k] for k in idx]).to(self.model.device)
        truth = truth.permute(1, 2, 3, 0).contiguous()  # (C, H, W, n)
        deciders = tuple(self._decide(t) for t in _stage_truths(self.model, truth))
        return deciders if len(deciders) > 1 else deciders[0], self._code_labels(idx)

    def _code_labels(self, idx) -> torch.Tensor | None:
        if self.labels is None:
            return None
        y = self.labels[idx]
        logp, p = self.prior
        self.coder.encode(y.numpy().astype(np.int32), self.family, np.repeat(p, len(y), axis=0))
        self.nll -= logp[0, y].sum().cpu()
        return y.to(self.model.device)

    def _decide(self, truth: torch.Tensor):
        def decide(logits, c, t, lo, hi, s, unknown):
            v = _step_values(truth, c, t, lo, hi, s)  # (S, n): the true values of this step
            flat = v.reshape(-1, 1)
            if unknown is not None:  # only the values the decoder does not know yet
                m = unknown.reshape(-1)
                logits, flat = logits[m], flat[m]
            logp, p = _probabilities(logits)
            if not torch.isfinite(logp).all():
                raise ArgumentError("the model produced non-finite logits: it cannot code these images")
            self.coder.encode(flat.view(-1).cpu().numpy().astype(np.int32), self.family, p)
            self.nll -= logp.gather(1, flat).sum().cpu()
            return v
        return decide

    def payload(self) -> bytes:
        return self.coder.get_compressed().astype("<u4").tobytes()


def encode(model, images, names: Sequence[str] | None = None, *, chunk: int = DEFAULT_CHUNK,
           progress: ProgressArg = False, threads: int | None = None, labels=None) -> Encoded:
    """Compress ``images`` (an int (N, C, H, W) tensor, or a list of int (C, H, W) tensors of any
    sizes the model accepts; (H, W) for a 1-channel model) losslessly into one file; see
    :func:`compress`. Also returns the model's code length (NLL in bits) for comparison."""
    _constriction()
    chunk = _check_int("chunk", chunk)
    threads = _check_int("threads", torch.get_num_threads() if threads is None else threads, 4096)
    images = _as_list(images)
    images = [_check_image(model, k, im) for k, im in enumerate(images)]
    names = _check_names(names, len(images))
    shapes = [tuple(im.shape) for im in images]
    total = sum(c * h * w for c, h, w in shapes)
    with _torch_threads(threads):
        encoder = _Encoder(model, images, _labels(model, labels, images))
        _run(model, _plan(shapes, chunk), encoder, progress, "compressing", total)
    payload = encoder.payload()
    head = pack_header(model_fp=bytes.fromhex(fingerprint(model))[:8],
                       pixels=pixels_checksum(images, model.levels),
                       environment=bytes.fromhex(environment_tag(model.device)), channels=model.channels,
                       levels=model.levels, chunk=chunk, threads=threads,
                       payload_words=len(payload) // 4, runs=shape_runs(shapes), names=names)
    data = pack_file(head, payload)
    return Encoded(data=data, values=total, nll_bits=float(encoder.nll) / math.log(2),
                   header_bytes=len(data) - len(payload))


def _labels(model, labels, images: list[torch.Tensor]) -> torch.Tensor | None:
    """A conditional model's label per image, int64 (N,) on the CPU: the given ones, or each
    image's most probable label (the shortest code: -log p(y) - log p(x | y) is smallest there)."""
    if labels is None and not model.classes:
        return None
    if labels is not None:
        return model.check_labels(torch.as_tensor(labels), len(images)).cpu()
    best = torch.empty(len(images), dtype=torch.long)
    with torch.no_grad():
        for shape, idx in _plan([tuple(im.shape) for im in images], 64):
            batch = torch.stack([images[k] for k in idx]).to(model.device)
            best[idx] = model.classify(batch).argmax(dim=1).cpu()
    return best


def compress(model, images, names: Sequence[str] | None = None, *, chunk: int = DEFAULT_CHUNK,
             progress: ProgressArg = False, threads: int | None = None, labels=None) -> bytes:
    """Compress ``images`` losslessly with ``model``: the bytes of one ``.prnn`` file.

    ``images``: an int (N, C, H, W) tensor, or a list of int (C, H, W) tensors (sizes may differ;
    (H, W) for a 1-channel model) with values in [0, model.levels). ``names``: optional strings
    stored with the images (e.g. file names), returned by :func:`decompress`. ``chunk``: images
    coded together per cached-sampler batch (speed; the decoder uses the same). ``progress``: True
    for a tqdm bar on stderr, or ``f(done, total)`` over values. ``threads``: torch CPU threads to
    code with (default: the current count); the file records it and the decoder uses the same.
    Raises ArgumentError (a ValueError) for bad input. Decoding needs the same model, device type
    and numerical library (docs/format.md). A conditional model codes each image's label first,
    under its prior: ``labels`` (N,), or by default each image's most probable label; decompress
    restores them (``DecodedImage.label``)."""
    return encode(model, images, names, chunk=chunk, progress=progress, threads=threads, labels=labels).data


class _Decoder:
    """The decoder's ``decide``: range-decodes the values of each step with the model's
    probabilities; sums the model's NLL in nats."""

    def __init__(self, model, payload: memoryview):
        stream = _constriction()
        self.device, self.prior, self.labels = model.device, _prior(model), {}
        self.family = stream.model.Categorical(perfect=False)
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        try:
            self.coder = stream.queue.RangeDecoder(words)
        except Exception as e:  # noqa: BLE001 - whatever the binding raises for bad data
            raise FormatError(f"corrupted payload: {type(e).__name__}") from None
        self.nll = torch.zeros((), dtype=torch.float64)

    def for_chunk(self, shape, idx):
        """(``decide`` for a chunk: the same callback for every stage, the chunk's labels)."""
        if self.prior is None:
            return self.decide, None
        logp, p = self.prior
        try:
            y = torch.from_numpy(self.coder.decode(self.family, np.repeat(p, len(idx), axis=0)).astype(np.int64))
        except Exception as e:  # noqa: BLE001
            raise FormatError(f"corrupted payload: the range decoder failed ({type(e).__name__})") from None
        if int(y.min()) < 0 or int(y.max()) >= p.shape[1]:
            raise FormatError("corrupted payload: decoding produced invalid labels")
        self.nll -= logp[0, y].sum().cpu()
        self.labels.update(zip(idx, y.tolist()))
        return self.decide, y.to(self.device)

    def decide(self, logits, c, t, lo, hi, s, unknown):
        S = hi - lo + 1
        m = None if unknown is None else unknown.reshape(-1)
        logp, p = _probabilities(logits if m is None else logits[m])
        try:
            sym = self.coder.decode(self.family, p)
        except Exception as e:  # noqa: BLE001
            raise FormatError(f"corrupted payload: the range decoder failed "
                              f"({type(e).__name__})") from None
        v = torch.from_numpy(sym.astype(np.int64)).to(self.device)
        if not torch.isfinite(logp).all() or int(v.min()) < 0 or int(v.max()) >= logits.shape[-1]:
            raise FormatError("corrupted payload: decoding produced invalid values")
        self.nll -= logp.gather(1, v.unsqueeze(1)).sum().cpu()
        if m is None:
            return v.view(S, -1)
        out = torch.zeros(logits.shape[0], dtype=torch.long, device=self.device)
        out[m] = v
        return out.view(S, -1)

    def exhausted(self) -> bool:
        return self.coder.maybe_exhausted()


def _mismatch(header: Header, device: torch.device) -> str:
    """Why decoded pixels may not match the file's checksum (for the error message)."""
    if header.environment != environment_tag(device):
        return ("it was encoded with other software or on another kind of device (pixelrnn, "
                "torch, constriction version, device type, or GPU model and CUDA version differ)")
    if header.threads is None:
        return ("corrupted payload, encoded on another CPU type, or decoded with another torch thread "
                "count (format version 1 does not record it: retry with the encoder's)")
    why = "corrupted payload, or encoded on another CPU type"
    if device.type == "cuda":
        why += " (or with other GPU math settings, e.g. TF32)"
    return why


def decompress(model, data, *, progress: ProgressArg = False,
               stats: dict | None = None) -> list[DecodedImage]:
    """Decode a file written by :func:`compress` with the same ``model``: a list of
    ``DecodedImage(name, image)`` in the original order (``image`` int64 (C, H, W) on the CPU;
    ``name`` None when no names were stored). Raises :class:`FormatError` (a ValueError) for
    anything but a valid file of this model, :class:`ModelMismatchError` for another model; the
    checksum of the decoded pixels is verified, so wrong pixels are never returned. ``progress``:
    True for a tqdm bar on stderr, or ``f(done, total)`` over values. ``stats``: a dict that
    receives the header and the model's NLL in bits of the decoded images (``nll_bits``)."""
    _constriction()
    header, payload = split_file(data)
    check_model(model, header)
    decoder = _Decoder(model, payload)
    with _torch_threads(header.threads):
        decoded = _run(model, _plan(header.shapes, header.chunk), decoder, progress,
                       "decompressing", header.values)
    images = [decoded[k] for k in range(header.count)]
    exhausted = decoder.exhausted()
    if pixels_checksum(images, model.levels).hex() != header.pixels_checksum or not exhausted:
        raise FormatError(f"decoded pixels do not match the file's checksum: {_mismatch(header, model.device)}")
    if stats is not None:
        stats.update(header=header, nll_bits=float(decoder.nll) / math.log(2))
    names = header.names or (None,) * header.count
    return [DecodedImage(name, im, decoder.labels.get(k)) for k, (name, im) in enumerate(zip(names, images))]
