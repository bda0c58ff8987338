cdef class CopyCodec:
    pass
