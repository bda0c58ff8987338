from libc.stdint cimport int64_t, uint64_t
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector


cdef enum DagState:
    DAG_UNKNOWN = -1
    DAG_WAITING = 0
    DAG_READY = 1
    DAG_DONE = 2
    DAG_DEAD = 3
    DAG_BLOCKED = 4


cdef struct DagNode:
    int state
    int64_t unmet
    # equal to DagIndex._epoch when the node was already seen in the current
    # batch: duplicate detection without a hash set
    uint64_t stamp
    vector[int64_t] parents
    vector[int64_t] children


cdef class DagIndex:
    cdef unordered_map[int64_t, DagNode] _nodes
    cdef uint64_t _epoch
    # add() scratch, kept to reuse its storage: the distinct parents and their nodes
    cdef vector[int64_t] _pkeys
    cdef vector[DagNode*] _pnodes
    # complete_many() and fail() scratch, likewise: no allocation per call
    cdef vector[int64_t] _keys
    cdef vector[DagNode*] _batch
    cdef vector[int64_t] _todo

    cdef list _complete(self, object jobs, vector[int64_t]& keys, vector[DagNode*]& batch)

    cdef DagNode* _node(self, object job) except? NULL
