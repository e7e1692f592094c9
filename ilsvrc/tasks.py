"""Task mode: which task of N this process is (flags or the scheduler's environment)
and which (split, shard) pairs each task owns; pure functions only.

Detection, first match wins (`detect`):
  1. --task-index I --task-count N (absl --task_index/--task_count);
  2. Slurm job arrays: SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN (divided by
     SLURM_ARRAY_TASK_STEP), count SLURM_ARRAY_TASK_COUNT;
  3. Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX, count from --task-count or
     ILSVRC_TASK_COUNT (Kubernetes does not export the number of completions);
  4. Google Cloud Batch: BATCH_TASK_INDEX, BATCH_TASK_COUNT;
  5. AWS Batch array jobs: AWS_BATCH_JOB_ARRAY_INDEX, count from --task-count or
     ILSVRC_TASK_COUNT.
--task-count alone takes the index from the environment.  ILSVRC_TASK_COUNT=0 (or
--task-count 0) turns detection off: an ordinary run even inside an array job.
A count of 1 is an ordinary run too.

Partition (`partition`): shards are dealt out by size, largest first, each to the
task with the fewest bytes so far (ties: the lower task number), shards in plan
order among equals; empty shards (beyond the data) go to the task with the fewest.  Every task computes the same assignment from the same plan, so
no coordination is needed and the union of N tasks is exactly the whole plan.
"""

import collections

from ilsvrc.errors import UsageError

COUNT_VAR = "ILSVRC_TASK_COUNT"

Task = collections.namedtuple("Task", "index count how")
Task.__doc__ = "Task `index` (0-based) of `count`; `how` says where that came from."


def _int(value, name):
    try:
        return int(str(value).strip())
    except ValueError:
        raise UsageError("%s=%r is not a whole number" % (name, value))


def detect(task_index=None, task_count=None, environ=None):
    """The Task this process is, or None for an ordinary (whole) run.

    UsageError (one line) for contradictory or incomplete settings.
    """
    env = {} if environ is None else environ
    if task_count is None and env.get(COUNT_VAR, "").strip():
        count_given, count_how = _int(env[COUNT_VAR], COUNT_VAR), "%s=%s" % (
            COUNT_VAR, env[COUNT_VAR].strip())
    elif task_count is not None:
        count_given, count_how = task_count, "--task-count %d" % task_count
    else:
        count_given, count_how = None, None
    if count_given is not None and count_given < 0:
        raise UsageError("the task count must be 1 or more (0 or 1: an ordinary run)")
    if count_given == 0:
        if task_index not in (None, 0):
            raise UsageError("--task-index %d needs a task count of at least %d"
                             % (task_index, task_index + 1))
        return None
    if task_index is not None:
        if count_given is None:
            raise UsageError("--task-index needs --task-count (the number of tasks)")
        return _checked(task_index, count_given, "--task-index %d, %s"
                        % (task_index, count_how))
    found = _from_environment(env, count_given, count_how)
    if found is None:
        if count_given is not None and count_given > 1:
            raise UsageError("%s but no task index: pass --task-index I, or run under "
                             "a scheduler that sets one (SLURM_ARRAY_TASK_ID, "
                             "JOB_COMPLETION_INDEX, BATCH_TASK_INDEX, "
                             "AWS_BATCH_JOB_ARRAY_INDEX)" % count_how)
        return None
    return found


def _checked(index, count, how):
    if count < 1:
        raise UsageError("the task count must be 1 or more (%s)" % how)
    if not 0 <= index < count:
        raise UsageError("task index %d is outside 0..%d (%s)" % (index, count - 1, how))
    if count == 1:
        return None
    return Task(index, count, how)


