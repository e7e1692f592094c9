"""A phase of a benchmark in its own cgroup v1 memory group (a memory limit: the page
cache the phase may keep is bounded) and blkio group (the bytes it made the disk
read and write), plus a sampler of both over time.

    with Phase("ilsvrc-bench-%d" % os.getpid(), limit_bytes, some_dir) as g:
        sampler = Sampler(g); sampler.start()
        run_tree(g.wrap(cmd))            # the command joins both groups, then execs
        sampler.stop()
        g.disk_bytes()                   # (read, written) by the phase's processes

Needs root and cgroup v1 controllers mounted at /sys/fs/cgroup/{memory,blkio};
a cpuacct group (where it can be made) gives CPU seconds over any window.
This kernel counts a blkio group's bytes only while blk-throttle is active for it,
so the group gets a read limit no disk reaches (100 TB/s).  Reads are counted by
blkio (the disk reads the group's processes issued, readahead included).  Writes
are counted by blkio only when they are submitted from the group (an fsync): data
the kernel's flusher threads write back (dirty pages pushed out when the group
nears its limit) is counted in the root group; so "written" is what the group's
processes dirtied, from /proc/PID/io (write_bytes - cancelled_write_bytes, summed by
the Sampler), and blkio's figure is kept beside it.  Without blkio, reads come
from /proc/PID/io too.
"""

import os
import shlex
import threading
import time

MEMORY, BLKIO = "/sys/fs/cgroup/memory", "/sys/fs/cgroup/blkio"
CPUACCT = "/sys/fs/cgroup/cpuacct"
NO_LIMIT_BPS = 10 ** 14


def available():
    """None when a memory cgroup can be made here, else why not (one line)."""
    if not os.path.isdir(MEMORY) or not os.access(MEMORY, os.W_OK):
        return ("needs a writable cgroup v1 memory controller at %s (run as root on a "
                "cgroup v1 host)" % MEMORY)
    return None


def whole_disk(path):
    """'MAJOR:MINOR' of the disk holding path (a partition's disk), or None."""
    st = os.stat(path)
    dev = "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev))
    sys_dev = os.path.realpath("/sys/dev/block/" + dev)
    if os.path.exists(os.path.join(sys_dev, "partition")):
        with open(os.path.join(os.path.dirname(sys_dev), "dev")) as f:
            dev = f.read().strip()
    return dev if os.path.exists("/sys/dev/block/" + dev) else None


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _read(path):
    with open(path) as f:
        return f.read()


class Phase:
    """The memory (and, where possible, blkio) cgroup of one phase."""

    def __init__(self, name, limit, where):
        self.limit, self.blk, self.disk = limit, None, whole_disk(where)
        self.mem = os.path.join(MEMORY, name)
        os.mkdir(self.mem)
        _write(os.path.join(self.mem, "memory.limit_in_bytes"), limit)
        blk = os.path.join(BLKIO, name)
        if os.access(BLKIO, os.W_OK) and self.disk:
            try:
                os.mkdir(blk)
                self.blk = blk
                _write(os.path.join(blk, "blkio.throttle.read_bps_device"),
                       "%s %d" % (self.disk, NO_LIMIT_BPS))
            except OSError:
                self.blk = None
        self.cpu = os.path.join(CPUACCT, name)
        try:
            os.mkdir(self.cpu)
        except OSError:
            self.cpu = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def wrap(self, cmd):
        """cmd, started by a shell that first writes its own pid into the groups."""
        joins = " && ".join("echo $$ > %s" % shlex.quote(os.path.join(d, "cgroup.procs"))
                            for d in (self.mem, self.blk, self.cpu) if d)
        return ["sh", "-c", joins + ' && exec "$@"', "sh"] + list(cmd)

    def pids(self):
        try:
            return [int(x) for x in _read(os.path.join(self.mem, "cgroup.procs")).split()]
        except OSError:
            return []

    def disk_bytes(self):
        """(read, written) bytes on disk by the group, or None without blkio."""
        if not self.blk:
            return None
        got = {"Read": 0, "Write": 0}
        text = _read(os.path.join(self.blk, "blkio.throttle.io_service_bytes_recursive"))
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in got:
                got[parts[1]] += int(parts[2])
        return got["Read"], got["Write"]

    def cpu_seconds(self):
        """CPU seconds (user + system) of the group so far, or None."""
        if not self.cpu:
            return None
        return int(_read(os.path.join(self.cpu, "cpuacct.usage"))) / 1e9

    def memory(self):
        """{anon, cache, peak (usage incl. cache), failcnt} of the memory group."""
        stat = dict(line.split() for line in
                    _read(os.path.join(self.mem, "memory.stat")).splitlines())
        return {"anon": int(stat.get("total_rss", 0)),
                "cache": int(stat.get("total_cache", 0)),
                "peak": int(_read(os.path.join(self.mem, "memory.max_usage_in_bytes"))),
                "failcnt": int(_read(os.path.join(self.mem, "memory.failcnt")))}

    def oom_kills(self):
        try:
            text = _read(os.path.join(self.mem, "memory.oom_control"))
        except OSError:
            return 0
        return sum(int(line.split()[1]) for line in text.splitlines()
                   if line.startswith("oom_kill "))

    def remove(self):
        for d in (self.mem, self.blk, self.cpu):
            for _ in range(50):
                if not d or not os.path.isdir(d):
                    break
                try:
                    os.rmdir(d)
                except OSError:
                    time.sleep(0.1)


