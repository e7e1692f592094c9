"""jpeg.header_info: the default image check (size and structure from the header)."""

import random
import struct

import pytest

from ilsvrc.records import jpeg
from ilsvrc.testing import jpegenc


def _encode(tf, height, width, channels=3, seed=0, **kw):
    g = tf.random.Generator.from_seed(seed)
    pixels = tf.cast(g.uniform((height, width, channels), 0, 256, dtype=tf.int32), tf.uint8)
    return tf.io.encode_jpeg(pixels, **kw).numpy()


@pytest.fixture(scope="module")
def photo(tf):
    return _encode(tf, 75, 100, quality=90)


def test_header_dims_match_tensorflow_decode(tf):
    rng = random.Random(7)
    for i in range(300):
        h, w = rng.randint(1, 160), rng.randint(1, 160)
        channels = rng.choice((1, 3))
        kw = {"quality": rng.choice((50, 75, 95, 100)),
              "progressive": rng.random() < 0.3,
              "optimize_size": rng.random() < 0.3,
              "chroma_downsampling": rng.random() < 0.5}
        data = _encode(tf, h, w, channels, seed=i, **kw)
        height, width, comps = jpeg.header_info(data)
        shape = tf.io.decode_jpeg(data, channels=3).shape
        assert (height, width) == (shape[0], shape[1]) == (h, w)
        assert comps == channels


def test_pure_python_encoder_output(tf):
    rng = random.Random(3)
    for kind in ("rgb", "gray", "cmyk"):
        from ilsvrc.testing import sample
        data = sample.make_image(rng, kind, 57, 33)
        height, width, comps = jpeg.header_info(data)
        assert (height, width) == (33, 57)
        assert comps == {"rgb": 3, "gray": 1, "cmyk": 4}[kind]
        assert tf.io.decode_jpeg(data).shape[:2] == (33, 57)


