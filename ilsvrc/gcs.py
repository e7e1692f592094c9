"""Optional upload of finished shards to Google Cloud Storage (decision A12).

google-cloud-storage is imported only here and only when uploading, so converting
with --nogcs_upload never needs it.  As upstream does, training and validation shards
land side by side under one prefix: `gs://bucket/prefix/train-...` and
`gs://bucket/prefix/validation-...` (readers of upstream's buckets expect that).
"""

import importlib
import os
import sys

from ilsvrc.errors import UserError


def storage_module():
    try:
        storage = importlib.import_module("google.cloud.storage")
    except ImportError:
        raise UserError("uploading needs the google-cloud-storage package: run "
                        "'.venv/bin/pip install google-cloud-storage', or pass "
                        "--nogcs_upload to keep the shards local.")
    return storage


def split_gcs_path(path):
    """'gs://bucket/a/b' -> ('bucket', 'a/b/'); 'gs://bucket' -> ('bucket', '')."""
    bucket, _, prefix = path[len("gs://"):].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def upload(split_dirs, gcs_output_path, project, log=sys.stderr, only=None):
    """Upload the shards of each (directory, prefix); `only`: just these paths (a
    task uploads the shards it wrote)."""
    storage = storage_module()
    keep = None if only is None else set(only)
    bucket_name, prefix = split_gcs_path(gcs_output_path)
    path = None
    try:
        bucket = storage.Client(project=project).get_bucket(bucket_name)
        for directory, file_prefix in split_dirs:
            files = sorted(os.path.join(directory, n) for n in os.listdir(directory)
                           if n.startswith(file_prefix + "-") and
                           (keep is None or os.path.join(directory, n) in keep))
            for i, path in enumerate(files):
                if i % 20 == 0:
                    log.write("uploading %s (%d of %d) to gs://%s/%s\n"
                              % (path, i + 1, len(files), bucket_name, prefix))
                bucket.blob(prefix + os.path.basename(path)).upload_from_filename(path)
    except Exception as err:  # google.auth / google.api_core errors, network errors
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError("upload to gs://%s/%s failed%s: %s. The shards are complete "
                        "locally; fix the credentials/bucket and rerun (finished shards "
                        "are not rewritten)." % (bucket_name, prefix,
                                                 " at " + path if path else "", first))
