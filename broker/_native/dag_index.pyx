# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""DAG index: the compiled twin of ``dag_index_py.py``, which is its specification.

Nodes live in an ``unordered_map`` keyed by job id; parents and children are
vectors of ids, looked up again on every walk so that a discarded (or discarded
and re-added) job behaves exactly as in the twin. Ids are int64: a lookup with
an int out of that range finds nothing, and one with another value (1.0) finds
the int it equals, as a dict lookup would; ``add`` takes ints only.
"""

cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cython.operator cimport dereference as deref
from libc.stdint cimport int64_t
from libcpp.vector cimport vector

WAITING = DAG_WAITING
READY = DAG_READY
DONE = DAG_DONE
DEAD = DAG_DEAD
BLOCKED = DAG_BLOCKED
UNKNOWN = DAG_UNKNOWN


from ._keys cimport dict_key as _as_key


cdef enum:
    SCRATCH_KEEP = 65536  # a scratch vector kept between calls holds at most this many


cdef inline int64_t _job_arg(object job) except? -1:
    """A job id to store: a non-negative int64, else ValueError like the twin."""
    cdef int overflow = 0
    cdef long long value = PyLong_AsLongLongAndOverflow(job, &overflow)
    if overflow or value < 0:
        raise ValueError("job must be a non-negative int64")
    return value


@cython.auto_pickle(False)
cdef class DagIndex:
    """Readiness and failure propagation over job dependencies."""

    def __init__(self):
        self._nodes.clear()

    def __len__(self):
        return self._nodes.size()

    def __contains__(self, job):
        return self._node(job) != NULL

    cdef DagNode* _node(self, object job) except? NULL:
        cdef int64_t key
        if not _as_key(job, &key):
            return NULL
        it = self._nodes.find(key)
        if it == self._nodes.end():
            return NULL
        return &deref(it).second

    def state(self, job):
        cdef DagNode* node = self._node(job)
        return DAG_UNKNOWN if node == NULL else node.state

    def unmet(self, job):
        cdef DagNode* node = self._node(job)
        return -1 if node == NULL else node.unmet

    def parents(self, job):
        cdef DagNode* node = self._node(job)
        return [] if node == NULL else node.parents

    def children(self, job):
        cdef DagNode* node = self._node(job)
        return [] if node == NULL else node.children

    def add(self, job, parents):
        """Add a job depending on ``parents`` (known jobs); returns its state.

        Parents that are DONE count as met; a DEAD or BLOCKED parent makes the
        new job BLOCKED at once.
        """
        cdef int64_t key = _job_arg(job)
        cdef int64_t pkey
        cdef DagNode* pnode
        cdef Py_ssize_t i
        if self._nodes.count(key):
            raise ValueError(f"job {job} is already in the DAG")
        self._epoch += 1
        self._pkeys.clear()
        self._pnodes.clear()
        for parent in parents:
            if not _as_key(parent, &pkey):
                raise ValueError(f"unknown parent {parent}")
            if pkey == key:
                raise ValueError("a job cannot depend on itself")
            it = self._nodes.find(pkey)
            if it == self._nodes.end():
                raise ValueError(f"unknown parent {parent}")
            pnode = &deref(it).second
            if pnode.stamp == self._epoch:
                continue
            pnode.stamp = self._epoch
            self._pkeys.push_back(pkey)
            self._pnodes.push_back(pnode)
        # unordered_map never moves its elements, so the parent pointers
        # survive the insertion of the new node
        cdef DagNode* node = &self._nodes[key]
        cdef bint blocked = False
        node.unmet = 0
        node.stamp = 0
        for i in range(<Py_ssize_t>self._pnodes.size()):
            pnode = self._pnodes[i]
            pnode.children.push_back(key)
            if pnode.state == DAG_DEAD or pnode.state == DAG_BLOCKED:
                blocked = True
            elif pnode.state != DAG_DONE:
                node.unmet += 1
        node.parents.assign(self._pkeys.begin(), self._pkeys.end())
        if blocked:
            node.state = DAG_BLOCKED
        elif node.unmet == 0:
            node.state = DAG_READY
        else:
            node.state = DAG_WAITING
        return node.state

    def complete_many(self, jobs):
        """Mark READY jobs DONE; returns children that became READY, in order."""
        # The scratch vectors are taken for the call: reading ``jobs`` may run Python
        # code (an iterator, ``__index__``, ``__hash__``), and a nested call from there
        # then makes its own. Nothing changes until every job was read; from then on
        # no Python code runs, so the node pointers stay valid.
        cdef vector[int64_t] keys
        cdef vector[DagNode*] batch
        keys.swap(self._keys)
        batch.swap(self._batch)
        try:
            return self._complete(jobs, keys, batch)
        finally:
            keys.clear()
            batch.clear()
            if keys.capacity() <= SCRATCH_KEEP:  # one huge batch does not pin its memory
                self._keys.swap(keys)
                self._batch.swap(batch)

    cdef list _complete(self, object jobs, vector[int64_t]& keys, vector[DagNode*]& batch):
        cdef list ready = []
        cdef DagNode* node
        cdef DagNode* cnode
        cdef bint duplicate = False
        cdef Py_ssize_t i, j
        cdef int64_t key, child
        cdef object bad = None  # the first job that is no key at all
        cdef bint have_bad = False
        for job in jobs:
            if not _as_key(job, &key):
                bad, have_bad = job, True
                break
            keys.push_back(key)
        self._epoch += 1
        for i in range(<Py_ssize_t>keys.size()):
            it = self._nodes.find(keys[i])
            if it == self._nodes.end() or deref(it).second.state != DAG_READY:
                raise ValueError(f"job {keys[i]} is not READY in the DAG")
            node = &deref(it).second
            # the twin reports a duplicate only once every job passed the READY check
            if node.stamp == self._epoch:
                duplicate = True
            node.stamp = self._epoch
            batch.push_back(node)
        if have_bad:
            raise ValueError(f"job {bad} is not READY in the DAG")
        if duplicate:
            raise ValueError("a job appears twice in the batch")
        for i in range(<Py_ssize_t>batch.size()):
            node = batch[i]
            node.state = DAG_DONE
            for j in range(<Py_ssize_t>node.children.size()):
                child = node.children[j]
                it = self._nodes.find(child)
                if it == self._nodes.end():
                    continue
                cnode = &deref(it).second
                if cnode.state != DAG_WAITING:
                    continue
                cnode.unmet -= 1
                if cnode.unmet == 0:
                    cnode.state = DAG_READY
                    ready.append(child)
        return ready

    def fail(self, job):
        """Mark a WAITING/READY job DEAD; returns the descendants now BLOCKED (BFS order)."""
        cdef DagNode* node = self._node(job)
        if node == NULL or (node.state != DAG_WAITING and node.state != DAG_READY):
            raise ValueError(f"job {job} cannot fail in the DAG")
        node.state = DAG_DEAD
        cdef list blocked = []
        cdef vector[int64_t]* todo = &self._todo
        todo.assign(node.children.begin(), node.children.end())
        cdef size_t head = 0
        cdef int64_t child
        cdef DagNode* cnode
        while head < todo.size():
            child = todo[0][head]
            head += 1
            it = self._nodes.find(child)
            if it == self._nodes.end():
                continue
            cnode = &deref(it).second
            if cnode.state != DAG_WAITING and cnode.state != DAG_READY:
                continue
            cnode.state = DAG_BLOCKED
            blocked.append(child)
            todo.insert(todo.end(), cnode.children.begin(), cnode.children.end())
        if todo.capacity() > SCRATCH_KEEP:
            todo.clear()
            todo.shrink_to_fit()
        return blocked

    def reset(self, job):
        """Bring a DEAD or BLOCKED job back (replay); returns its new state.

        Unmet parents are counted afresh; a parent that was discarded counts
        as succeeded. It stays BLOCKED while a parent is DEAD or BLOCKED.
        """
        cdef DagNode* node = self._node(job)
        if node == NULL or (node.state != DAG_DEAD and node.state != DAG_BLOCKED):
            raise ValueError(f"job {job} is not DEAD or BLOCKED")
        cdef int64_t unmet = 0
        cdef bint blocked = False
        cdef DagNode* pnode
        cdef Py_ssize_t i
        for i in range(<Py_ssize_t>node.parents.size()):
            it = self._nodes.find(node.parents[i])
            if it == self._nodes.end():
                continue
            pnode = &deref(it).second
            if pnode.state == DAG_DONE:
                continue
            if pnode.state == DAG_DEAD or pnode.state == DAG_BLOCKED:
                blocked = True
            else:
                unmet += 1
        node.unmet = unmet
        if blocked:
            node.state = DAG_BLOCKED
        elif unmet == 0:
            node.state = DAG_READY
        else:
            node.state = DAG_WAITING
        return node.state

    def discard(self, job):
        """Forget a job (its run is finished); children keep their counts."""
        cdef int64_t key
        if not _as_key(job, &key):
            return False
        return self._nodes.erase(key) != 0