def test_every_truncation_is_rejected(photo):
    cuts = set(range(0, 40)) | set(range(0, len(photo), max(1, len(photo) // 60)))
    cuts |= {len(photo) - 1, len(photo) - 2, len(photo) - 3}
    for n in sorted(c for c in cuts if c < len(photo)):
        with pytest.raises(jpeg.BadImage):
            jpeg.header_info(photo[:n])


def test_not_a_jpeg():
    png = jpegenc.encode_png(4, 3, lambda x, y: (x, y, 0))
    with pytest.raises(jpeg.BadImage, match="PNG"):
        jpeg.header_info(png)
    for junk in (b"", b"\xff", b"GIF89a" + bytes(100), bytes(1000),
                 b"\xff\xd8\xff\xd9", b"\xff\xd8" + bytes(50)):
        with pytest.raises(jpeg.BadImage):
            jpeg.header_info(junk)


def _sof_offset(data):
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        i = data.find(marker)
        if i >= 0:
            return i
    raise AssertionError("no SOF")


@pytest.mark.parametrize("field", [5, 7])  # height, width inside the SOF segment
def test_zero_dimension_is_rejected(photo, field):
    i = _sof_offset(photo)
    bad = photo[:i + field] + b"\x00\x00" + photo[i + field + 2:]
    with pytest.raises(jpeg.BadImage, match="0"):
        jpeg.header_info(bad)


def test_unsupported_frame_type(photo):
    i = _sof_offset(photo)
    bad = photo[:i + 1] + b"\xc3" + photo[i + 2:]  # lossless
    with pytest.raises(jpeg.BadImage, match="unsupported"):
        jpeg.header_info(bad)


def test_progressive(tf):
    data = _encode(tf, 61, 83, progressive=True)
    assert b"\xff\xc2" in data[:data.find(b"\xff\xda")]
    assert jpeg.header_info(data) == (61, 83, 3)


def _exif_with_thumbnail(thumb):
    """APP1 'Exif' segment: a little-endian TIFF header, IFD0 with no entries, IFD1
    pointing at an embedded JPEG thumbnail (which has its own SOI/SOF/EOI)."""
    tiff = b"II*\x00" + struct.pack("<I", 8)
    ifd0 = struct.pack("<H", 0) + struct.pack("<I", 14)  # no entries, next IFD at 14
    thumb_at = 14 + 2 + 2 * 12 + 4
    ifd1 = (struct.pack("<H", 2)
            + struct.pack("<HHII", 0x0201, 4, 1, thumb_at)
            + struct.pack("<HHII", 0x0202, 4, 1, len(thumb)) + struct.pack("<I", 0))
    payload = b"Exif\x00\x00" + tiff + ifd0 + ifd1 + thumb
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def test_exif_thumbnail_is_not_the_frame(tf, photo):
    thumb = _encode(tf, 12, 16, seed=5)
    data = photo[:2] + _exif_with_thumbnail(thumb) + photo[2:]
    assert jpeg.header_info(data)[:2] == (75, 100)
    assert tf.io.decode_jpeg(data).shape[:2] == (75, 100)
    # cut inside the main image's scan: the thumbnail's end marker must not count
    with pytest.raises(jpeg.BadImage):
        jpeg.header_info(data[:len(data) - 100])


def test_fill_bytes_before_markers(tf, photo):
    i = photo.find(b"\xff", 2)          # the first marker after SOI
    data = photo[:i] + b"\xff\xff\xff" + photo[i:]
    assert jpeg.header_info(data)[:2] == (75, 100)
    assert tf.io.decode_jpeg(data).shape[:2] == (75, 100)


def test_trailing_bytes_after_end_marker_are_ignored(tf, photo):
    data = photo + b"\x00" * 10
    assert jpeg.header_info(data)[:2] == (75, 100)
    assert tf.io.decode_jpeg(data).shape[:2] == (75, 100)


def test_scan_before_frame_and_double_frame(photo):
    i = _sof_offset(photo)
    seglen = struct.unpack(">H", photo[i + 2:i + 4])[0]
    sof = photo[i:i + 2 + seglen]
    with pytest.raises(jpeg.BadImage, match="more than one frame"):
        jpeg.header_info(photo[:i] + sof + photo[i:])
    with pytest.raises(jpeg.BadImage, match="before a frame"):
        jpeg.header_info(photo[:i] + photo[i + 2 + seglen:])


@pytest.mark.parametrize("check", ["header", "decode"])
def test_png_and_cmyk_reencoded_as_upstream_with_either_check(tf, check):
    from ilsvrc.records import image
    from ilsvrc.testing import sample
    rng = random.Random(11)
    cmyk = sample.make_image(rng, "cmyk", 40, 30)
    png = sample.make_image(rng, "png", 40, 30)
    for relpath, data, pixels in (
            ("n01739381/n01739381_1309.JPEG", cmyk, tf.io.decode_jpeg(cmyk, channels=0)),
            ("n02105855/n02105855_2933.JPEG", png, tf.io.decode_png(png, channels=3))):
        want = tf.io.encode_jpeg(pixels, format="rgb", quality=100).numpy()
        encoded, height, width = image.prepare(data, relpath, check)
        assert encoded == want
        assert (height, width) == (30, 40)
    plain = _encode(tf, 20, 30, seed=2)
    assert image.prepare(plain, "n01440764/n01440764_1.JPEG", check) == (plain, 20, 30)


_LIGHT = r"""
import json, random, sys
from ilsvrc import tfimport
from ilsvrc.records import image
from ilsvrc.testing import sample
tfimport.use_light_import()      # what every worker process of the pool does
rng = random.Random(11)
out = {}
for kind, relpath in (("cmyk", "n01739381/n01739381_1309.JPEG"),
                      ("png", "n02105855/n02105855_2933.JPEG")):
    data = sample.make_image(rng, kind, 40, 30)
    for check in ("header", "decode"):
        encoded, height, width = image.prepare(data, relpath, check)
        out[kind + "/" + check] = [data.hex(), encoded.hex(), height, width]
# nothing of TensorFlow's own __init__ ran (its public API modules are not loaded),
# and an `import tensorflow` after this is the whole package
assert not [m for m in sys.modules if m.startswith(("tensorflow._api", "keras"))]
import tensorflow
assert tensorflow.io.encode_jpeg is not None and tensorflow.executing_eagerly()
assert sys.modules["tensorflow"].__file__.endswith("__init__.py")
assert hasattr(sys.modules["tensorflow"], "io")
json.dump(out, sys.stdout)
"""


def test_light_import_reencodes_like_the_whole_tensorflow(tf, tmp_path):
    """A worker re-encodes the 23 images and runs the decode check through
    tfimport.image_ops() without importing all of TensorFlow: the bytes and sizes
    are the ones tf.io gives, and the process can still import TensorFlow after."""
    import json
    import sys
    from conftest import run_cmd
    res = run_cmd([sys.executable, "-c", _LIGHT])
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout)
    assert len(got) == 4
    for key, (data, encoded, height, width) in got.items():
        data = bytes.fromhex(data)
        pixels = (tf.io.decode_png(data, channels=3) if key.startswith("png")
                  else tf.io.decode_jpeg(data, channels=0))
        want = tf.io.encode_jpeg(pixels, format="rgb", quality=100).numpy()
        assert bytes.fromhex(encoded) == want, key
        assert (height, width) == (30, 40)
