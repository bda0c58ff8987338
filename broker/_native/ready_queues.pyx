# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Ready queues: the compiled twin of ``ready_queues_py.py``.

Same API and the same algorithm step for step (the twin's docstring is the
specification): lazy removal with unique sequence numbers, a DRR ring per job
type with carried-over credit, hold/unhold, returns to the head of a lane, and
the strict priority+sequence merge for a single tenant.

The state is held in C++ containers rather than Python objects:

* ``_jobs``: job -> (seq, queue index), the membership map, an
  open-addressing hash table of 24-byte slots;
* ``_queues``: one struct per (tenant, job type), found through ``_queue_of``,
  each with ten circular-buffer lanes of (seq, job) entries;
* per job type a ring (std::deque of queue indices) and its head's credit;
  whether a queue is in its ring is a flag on the queue.
"""

from cpython.list cimport PyList_CheckExact
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check, PyLong_CheckExact
from cpython.sequence cimport (
    PySequence_Fast,
    PySequence_Fast_GET_ITEM,
    PySequence_Fast_GET_SIZE,
)
from cpython.tuple cimport PyTuple_CheckExact
from cython.operator cimport dereference as deref
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport free

cdef extern from "table_alloc.h" nogil:
    void *broker_table_alloc(size_t bytes)
cdef extern from "table_home.h" nogil:
    size_t broker_job_home(int64_t job, size_t size)
from libc.string cimport memcpy, memset
from libcpp.algorithm cimport find
from libcpp.unordered_set cimport unordered_set
from libcpp.vector cimport vector

import sys

_HASH_MODULUS = sys.hash_info.modulus

cdef enum:
    LANE_MIN = 4           # first buffer of a lane, in entries
    LANE_KEEP = 8          # an emptied lane keeps a buffer up to this size
    LINEAR_DEDUP = 16      # pop_many dedups up to this many types by scanning
    MAX_LANE = 0x80000000  # a lane's capacity is a uint32_t power of two
    EMPTY_SLOT = -1
    AHEAD = 16             # how many jobs ahead a batch prefetches table slots
    TABLE_MIN = 16         # first capacity of the job table


# -- argument checks ----------------------------------------------------------

cdef inline int64_t _id(object value, str what) except -1:
    cdef int overflow = 0
    cdef int64_t v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < 0:
        raise ValueError(f"{what} must be a non-negative int64")
    return v


cdef inline int _priority(object value) except -1:
    cdef int overflow = 0
    cdef int64_t v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < 0 or v >= PRIORITIES:
        raise ValueError("priority must be 0..9")
    return <int>v


cdef inline object _item(object fast, Py_ssize_t i):
    """Item ``i`` of a fast sequence, checked: converting an item may run Python code."""
    if i >= PySequence_Fast_GET_SIZE(fast):
        raise ValueError("batch columns must have the same length")
    return <object>PySequence_Fast_GET_ITEM(fast, i)


cdef int _as_key(object obj, int64_t *out) except -1:
    """1 when ``obj`` equals, as a dict key, a non-negative int64 (put in ``out``).

    The inspection methods take any object, as the twin's dict lookups do, and
    use only its ``__hash__`` and ``__eq__``: an unhashable one raises
    TypeError, an equal number (``2.0``) matches.
    """
    cdef int overflow = 0
    cdef int64_t v
    if PyLong_Check(obj):
        v = PyLong_AsLongLongAndOverflow(obj, &overflow)
        if overflow or v < 0:
            return 0
        out[0] = v
        return 1
    # the non-negative ints hashing like obj are h, h + M, h + 2M, ...
    candidate = hash(obj)
    while 0 <= candidate <= INT64_MAX:
        if obj == candidate:
            out[0] = candidate
            return 1
        candidate += _HASH_MODULUS
    return 0


# -- job table ----------------------------------------------------------------
# Robin Hood linear probing, at most 3/4 full, grown by half (a power-of-two
# table that doubles is 3/8 full on average; this one about 5/8, which is a
# third less memory per queued job). An insert may move other slots, so a Slot
# pointer is good only until the next insert, erase or rehash.
#
# A job's home keeps runs of 16 consecutive ids together (table_home.h), so a
# claim of jobs in the order they were numbered walks the table. Robin Hood
# order lets an erase stop at the first entry already at its home (a run of
# consecutive ids has no free slot in it).

cdef inline size_t _home(const JobTable *table, int64_t job) noexcept:
    return broker_job_home(job, table.cap)  # cap >= TABLE_MIN = 16


cdef inline size_t _next(const JobTable *table, size_t i) noexcept:
    i += 1
    return 0 if i == table.cap else i


cdef inline size_t _behind(const JobTable *table, size_t start, size_t i) noexcept:
    """How far slot ``i`` lies after slot ``start``, going round the end."""
    return i - start if i >= start else i + table.cap - start


cdef inline Slot *_jt_find(const JobTable *table, int64_t job) noexcept:
    cdef size_t i, dist = 0
    if table.size == 0:
        return NULL
    i = _home(table, job)
    while True:
        if table.slots[i].job == job:
            return &table.slots[i]
        # a free slot, or an entry nearer its home than ``job`` would be: absent
        if table.slots[i].job == EMPTY_SLOT or _behind(
            table, _home(table, table.slots[i].job), i
        ) < dist:
            return NULL
        i = _next(table, i)
        dist += 1


cdef inline void _jt_prefetch(const JobTable *table, int64_t job) noexcept:
    if table.slots != NULL:
        broker_prefetch(&table.slots[_home(table, job)])


cdef inline void _jt_prefetch_item(const JobTable *table, object fast, Py_ssize_t i) noexcept:
    """Prefetch the slot of item ``i`` of a fast sequence, if it is a plain int there."""
    cdef int overflow = 0
    cdef int64_t job
    cdef object item
    if i < PySequence_Fast_GET_SIZE(fast):
        item = <object>PySequence_Fast_GET_ITEM(fast, i)
        if PyLong_CheckExact(item):
            job = PyLong_AsLongLongAndOverflow(item, &overflow)
            if not overflow and job >= 0:
                _jt_prefetch(table, job)


cdef inline Slot *_jt_place(JobTable *table, Slot carry) noexcept:
    """Robin Hood insert of ``carry`` (its job absent, a free slot present): where it lands."""
    cdef size_t i = _home(table, carry.job)
    cdef size_t dist = 0, other
    cdef Slot *landed = NULL
    cdef Slot held
    while table.slots[i].job != EMPTY_SLOT:
        other = _behind(table, _home(table, table.slots[i].job), i)
        if other < dist:
            # the resident is nearer its home: ``carry`` takes its slot, it moves on
            held = table.slots[i]
            table.slots[i] = carry
            carry = held
            if landed == NULL:
                landed = &table.slots[i]
            dist = other
        i = _next(table, i)
        dist += 1
    table.slots[i] = carry
    return &table.slots[i] if landed == NULL else landed


cdef bint _jt_rehash(JobTable *table, size_t cap) noexcept:
    """Move every slot into a fresh array of ``cap`` slots.

    False, with the table unchanged, when memory runs out.
    """
    cdef Slot *old = table.slots
    cdef size_t old_cap = table.cap if old != NULL else 0
    cdef Slot *slots = <Slot *>broker_table_alloc(cap * sizeof(Slot))
    cdef size_t i
    if slots == NULL:
        return False
    for i in range(cap):
        slots[i].job = EMPTY_SLOT
    table.slots = slots
    table.cap = cap
    for i in range(old_cap):
        if old[i].job != EMPTY_SLOT:
            _jt_place(table, old[i])
    free(old)
    return True


cdef int _jt_reserve(JobTable *table, size_t n) except -1:
    """Make room for ``n`` jobs in all, so the next inserts cannot rehash."""
    cdef size_t cap = table.cap if table.slots != NULL else 0
    if n <= cap - cap // 4:
        return 0
    cap = cap + cap // 2 if cap else TABLE_MIN
    while n > cap - cap // 4:
        cap += cap // 2
    if not _jt_rehash(table, cap):
        raise MemoryError()
    return 0


cdef inline Slot *_jt_claim(JobTable *table, int64_t job, bint *added) except NULL:
    """The job's slot; a new one (job set, the rest for the caller) when absent."""
    cdef Slot *slot = _jt_find(table, job)
    cdef Slot fresh
    if slot != NULL:
        added[0] = False
        return slot
    _jt_reserve(table, table.size + 1)
    fresh.job = job
    fresh.seq = 0
    fresh.queue = -1
    fresh.priority = 0
    table.size += 1
    added[0] = True
    return _jt_place(table, fresh)


