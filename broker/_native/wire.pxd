cdef class Wire:
    pass
