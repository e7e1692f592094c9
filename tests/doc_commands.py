"""What tests/test_docs.py does with the shell blocks of the user docs: the one place
that lists the pages, the paths it substitutes and the commands it does not run.

How a page's fenced blocks are treated:

* ```sh      commands a user types: run with `bash -e -o pipefail` in the checkout's top
             directory, the blocks of one page in order (each page starts from fresh
             data), with the project's .venv/bin NOT on PATH (a user who never activated
             it; the Python scripts find the virtualenv themselves);
* ```output  directly after an sh block: what those commands print; every non-blank line
             must appear in their output (stdout and stderr as a terminal shows them),
             in that order; `…` inside a line matches any text;
* ```text, ```python, ```json, ```ini, ```yaml: shown, not run (synopses with
             placeholders, listings, example messages).  A fence without a language is
             an error, as is an indented `$ command` example.
"""

# The pages whose blocks run (globs, relative to the checkout's top directory).
PAGES = ("README.md", "docs/*.md", "bench/README.md", "patches/README.md",
         "docker/README.md")

LANGUAGES = ("sh", "output", "text", "python", "json", "ini", "yaml")

# Paths the docs use for a user's data, and where the test puts them ({root}: a fresh
# temporary directory per page).  A path is replaced only where it starts a word.  What
# the test writes there before the page runs:
#   /data/imagenet, /shared/imagenet, /path-to-tar-files:
#       a release as image-net.org ships it: ILSVRC2012_img_train.tar,
#       ILSVRC2012_img_val.tar and ILSVRC2012_bbox_train_v2.tar.gz (the generated
#       sample, `python -m ilsvrc.testing.sample --bbox`: 6 classes x 5 images, 12
#       validation images);
#   /data/kaggle: imagenet-object-localization-challenge.zip holding the same images as
#       Kaggle lays them out, with its LOC_* files;
#   /data/hf-imagenet: the Hugging Face parquet copy of the same images (classes.py,
#       data/*.parquet; `python -m ilsvrc.testing.hfsample`);
#   gs://my-data/ilsvrc2012: the release in a Cloud Storage emulator on 127.0.0.1, where
#       the buckets my-data and my-records exist (bucket names are not substituted);
#   ./download.sh hf: a fake Hugging Face Hub on 127.0.0.1 serving the parquet copy as
#       ILSVRC/imagenet-1k, HF_TOKEN set.
# Every other path under /data/, /shared/ and /tmp/ starts empty.  HOME is {root}/home.
PLACES = (
    ("/path-to-tar-files", "{root}/data/imagenet"),
    ("/data/", "{root}/data/"),
    ("/shared/", "{root}/shared/"),
    ("/tmp/", "{root}/tmp/"),
)

# Commands shown in sh blocks that the test does not run, by how the command starts,
# with the reason.  Every entry must match a command in some page.
NOT_RUN = {
    "./test.sh": "runs this test suite",
    "docker ": "needs a Docker daemon and TensorFlow's base image; docker/test.sh "
               "runs the image's commands",
    "gcloud ": "signs in to Google Cloud; the test uses a storage emulator",
    "./download.sh kaggle": "downloads 155 GB from Kaggle; "
                            "tests/test_metalhead_download.py runs it against a stub",
    "deploy/slurm/submit.sh": "needs a Slurm cluster; tests/test_slurm.py runs the "
                              "recipes on a one-node cluster where Slurm is installed",
    "sbatch ": "needs a Slurm cluster (see tests/test_slurm.py)",
    "kubectl ": "needs a Kubernetes cluster; tests/test_deploy.py checks the manifests",
}

# Words that belong to the project's history, not to a user's manual.
NOT_FOR_USERS = (
    r"\b[Ii]ssues? \d+", r"\b[Dd]ecisions? [A-Z]*\d+", r"§", r"\bthe seed\b",
    r"UPSTREAM_SPEC", r"standin_tf_base", r"imagenet-README", r"\.\./shared",
)