cdef inline void _jt_erase(JobTable *table, Slot *slot) noexcept:
    """Free a slot, shifting the rest of its run back by one (no tombstones).

    Robin Hood order lets the shift stop at a free slot or an entry at its home.
    """
    cdef size_t hole = slot - table.slots
    cdef size_t j = _next(table, hole)
    while table.slots[j].job != EMPTY_SLOT and _home(table, table.slots[j].job) != j:
        table.slots[hole] = table.slots[j]
        hole = j
        j = _next(table, j)
    table.slots[hole].job = EMPTY_SLOT
    table.size -= 1


cdef void _jt_compact(JobTable *table) noexcept:
    """Shrink a table under 1/8 full, so a drained structure gives memory back."""
    cdef size_t cap = table.cap if table.slots != NULL else 0
    cdef size_t target = cap
    while target > 1024 and table.size < target // 8:
        target //= 2
    if target != cap:
        _jt_rehash(table, target)  # on failure the bigger table simply stays


# -- lanes --------------------------------------------------------------------

cdef bint _lane_move(Lane *lane, uint32_t cap) noexcept:
    """Move the entries to a new buffer of ``cap`` entries; False if out of memory."""
    cdef Entry *buf = <Entry *>broker_table_alloc(cap * sizeof(Entry))
    cdef uint32_t first
    if buf == NULL:
        return False
    if lane.size:
        first = min(lane.size, lane.cap - lane.head)
        memcpy(buf, lane.buf + lane.head, first * sizeof(Entry))
        memcpy(buf + first, lane.buf, (lane.size - first) * sizeof(Entry))
    free(lane.buf)
    lane.buf = buf
    lane.cap = cap
    lane.head = 0
    return True