def _from_environment(env, count_given, count_how):
    def has(name):
        return env.get(name, "").strip() != ""

    if has("SLURM_ARRAY_TASK_ID"):
        tid = _int(env["SLURM_ARRAY_TASK_ID"], "SLURM_ARRAY_TASK_ID")
        low = _int(env.get("SLURM_ARRAY_TASK_MIN", "0") or "0", "SLURM_ARRAY_TASK_MIN")
        step = _int(env.get("SLURM_ARRAY_TASK_STEP", "1") or "1", "SLURM_ARRAY_TASK_STEP")
        if not has("SLURM_ARRAY_TASK_COUNT") and count_given is None:
            raise UsageError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is "
                             "not: pass --task-count N")
        count = count_given if count_given is not None else \
            _int(env["SLURM_ARRAY_TASK_COUNT"], "SLURM_ARRAY_TASK_COUNT")
        if has("SLURM_ARRAY_TASK_COUNT") and count_given is not None and \
                count_given != _int(env["SLURM_ARRAY_TASK_COUNT"], "x"):
            raise UsageError("%s but SLURM_ARRAY_TASK_COUNT=%s: give the array's size"
                             % (count_how, env["SLURM_ARRAY_TASK_COUNT"]))
        if step < 1 or (tid - low) % step:
            raise UsageError("SLURM_ARRAY_TASK_ID=%d is not on the array's grid (min %d, "
                             "step %d)" % (tid, low, step))
        how = "SLURM_ARRAY_TASK_ID=%d" % tid
        if low:
            how += " - SLURM_ARRAY_TASK_MIN=%d" % low
        if step != 1:
            how += " / SLURM_ARRAY_TASK_STEP=%d" % step
        how += ", " + (count_how or "SLURM_ARRAY_TASK_COUNT=%d" % count)
        return _checked((tid - low) // step, count, how)
    if has("JOB_COMPLETION_INDEX"):
        idx = _int(env["JOB_COMPLETION_INDEX"], "JOB_COMPLETION_INDEX")
        if count_given is None:
            raise UsageError("JOB_COMPLETION_INDEX=%d is set (Kubernetes Indexed Job) but "
                             "not the number of tasks: set %s to the Job's completions "
                             "or pass --task-count N" % (idx, COUNT_VAR))
        return _checked(idx, count_given, "JOB_COMPLETION_INDEX=%d, %s" % (idx, count_how))
    if has("BATCH_TASK_INDEX"):
        idx = _int(env["BATCH_TASK_INDEX"], "BATCH_TASK_INDEX")
        if count_given is None and not has("BATCH_TASK_COUNT"):
            raise UsageError("BATCH_TASK_INDEX is set but BATCH_TASK_COUNT is not: pass "
                             "--task-count N")
        count = count_given if count_given is not None else \
            _int(env["BATCH_TASK_COUNT"], "BATCH_TASK_COUNT")
        return _checked(idx, count, "BATCH_TASK_INDEX=%d, %s"
                        % (idx, count_how or "BATCH_TASK_COUNT=%d" % count))
    if has("AWS_BATCH_JOB_ARRAY_INDEX"):
        idx = _int(env["AWS_BATCH_JOB_ARRAY_INDEX"], "AWS_BATCH_JOB_ARRAY_INDEX")
        if count_given is None:
            raise UsageError("AWS_BATCH_JOB_ARRAY_INDEX=%d is set but not the number of "
                             "tasks: set %s to the array size or pass --task-count N"
                             % (idx, COUNT_VAR))
        return _checked(idx, count_given, "AWS_BATCH_JOB_ARRAY_INDEX=%d, %s"
                        % (idx, count_how))
    return None


def partition(weights, count):
    """Deal items out to `count` tasks: [task of item i] for weights[i] >= 0.

    Largest first to the least loaded task (ties: fewer items, then the lower task
    number), items of equal weight in their given order; items of weight 0 go to
    the task with the fewest items.  Deterministic.
    """
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    load = [0] * count
    shards = [0] * count
    owner = [0] * len(weights)
    for i in order:
        if weights[i]:
            t = min(range(count), key=lambda k: (load[k], shards[k], k))
        else:   # empty shards (beyond the data) cost a file each: spread them
            t = min(range(count), key=lambda k: (shards[k], load[k], k))
        owner[i] = t
        load[t] += weights[i]
        shards[t] += 1
    return owner


def owned(keys, weights, task):
    """The keys (e.g. (prefix, shard)) that `task` owns, in the given order; every
    key when task is None."""
    if task is None:
        return list(keys)
    owner = partition(weights, task.count)
    return [k for k, t in zip(keys, owner) if t == task.index]


def ranges_text(numbers):
    """'0-3, 7, 9-10' for [0, 1, 2, 3, 7, 9, 10]."""
    out, run = [], None
    for n in sorted(numbers):
        if run and n == run[1] + 1:
            run[1] = n
        else:
            if run:
                out.append(run)
            run = [n, n]
    if run:
        out.append(run)
    return ", ".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out)


def describe(task, mine, total, nbytes=None):
    """The line a task prints at start: who it is, how it knew, what it owns.

    `mine` = [(prefix, k)] owned; `total` = number of shards in the plan.
    """
    by = collections.OrderedDict()
    for prefix, k in mine:
        by.setdefault(prefix, []).append(k)
    parts = ["%s %s" % (p, ranges_text(ks)) for p, ks in by.items()] or ["nothing"]
    size = ""
    if nbytes is not None:
        size = " (%.2f GB of images)" % (nbytes / 1e9) if nbytes >= 1e8 else \
            " (%.1f MB of images)" % (nbytes / 1e6)
    return ("task %d of %d (from %s): owns %d of %d shards%s: %s"
            % (task.index, task.count, task.how, len(mine), total, size,
               "; ".join(parts)))


def shard_weights(split):
    """Bytes of images in each shard of a write.Split (image counts when the sizes
    are unknown, as for extracted trees); the same on every task."""
    sizes = [0] * split.count
    known = True
    for j in range(split.count):
        size = split.item(j).size
        if size < 0:
            known = False
            break
        sizes[j] = size
    out = []
    for start, end in split.ranges:
        out.append(sum(sizes[start:end]) if known else end - start)
    return out


def owned_shards(splits, task, log=None):
    """[(split, k)] of the shards `task` writes (all of them when task is None);
    with `log`, write the task's line saying who it is and what it owns."""
    keys = [(split, k) for split in splits for k in range(split.num_shards)]
    if task is None:
        return keys
    weights = [w for split in splits for w in shard_weights(split)]
    mine = owned(keys, weights, task)
    if log is not None:
        known = all(not s.count or s.item(0).size >= 0 for s in splits)
        chosen = set(mine)
        nbytes = sum(w for key, w in zip(keys, weights) if key in chosen)
        log.write(describe(task, [(s.prefix, k) for s, k in mine], len(keys),
                           nbytes if known else None) + "\n")
    return mine
