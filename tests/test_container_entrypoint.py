"""docker/entrypoint.sh and docker/Dockerfile, without a Docker engine.

The entrypoint is run as a normal script with stub id/getent/groupadd/useradd/setpriv
commands first on PATH.  The stubs keep a fake passwd/group database in a temporary
directory and log how they were called; the setpriv stub then runs the command.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
DOCKERFILE = REPO / "docker" / "Dockerfile"

STUBS = {
    "id": 'case "$1" in -u) echo "$FAKE_UID" ;; -g) echo "$FAKE_UID" ;; *) exit 1 ;; esac\n',
    # getent DB KEY: match the name (field 1) or the number (field 3)
    "getent": 'awk -F: -v k="$2" \'$1 == k || $3 == k { print; found = 1 } '
              'END { exit found ? 0 : 2 }\' "$FAKE_ETC/$1"\n',
    "groupadd": 'echo "groupadd $*" >> "$FAKE_ETC/log"\n'
                'echo "$3:x:$2:" >> "$FAKE_ETC/group"\n',
    # useradd --uid U --gid G --create-home --shell SH NAME
    "useradd": 'echo "useradd $*" >> "$FAKE_ETC/log"\n'
               'echo "$8:x:$2:$4::/home/$8:$7" >> "$FAKE_ETC/passwd"\n',
    "setpriv": 'echo "setpriv $*" >> "$FAKE_ETC/log"\n'
               'while [ "$1" != "--" ]; do shift; done; shift\nexec "$@"\n',
}


@pytest.fixture
def run(tmp_path):
    bin_dir, etc = tmp_path / "bin", tmp_path / "etc"
    bin_dir.mkdir()
    etc.mkdir()
    for name, body in STUBS.items():
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\n" + body)
        stub.chmod(0o755)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "log").write_text("")

    def go(*cmd, uid="0", **env):
        full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_ETC": str(etc),
                    "FAKE_UID": uid, "HOME": "/root", **env}
        res = subprocess.run([str(ENTRYPOINT), *cmd], env=full_env,
                             capture_output=True, text=True, timeout=30)
        res.log = (etc / "log").read_text().splitlines()
        res.passwd = (etc / "passwd").read_text()
        return res

    return go


PRINT_ENV = ("sh", "-c", 'echo "ran as $USER home=$HOME args=$*"', "sh", "a b", "c")


def test_local_user_id_runs_the_command_through_setpriv_with_that_uid(run):
    res = run(*PRINT_ENV, LOCAL_USER_ID="1234")
    assert res.returncode == 0, res.stderr
    assert "groupadd --gid 1234 imagenet1234" in res.log
    assert "useradd --uid 1234 --gid 1234 --create-home --shell /bin/bash imagenet" in res.log
    setpriv = [l for l in res.log if l.startswith("setpriv ")]
    assert len(setpriv) == 1
    assert "--reuid=1234 --regid=1234 --init-groups -- sh -c" in setpriv[0]
    # arguments reach the command intact, with the new user's HOME
    assert res.stdout.strip() == "ran as imagenet home=/home/imagenet args=a b c"


def test_local_group_id_and_an_existing_user_are_reused(run, tmp_path):
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    res = run(*PRINT_ENV, LOCAL_USER_ID="1000", LOCAL_GROUP_ID="50")
    assert res.returncode == 0, res.stderr
    assert not [l for l in res.log if l.startswith(("useradd", "groupadd"))]
    assert "setpriv --reuid=1000 --regid=50 --init-groups -- sh -c" in res.log[0]
    assert res.stdout.startswith("ran as alice home=/home/alice")


def test_without_local_user_id_the_command_runs_directly(run):
    res = run("sh", "-c", "echo direct")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "direct\n"
    assert res.log == []


def test_started_with_docker_run_user_the_command_runs_directly(run):
    res = run("sh", "-c", 'echo "home=$HOME"', uid="1234", LOCAL_USER_ID="1234",
              HOME="/nonexistent")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "home=/tmp\n"
    assert res.log == [] and res.stderr == ""


@pytest.mark.parametrize("var,value", [("LOCAL_USER_ID", "alice"),
                                       ("LOCAL_USER_ID", "-5"),
                                       ("LOCAL_GROUP_ID", "12a")])
def test_non_numeric_ids_are_a_clear_error(run, var, value):
    env = {"LOCAL_USER_ID": "1234", var: value}
    res = run("sh", "-c", "echo should-not-run", **env)
    assert res.returncode == 64
    assert "should-not-run" not in res.stdout
    assert var in res.stderr and value in res.stderr
    assert res.log == []


def test_entrypoint_is_executable():
    assert os.access(ENTRYPOINT, os.X_OK)


def test_dockerfile_base_image_is_pinned_to_a_tag():
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.M)
    assert len(froms) == 1
    image = froms[0]
    if "@sha256:" in image:
        return
    repo, sep, tag = image.rpartition(":")
    assert sep and "/" not in tag, f"{image}: no tag"
    assert tag != "latest" and re.search(r"\d", tag), f"{image}: not a pinned tag"
    assert repo == "tensorflow/tensorflow"


def test_dockerfile_does_not_install_tensorflow_again_and_uses_the_entrypoint():
    text = DOCKERFILE.read_text()
    assert not re.search(r"pip3?\s+install[^\n]*\btensorflow", text)
    assert re.search(r'^ENTRYPOINT \["/opt/imagenet-prep/docker/entrypoint\.sh"\]', text, re.M)
    assert re.search(r"^COPY \. /opt/imagenet-prep$", text, re.M)