cdef inline int _lane_make_room(Lane *lane) except -1:
    if lane.size == lane.cap:
        if lane.cap >= MAX_LANE or not _lane_move(lane, lane.cap * 2 if lane.cap else LANE_MIN):
            raise MemoryError()
    return 0


cdef inline void _lane_clear(Lane *lane) noexcept:
    lane.size = 0
    lane.head = 0
    if lane.cap > LANE_KEEP:
        free(lane.buf)
        lane.buf = NULL
        lane.cap = 0


cdef inline void _lane_pop_front(Lane *lane) noexcept:
    lane.head = (lane.head + 1) & (lane.cap - 1)
    lane.size -= 1
    if lane.size == 0:
        _lane_clear(lane)
    elif lane.cap > LANE_KEEP and lane.size <= lane.cap >> 2:
        # shrink so a drained lane gives memory back; keep the buffer if that fails
        _lane_move(lane, lane.cap >> 1)


cdef inline void _clear_lanes(Queue *queue) noexcept:
    cdef int p
    for p in range(PRIORITIES):
        _lane_clear(&queue.lanes[p])
    queue.mask = 0


cdef class ReadyQueues:
    """Per (tenant, job type) priority + FIFO queues with DRR fairness."""

    def __cinit__(self):
        self._seq = 0
        self._front_seq = 0

    def __init__(self):
        # a no-argument __cinit__ alone would silently accept arguments
        pass

    def __dealloc__(self):
        cdef size_t i
        cdef int p
        for i in range(self._queues.size()):
            for p in range(PRIORITIES):
                free(self._queues[i].lanes[p].buf)
        free(self._jobs.slots)

    # -- inspection -------------------------------------------------------
    def __len__(self):
        return self._jobs.size

    def __contains__(self, job):
        cdef int64_t j
        return bool(_as_key(job, &j)) and _jt_find(&self._jobs, j) != NULL

    def depth(self, tenant, jtype):
        cdef int64_t t, y
        cdef int32_t qi
        if not (_as_key(tenant, &t) & _as_key(jtype, &y)):
            return 0
        qi = self._find_queue(t, y)
        return 0 if qi < 0 else self._queues[qi].depth

    def is_held(self, tenant, jtype):
        cdef int64_t t, y
        cdef int32_t qi
        if not (_as_key(tenant, &t) & _as_key(jtype, &y)):
            return False
        qi = self._find_queue(t, y)
        return False if qi < 0 else bool(self._queues[qi].held)

    def weight(self, tenant):
        cdef int64_t t
        if not _as_key(tenant, &t):
            return 1
        return self._weight(t)

    # -- configuration ----------------------------------------------------
    def set_weight(self, tenant, weight):
        cdef int64_t t = _id(tenant, "tenant")
        cdef int overflow = 0
        cdef int64_t w = PyLong_AsLongLongAndOverflow(weight, &overflow)
        if overflow or w < 1 or w > 1_000_000:
            raise ValueError("weight must be 1..1000000")
        self._weights[t] = w

    def set_held(self, tenant, jtype, held):
        """Hold a queue (paused, at its concurrency limit): pops skip it."""
        cdef int64_t t = _id(tenant, "tenant")
        cdef int64_t y = _id(jtype, "jtype")
        cdef bint hold = held
        cdef int32_t qi = self._queue(t, y)
        cdef Queue *queue = &self._queues[qi]
        queue.held = hold
        if not hold and queue.depth:
            self._enter_ring(queue, qi)

    # -- writes -----------------------------------------------------------
    def push(self, job, tenant, jtype, priority):
        cdef int64_t j = _id(job, "job")
        cdef int64_t t = _id(tenant, "tenant")
        cdef int64_t y = _id(jtype, "jtype")
        cdef int p = _priority(priority)
        cdef bint added
        cdef Slot *slot = _jt_claim(&self._jobs, j, &added)
        if not added:
            raise ValueError(f"job {j} is already queued")
        slot.seq = self._seq + 1
        slot.queue = -1
        slot.priority = p
        try:
            self._place(slot, self._queue(t, y), False)
        except BaseException:
            _jt_erase(&self._jobs, slot)
            raise
        self._seq += 1

    def push_many(self, jobs, tenants, jtypes, priorities):
        """Push a batch in order; it is checked whole before anything changes."""
        self._push_batch(jobs, tenants, jtypes, priorities, False)

    def push_front_many(self, jobs, tenants, jtypes, priorities):
        """Return jobs to the head of their lanes, keeping the order given.

        Used when jobs were popped but could not be leased: they go back
        ahead of everything of the same priority.
        """
        self._push_batch(jobs, tenants, jtypes, priorities, True)

    def remove(self, job):
        """Forget a queued job (cancel). Returns False when it was not queued."""
        cdef int64_t j
        cdef bint removed = _as_key(job, &j) and self._remove(j)
        _jt_compact(&self._jobs)
        return removed

    def remove_many(self, jobs):
        cdef Py_ssize_t removed = 0
        cdef Py_ssize_t i = 0
        cdef int64_t j
        if PyList_CheckExact(jobs) or PyTuple_CheckExact(jobs):
            # indexed (size re-read, as a list iterator does) to look ahead
            while i < PySequence_Fast_GET_SIZE(jobs):
                _jt_prefetch_item(&self._jobs, jobs, i + AHEAD)
                job = <object>PySequence_Fast_GET_ITEM(jobs, i)  # owned: __eq__ may drop it
                if _as_key(job, &j) and self._remove(j):
                    removed += 1
                i += 1
        else:
            for job in jobs:
                if _as_key(job, &j) and self._remove(j):
                    removed += 1
        _jt_compact(&self._jobs)
        return removed

    def pop_many(self, k, jtypes, tenant=-1):
        """Take up to ``k`` jobs of the given types (all tenants when ``tenant`` < 0)."""
        cdef int overflow = 0
        cdef int64_t kk = PyLong_AsLongLongAndOverflow(k, &overflow)
        cdef int64_t t
        cdef vector[int64_t] types
        cdef vector[int32_t] rings
        cdef vector[int64_t] out
        cdef unordered_map[int64_t, int32_t].iterator found
        cdef size_t before, i
        if overflow < 0 or (not overflow and kk < 0):
            raise ValueError("k must be >= 0")
        if overflow:
            kk = INT64_MAX
        _read_types(jtypes, &types)
        if kk == 0 or types.empty():
            return []
        t = PyLong_AsLongLongAndOverflow(tenant, &overflow)
        if overflow > 0:
            return []  # no queue belongs to a tenant beyond int64
        # reserved so that taking a job never has to grow (or fail to grow) ``out``
        out.reserve(<size_t>min(kk, <int64_t>self._jobs.size))
        if not overflow and t >= 0:
            self._pop_tenant(kk, &types, t, &out)
        else:
            # the ring of each type, resolved once: pops never create rings
            for i in range(types.size()):
                found = self._ring_of.find(types[i])
                if found != self._ring_of.end():
                    rings.push_back(deref(found).second)
            while <int64_t>out.size() < kk:
                before = out.size()
                for i in range(rings.size()):
                    if <int64_t>out.size() >= kk:
                        break
                    self._ring_turn(rings[i], kk - <int64_t>out.size(), &out)
                if out.size() == before:
                    break
        _jt_compact(&self._jobs)
        return out

    # -- internals --------------------------------------------------------
    cdef int32_t _find_queue(self, int64_t tenant, int64_t jtype):
        cdef rq_qkey key
        cdef queue_map.iterator it
        key.tenant = tenant
        key.jtype = jtype
        it = self._queue_of.find(key)
        return -1 if it == self._queue_of.end() else deref(it).second

    cdef int32_t _queue(self, int64_t tenant, int64_t jtype) except -1:
        """The index of the (tenant, jtype) queue, created empty when new."""
        cdef int32_t qi = self._find_queue(tenant, jtype)
        cdef int32_t ring
        cdef rq_qkey key
        cdef Queue *queue
        cdef unordered_map[int64_t, int32_t].iterator found
        if qi >= 0:
            return qi
        found = self._ring_of.find(jtype)
        if found == self._ring_of.end():
            # sized from the map so a half-done earlier attempt is simply redone
            ring = <int32_t>self._ring_of.size()
            self._rings.resize(ring + 1)
            self._credit.resize(ring + 1)
            self._ring_of[jtype] = ring
        else:
            ring = deref(found).second
        qi = <int32_t>self._queue_of.size()
        self._queues.resize(qi + 1)
        queue = &self._queues[qi]
        memset(queue, 0, sizeof(Queue))
        queue.tenant = tenant
        queue.ring = ring
        key.tenant = tenant
        key.jtype = jtype
        self._queue_of[key] = qi
        return qi

    cdef int _enter_ring(self, Queue *queue, int32_t qi) except -1:
        if not queue.in_ring:
            self._rings[queue.ring].push_back(qi)
            queue.in_ring = True
        return 0

    cdef int _place(self, Slot *slot, int32_t qi, bint front) except -1:
        """Put a claimed job (its slot has seq and priority) into queue ``qi``."""
        cdef Queue *queue = &self._queues[qi]
        cdef int p = slot.priority
        cdef Lane *lane = &queue.lanes[p]
        cdef Entry *entry
        if not queue.held:
            self._enter_ring(queue, qi)
        _lane_make_room(lane)
        if front:
            lane.head = (lane.head - 1) & (lane.cap - 1)
            entry = &lane.buf[lane.head]
        else:
            entry = &lane.buf[(lane.head + lane.size) & (lane.cap - 1)]
        entry.seq = slot.seq
        entry.job = slot.job
        lane.size += 1
        queue.mask |= 1 << p
        queue.depth += 1
        slot.queue = qi
        return 0

    cdef int _push_batch(self, jobs, tenants, jtypes, priorities, bint front) except -1:
        cdef Py_ssize_t n = len(jobs)
        cdef Py_ssize_t n_tenants = len(tenants)
        cdef Py_ssize_t n_jtypes = len(jtypes)
        cdef Py_ssize_t n_priorities = len(priorities)
        cdef Py_ssize_t i, r, rows
        cdef int64_t seq0, last_tenant = -1, last_jtype = -1
        cdef int32_t qi = -1
        cdef bint added
        cdef Slot *slot
        cdef vector[int64_t] job_of, tenant_of, jtype_of
        cdef vector[int] priority_of
        if n_tenants != n or n_jtypes != n or n_priorities != n:
            raise ValueError("batch columns must have the same length")
        if n == 0:
            return 0
        fj = PySequence_Fast(jobs, "jobs must be a sequence")
        ft = PySequence_Fast(tenants, "tenants must be a sequence")
        fy = PySequence_Fast(jtypes, "jtypes must be a sequence")
        fp = PySequence_Fast(priorities, "priorities must be a sequence")
        job_of.reserve(n)
        tenant_of.reserve(n)
        jtype_of.reserve(n)
        priority_of.reserve(n)
        # pass 1: read the rows. Python code (an item's __index__) runs only
        # here, before anything changes; the first bad row is raised after the
        # claims of the rows before it, which is the twin's row-by-row order.
        bad = None
        try:
            for i in range(n):
                job_of.push_back(_id(_item(fj, i), "job"))
                tenant_of.push_back(_id(_item(ft, i), "tenant"))
                jtype_of.push_back(_id(_item(fy, i), "jtype"))
                priority_of.push_back(_priority(_item(fp, i)))
                _jt_prefetch(&self._jobs, job_of[i])
        except Exception as exc:
            bad = exc
        rows = priority_of.size()
        # room for the whole batch: no claim rehashes midway
        _jt_reserve(&self._jobs, self._jobs.size + rows)
        # pass 2: claim a slot per row (queue -1 until placed);
        # row i gets seq0 + i, and push_front_many numbers below every seq so far
        seq0 = self._front_seq - n if front else self._seq + 1
        try:
            for i in range(rows):
                slot = _jt_claim(&self._jobs, job_of[i], &added)
                if not added:
                    if slot.queue < 0:
                        raise ValueError(f"job {job_of[i]} appears twice in the batch")
                    raise ValueError(f"job {job_of[i]} is already queued")
                slot.seq = seq0 + i
                slot.queue = -1
                slot.priority = priority_of[i]
            if bad is not None:
                raise bad
        except BaseException:
            self._unclaim(job_of.data(), rows)
            raise
        if front:
            self._front_seq = seq0
        else:
            self._seq = seq0 + n - 1
        # pass 3: place the rows; push_front_many goes last row first, as the twin
        try:
            for r in range(n):
                i = n - 1 - r if front else r
                if tenant_of[i] != last_tenant or jtype_of[i] != last_jtype:
                    last_tenant = tenant_of[i]
                    last_jtype = jtype_of[i]
                    qi = self._queue(last_tenant, last_jtype)
                # found again: a later claim may have moved the slot
                self._place(_jt_find(&self._jobs, job_of[i]), qi, front)
        except BaseException:
            self._unclaim(job_of.data(), n)
            raise
        return 0

    cdef void _unclaim(self, const int64_t *jobs, size_t n):
        """Free the slots of a failed batch's jobs that were claimed but not placed."""
        cdef size_t i
        cdef Slot *slot
        for i in range(n):
            slot = _jt_find(&self._jobs, jobs[i])
            if slot != NULL and slot.queue < 0:
                _jt_erase(&self._jobs, slot)

    cdef bint _remove(self, int64_t job):
        cdef Slot *slot = _jt_find(&self._jobs, job)
        cdef Queue *queue
        if slot == NULL:
            return False
        queue = &self._queues[slot.queue]
        _jt_erase(&self._jobs, slot)
        queue.depth -= 1
        if queue.depth == 0:
            _clear_lanes(queue)
        return True

    cdef int64_t _weight(self, int64_t tenant):
        cdef unordered_map[int64_t, int64_t].iterator it
        if self._weights.empty():
            return 1
        it = self._weights.find(tenant)
        return 1 if it == self._weights.end() else deref(it).second

    cdef int _head(self, Queue *queue):
        """The lane of the queue's next live job (-1 if none), dropping stale entries.

        The live job is then at the front of that lane.
        """
        cdef int p
        cdef Lane *lane
        cdef Entry *entry
        cdef Slot *slot
        while queue.mask:
            p = PRIORITIES - 1
            while not (queue.mask >> p) & 1:
                p -= 1
            lane = &queue.lanes[p]
            while lane.size:
                entry = &lane.buf[lane.head]
                slot = _jt_find(&self._jobs, entry.job)
                if slot != NULL and slot.seq == entry.seq:
                    return p
                _lane_pop_front(lane)
            queue.mask &= ~(1 << p)
        return -1

    cdef int _take(self, Queue *queue, int priority, vector[int64_t] *out) except -1:
        """Pop the live job that ``_head`` found at the front of lane ``priority``."""
        cdef Lane *lane = &queue.lanes[priority]
        cdef int64_t job = lane.buf[lane.head].job
        out.push_back(job)
        _jt_erase(&self._jobs, _jt_find(&self._jobs, job))
        if lane.size > AHEAD:
            _jt_prefetch(&self._jobs, lane.buf[(lane.head + AHEAD) & (lane.cap - 1)].job)
        _lane_pop_front(lane)
        if lane.size == 0:
            queue.mask &= ~(1 << priority)
        queue.depth -= 1
        return 0

    cdef int64_t _pop_queue(self, Queue *queue, int64_t n, vector[int64_t] *out) except -1:
        cdef int64_t taken = 0
        cdef int p
        while taken < n:
            p = self._head(queue)
            if p < 0:
                break
            self._take(queue, p, out)
            taken += 1
        if queue.depth == 0:
            _clear_lanes(queue)
        return taken

    cdef int64_t _ring_turn(self, int32_t ring, int64_t remaining, vector[int64_t] *out) except -1:
        cdef deque[int32_t] *tenants = &self._rings[ring]
        cdef int32_t qi
        cdef Queue *queue
        cdef int64_t credit, taken
        while not tenants.empty():
            qi = tenants.front()
            queue = &self._queues[qi]
            if queue.depth == 0 or queue.held:
                tenants.pop_front()
                queue.in_ring = False
                self._credit[ring] = 0
                continue
            credit = self._credit[ring]
            if credit <= 0:
                credit = self._weight(queue.tenant)
            taken = self._pop_queue(queue, min(credit, remaining), out)
            credit -= taken
            if queue.depth == 0:
                tenants.pop_front()
                queue.in_ring = False
                credit = 0
            elif credit == 0:
                tenants.push_back(qi)
                tenants.pop_front()
            self._credit[ring] = credit
            return taken
        return 0

    cdef int _pop_tenant(
        self, int64_t k, const vector[int64_t] *types, int64_t tenant, vector[int64_t] *out
    ) except -1:
        """Merge the tenant's queues by priority (higher first), then seq (lower first)."""
        cdef vector[int32_t] qis
        cdef vector[int] head_priority
        cdef vector[int64_t] head_seq
        cdef size_t i, best, n
        cdef int32_t qi
        cdef int p
        cdef Queue *queue
        for i in range(types.size()):
            qi = self._find_queue(tenant, deref(types)[i])
            if qi >= 0 and self._queues[qi].depth and not self._queues[qi].held:
                qis.push_back(qi)
        n = qis.size()
        if n == 0:
            return 0
        if n == 1:
            self._pop_queue(&self._queues[qis[0]], k, out)
            return 0
        # each queue's head is cached: taking from one queue leaves the others' alone
        head_priority.resize(n)
        head_seq.resize(n)
        for i in range(n):
            queue = &self._queues[qis[i]]
            p = self._head(queue)
            head_priority[i] = p
            head_seq[i] = queue.lanes[p].buf[queue.lanes[p].head].seq
        while <int64_t>out.size() < k and n:
            best = 0
            for i in range(1, n):
                if head_priority[i] > head_priority[best] or (
                    head_priority[i] == head_priority[best] and head_seq[i] < head_seq[best]
                ):
                    best = i
            queue = &self._queues[qis[best]]
            self._take(queue, head_priority[best], out)
            if queue.depth == 0:
                _clear_lanes(queue)
                # seqs are unique, so the order of the remaining queues is irrelevant
                n -= 1
                qis[best] = qis[n]
                head_priority[best] = head_priority[n]
                head_seq[best] = head_seq[n]
            else:
                p = self._head(queue)
                head_priority[best] = p
                head_seq[best] = queue.lanes[p].buf[queue.lanes[p].head].seq
        return 0


cdef int _read_types(object jtypes, vector[int64_t] *types) except -1:
    """The checked job types in first-seen order, duplicates dropped."""
    cdef vector[int64_t] given
    cdef unordered_set[int64_t] seen
    cdef size_t i
    for jtype in jtypes:
        given.push_back(_id(jtype, "jtype"))
    if given.size() <= LINEAR_DEDUP:
        for i in range(given.size()):
            if find(types.begin(), types.end(), given[i]) == types.end():
                types.push_back(given[i])
    else:
        for i in range(given.size()):
            if seen.insert(given[i]).second:
                types.push_back(given[i])
    return 0
