"""Our Example encoder/decoder against TensorFlow's protobuf (decision A1)."""

from ilsvrc.records import features

FEATURES = {
    "image/encoded": ("bytes", [b"\xff\xd8jpeg\xff\xd9"]),
    "image/height": ("int64", [375]),
    "image/width": ("int64", [500]),
    "image/class/label": ("int64", [1000]),
    "image/class/synset": ("bytes", [b"n15075141"]),
    "image/object/bbox/xmin": ("float", [0.006, 0.5]),
    "image/object/bbox/ymin": ("float", []),
    "image/object/bbox/label": ("int64", []),
    "image/negative": ("int64", [-3]),
    "image/empty": ("bytes", []),
}


def _tf_example(tf, features):
    feats = {}
    for key, (kind, values) in features.items():
        if kind == "bytes":
            feats[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif kind == "float":
            feats[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feats[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feats))


def test_encoding_equals_protobuf_deterministic_serialization(tf):
    expected = _tf_example(tf, FEATURES).SerializeToString(deterministic=True)
    assert features.encode(FEATURES) == expected


def test_empty_lists_are_present_with_their_kind():
    enc = features.encode({"f": ("float", []), "i": ("int64", [])})
    assert b"\x12\x00" in enc and b"\x1a\x00" in enc
    assert features.decode(enc) == {"f": ("float", []), "i": ("int64", [])}


def test_decode_round_trip_with_float32_rounding(tf):
    got = features.decode(features.encode(FEATURES))
    assert got["image/object/bbox/xmin"][1] == [float(tf.constant(0.006, tf.float32)), 0.5]
    assert got["image/negative"] == ("int64", [-3])
    assert got["image/encoded"] == FEATURES["image/encoded"]
    assert set(got) == set(FEATURES)


def test_tensorflow_parses_our_bytes(tf):
    parsed = tf.io.parse_single_example(features.encode(FEATURES), {
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/class/synset": tf.io.FixedLenFeature([], tf.string),
        "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
    })
    assert int(parsed["image/height"]) == 375
    assert parsed["image/class/synset"].numpy() == b"n15075141"
    assert parsed["image/object/bbox/xmin"].values.shape[0] == 2
