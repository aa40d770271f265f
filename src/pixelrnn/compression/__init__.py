"""Lossless image compression with a trained model: an exact likelihood is a code length.

    from pixelrnn.compression import compress, decompress, fingerprint
    data = compress(model, images, names=["a.png", "b.png"])   # bytes (the .prnn format)
    for name, image in decompress(model, data):                 # int64 (C, H, W) per image
        ...                                                     # (a conditional model: .label too)

Every value is entropy-coded with the model's exact conditional distribution (the softmax of its
logits, computed in float64) by constriction's range coder (``constriction.stream.queue``,
``Categorical(perfect=False)``, 24-bit probabilities), one batched ``encode``/``decode`` call per
step of the cached sampler with all the positions of that step. The file format is specified in
``docs/format.md``.

Modules: :mod:`.fileformat` (the header, its packing and parsing, the model fingerprint and the
checksums), :mod:`.coder` (``encode`` / ``compress`` / ``decompress``), :mod:`.files` (image files
and .npz archives read exactly as the model represents them, the PNG names decompress writes; for
the command line).

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
from ..errors import FormatError, ModelMismatchError
from .coder import compress, decompress, encode
from .fileformat import (DEFAULT_CHUNK, MAGIC, VERSION, DecodedImage, Encoded, Header, check_model,
                         environment_tag, fingerprint, pixels_dtype, read_header)

__all__ = ["FormatError", "ModelMismatchError", "Header", "DecodedImage", "Encoded", "MAGIC",
           "VERSION", "DEFAULT_CHUNK", "fingerprint", "environment_tag", "compress", "encode",
           "decompress", "read_header", "check_model", "pixels_dtype"]