def proc_io(pid):
    """(read_bytes, write_bytes - cancelled_write_bytes, parent pid) of a process,
    or None when it is gone.  Its counts include those of the children it reaped."""
    try:
        fields = dict(line.split(": ") for line in _read("/proc/%d/io" % pid).splitlines())
        stat = _read("/proc/%d/stat" % pid)
    except (OSError, ValueError):
        return None
    return (int(fields["read_bytes"]),
            int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"]),
            int(stat[stat.rindex(")") + 2:].split()[1]))


class Sampler(threading.Thread):
    """Every `every` s: time, blkio (read, written), /proc/PID/io (read, written)
    summed over the group's processes, anon and cache bytes of the group.  A
    process's figures include those of the children it reaped, so a child that was
    reaped (its /proc entry gone) is left out of the sum once its parent was sampled
    after that (the parent's figures then hold it); otherwise its last sample
    counts."""

    def __init__(self, group, every=0.1):
        super().__init__(daemon=True)
        self.group, self.every, self.samples = group, every, []
        self.procs, self.gone, self.halt = {}, {}, threading.Event()
        self.t0 = time.monotonic()

    def _proc_totals(self):
        k = len(self.samples)
        live = set()
        for pid in self.group.pids():
            got = proc_io(pid)
            if got is not None:
                self.procs[pid] = got + (k,)
                live.add(pid)
        for pid in set(self.procs) - live - set(self.gone):
            got = proc_io(pid)          # exited, not reaped yet: still counts alone
            if got is None:
                self.gone[pid] = k
            else:
                self.procs[pid] = got + (k,)
        read = sum(v[0] for v in self.procs.values())
        written = sum(v[1] for v in self.procs.values())
        for pid, when in self.gone.items():
            parent = self.procs.get(self.procs[pid][2])
            if parent is not None and parent[3] >= when:
                read -= self.procs[pid][0]
                written -= self.procs[pid][1]
        return read, written

    def sample(self):
        proc = self._proc_totals()
        disk = self.group.disk_bytes() or (None, None)
        mem = self.group.memory()
        self.samples.append((time.monotonic() - self.t0, disk[0], disk[1], proc[0],
                             proc[1], mem["anon"], mem["cache"], self.group.cpu_seconds()))

    def run(self):
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.every)

    def stop(self):
        self.halt.set()
        self.join()
        self.sample()

    def window(self, t0=0.0, t1=None):
        """Between times t0 and t1 (s from the start): read (blkio; /proc io without
        it), written (bytes the processes dirtied: /proc io), written_blkio (None
        without blkio), proc_read, peak_anon, peak_cache, cpu_s (cpuacct)."""
        s = self.samples
        t1 = s[-1][0] if t1 is None else t1
        first = max([x for x in s if x[0] <= t0] or s[:1], key=lambda x: x[0])
        last = min([x for x in s if x[0] >= t1] or s[-1:], key=lambda x: x[0])
        inside = [x for x in s if first[0] <= x[0] <= last[0]]
        blkio = last[1] is not None
        return {"proc_read": last[3] - first[3], "written": last[4] - first[4],
                "read": last[1] - first[1] if blkio else last[3] - first[3],
                "written_blkio": last[2] - first[2] if blkio else None,
                "read_source": "blkio" if blkio else "/proc/PID/io",
                "peak_anon": max(x[5] for x in inside),
                "peak_cache": max(x[6] for x in inside),
                "cpu_s": None if last[7] is None else last[7] - first[7]}
