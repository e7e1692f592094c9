"""Per-image processing shared by every format: the re-encoded special images and the
image check.

`prepare(data, relpath, check)` returns the bytes that go into `image/encoded` and
the height and width that go beside them:
  * the one PNG and the 22 CMYK JPEGs of the training set are re-encoded exactly as
    upstream does: TensorFlow decode (PNG to 3 channels, CMYK through TF's own
    conversion), then `encode_jpeg(format='rgb', quality=100)`;
  * every image is then checked: by default from the JPEG header (jpeg.header_info);
    with check="decode" by a full TensorFlow decode to 3 channels, as upstream does,
    where libjpeg's warnings about corrupt data also fail (docs/errors.md).
Grayscale and other CMYK JPEGs are stored as they are (decision A8).
"""

import os
import re
import sys
import tempfile
import types

from ilsvrc.records import jpeg, tfops
from ilsvrc import tfimport
from ilsvrc.errors import UserError

# Training images that are not RGB JPEGs (same list as tensorflow-datasets uses).
PNG_IMAGES = ("n02105855_2933.JPEG",)
CMYK_IMAGES = frozenset((
    "n01739381_1309.JPEG", "n02077923_14822.JPEG", "n02447366_23489.JPEG",
    "n02492035_15739.JPEG", "n02747177_10752.JPEG", "n03018349_4028.JPEG",
    "n03062245_4620.JPEG", "n03347037_9675.JPEG", "n03467068_12171.JPEG",
    "n03529860_11437.JPEG", "n03544143_17228.JPEG", "n03633091_5218.JPEG",
    "n03710637_5125.JPEG", "n03961711_5286.JPEG", "n04033995_2932.JPEG",
    "n04258138_17003.JPEG", "n04264628_27969.JPEG", "n04336792_7448.JPEG",
    "n04371774_5854.JPEG", "n04596742_4225.JPEG", "n07583066_647.JPEG",
    "n13037406_4650.JPEG",
))

CHECKS = ("header", "decode")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def reencoded_relpaths():
    """'<synset>/<name>' of the images re-encoded, where a release holds them."""
    return [name.split("_")[0] + "/" + name for name in PNG_IMAGES + tuple(CMYK_IMAGES)]


def special_kind(relpath):
    """'png', 'cmyk' or None.  PNG: substring of the path; CMYK: basename equality."""
    if any(name in relpath for name in PNG_IMAGES):
        return "png"
    if relpath.rsplit("/", 1)[-1] in CMYK_IMAGES:
        return "cmyk"
    return None


def _tensor(data):
    """`data` as an eager string tensor, for tfimport's image ops.  Handed Python
    bytes, TensorFlow's eager fast path imports ~60 more modules the second time an
    op runs in a process that loaded only the image ops (resource_variable_ops and
    what it pulls in: ~0.4 s of CPU); a tensor spares that.  The kernels and so the
    bytes are the same."""
    try:
        from tensorflow.python.framework import constant_op
    except ImportError:
        return data
    return constant_op.constant(data)


_python_ops = None


def image_ops():
    """decode_jpeg, decode_png and encode_jpeg (taking bytes): TensorFlow's kernels
    through its C API where found (records.tfops: ~0.4 s of CPU to load), else
    through tfimport.image_ops() (~1.5-2 s).  Same kernels, same bytes."""
    global _python_ops
    fast = tfops.ops()
    if fast is not None:
        return fast
    if _python_ops is None:
        py = tfimport.image_ops()
        _python_ops = types.SimpleNamespace(
            decode_jpeg=lambda data, channels: py.decode_jpeg(_tensor(data),
                                                              channels=channels),
            decode_png=lambda data, channels: py.decode_png(_tensor(data),
                                                            channels=channels),
            encode_jpeg=py.encode_jpeg)
    return _python_ops


def reencode(data, kind):
    """TF decode + quality-100 RGB JPEG encode, as upstream does for the 23 images
    (decoded as what they are: the PNG-listed image as a JPEG where a copy of the
    release holds it as one)."""
    ops = image_ops()
    if kind == "png" and data[:8] == PNG_MAGIC:   # a copy may hold it as a JPEG already
        pixels = ops.decode_png(data, channels=3)
    elif kind == "png":
        pixels = ops.decode_jpeg(data, channels=3)
    else:
        pixels = ops.decode_jpeg(data, channels=0)
    return ops.encode_jpeg(pixels, format="rgb", quality=100).numpy()


# libjpeg's warnings about damaged data.  TensorFlow's decoder prints them on
# stderr and returns pixels anyway (measured with TF 2.21: a flipped bit in the
# entropy-coded data gives "Corrupt JPEG data: bad Huffman code", a cut scan padded
# with an end marker "premature end of data segment"); the decode check fails on them.
LIBJPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG", "Inconsistent progression",
                  "Invalid SOS parameters", "Bogus")
_capture = None


def _decode_capturing_stderr(decode):
    """Run `decode()` with file descriptor 2 sent to a scratch file; return (result
    or the exception raised, what was written).  libjpeg writes its warnings there."""
    global _capture
    if _capture is None:
        _capture = tempfile.TemporaryFile()
    sys.stderr.flush()
    saved = os.dup(2)
    _capture.seek(0)
    _capture.truncate()
    os.dup2(_capture.fileno(), 2)
    try:
        try:
            result = decode()
        except Exception as err:  # TensorFlow's error; reported with libjpeg's reason
            result = err
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    _capture.seek(0)
    return result, _capture.read(8192).decode("utf-8", "replace")


def decoded_size(data):
    """TensorFlow's decode to 3 channels, as upstream does; any libjpeg warning about
    damaged data (which TF does not treat as an error) is an error here."""
    ops = image_ops()
    result, said = _decode_capturing_stderr(lambda: ops.decode_jpeg(data, channels=3))
    reasons = [line.strip() for line in said.splitlines()
               if any(m in line for m in LIBJPEG_DAMAGE) or "Unsupported" in line]
    if isinstance(result, Exception):
        if reasons:
            raise ValueError("libjpeg: %s" % reasons[0])
        raise result
    if reasons:
        raise ValueError("libjpeg: %s; TensorFlow would return damaged pixels"
                         % reasons[0])
    shape = result.shape
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError("decoded to shape %s, not height x width x 3" % (shape,))
    return int(shape[0]), int(shape[1])


def _tf_message(err):
    """The readable part of a TF op error: no '{{function_node ...}}', no '[Op:...]'."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^\{\{.*?\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:\w+\]$", "", text) or type(err).__name__


def prepare(data, relpath, check="header", where=None):
    """Return (encoded_bytes, height, width); UserError naming `where` on failure."""
    where = where or relpath
    kind = special_kind(relpath)
    try:
        if kind:
            data = reencode(data, kind)
        if check == "decode":
            height, width = decoded_size(data)
        else:
            height, width, _ = jpeg.header_info(data)
    except jpeg.BadImage as err:
        raise UserError("%s: %s. Replace the file with a good copy (or choose the "
                        "'decode' image check to let TensorFlow judge it)." % (where, err))
    except Exception as err:  # TensorFlow decode/encode errors
        if type(err).__module__.startswith("tensorflow") or isinstance(err, ValueError):
            msg = _tf_message(err)
            raise UserError("%s: cannot be decoded as %s (%s). Replace the file with a "
                            "good copy." % (where, "PNG" if kind == "png" else "JPEG", msg))
        raise
    return data, height, width
