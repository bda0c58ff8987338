# distutils: language = c++
# cython: language_level=3
"""The worker bridge's hot wire forms: the compiled twin of ``wire_py.py``.

``claimed`` writes the JSON of claimed jobs straight into one buffer: ids and
numbers as digits written in C, the payload copied as the bytes stored, the
digest by OpenSSL when built with it, and every string that may need escaping
encoded by orjson (names once per process, meta fields per job), so the output
is byte for byte what the twin's orjson makes of its dictionaries. ``plain_successes`` reads an ack's results with C
hex arithmetic instead of a regular expression and ``int(…, 16)`` per id.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_CheckExact
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_GET_LENGTH
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memcmp, memcpy, strlen
from libc.time cimport strftime, time_t, tm
from libcpp.string cimport string

import hashlib

import orjson

from .job_record cimport Job

cdef extern from "sha256_shim.h" nogil:
    int broker_sha256(const unsigned char *data, size_t n, unsigned char *out)

cdef extern from "<time.h>" nogil:
    tm *gmtime_r(const time_t *timep, tm *result)

cdef extern from "Python.h":
    object PyUnicode_DecodeLatin1(const char *s, Py_ssize_t size, const char *errors)
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)
    int PyUnicode_IS_COMPACT_ASCII(object o)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL

cdef bint _TCHAR[256]  # the bytes of an RFC 9110 token (a header name)
cdef const char *_TOKEN_CHARS = (
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
cdef Py_ssize_t _k
for _k in range(strlen(_TOKEN_CHARS)):
    _TCHAR[<unsigned char>_TOKEN_CHARS[_k]] = True
cdef bint _CTL[256]  # bytes no field value may hold: controls but HTAB (CR and LF end it)
for _k in range(32):
    _CTL[_k] = _k != 9 and _k != 10 and _k != 13
_CTL[127] = True

cdef uint64_t _TS = (1ULL << 48) - 1
cdef Py_ssize_t _CACHE_MAX = 65_536  # encoded names and backoffs kept between calls
_TOKEN_MAX = (1 << 64) - 1
cdef uint64_t _RAND_B = (1ULL << 62) - 1
cdef const char *_HEX = b"0123456789abcdef"
_sha256 = hashlib.sha256
_dumps = orjson.dumps


cdef inline char *_put(char *p, const char *s, size_t n) noexcept:
    """Write ``n`` bytes at ``p``; where the next write goes (a constant ``n``
    compiles to a few stores, where a ``std::string`` append was a call)."""
    memcpy(p, s, n)
    return p + n


cdef inline char *_put_bytes(char *p, bytes data) noexcept:
    return _put(p, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef inline char *_hex_at(char *p, uint64_t value, int digits) noexcept:
    """``digits`` lowercase hex digits of the low bits of ``value``."""
    cdef int i
    for i in range(digits - 1, -1, -1):
        p[i] = _HEX[value & 0xF]
        value >>= 4
    return p + digits


cdef inline char *_int_at(char *p, int64_t value) noexcept:
    """``value`` in decimal, as orjson writes an int (at most 20 bytes)."""
    cdef char buf[24]
    cdef int i = 24
    cdef uint64_t v = <uint64_t>value if value >= 0 else <uint64_t>(-(value + 1)) + 1
    while True:
        i -= 1
        buf[i] = c'0' + <char>(v % 10)
        v //= 10
        if v == 0:
            break
    if value < 0:
        i -= 1
        buf[i] = c'-'
    return _put(p, buf + i, 24 - i)


cdef inline char *_job_id_at(char *p, uint64_t created, uint64_t jid) noexcept:
    """The job's UUID (v7 layout) in its 36-character form."""
    cdef uint64_t hi = ((created & _TS) << 16) | 0x7000
    cdef uint64_t lo = (2ULL << 62) | (jid & _RAND_B)
    p = _hex_at(p, hi >> 32, 8)
    p[0] = c'-'
    p = _hex_at(p + 1, (hi >> 16) & 0xFFFF, 4)
    p[0] = c'-'
    p = _hex_at(p + 1, hi & 0xFFFF, 4)
    p[0] = c'-'
    p = _hex_at(p + 1, lo >> 48, 4)
    p[0] = c'-'
    return _hex_at(p + 1, lo & 0xFFFFFFFFFFFF, 12)


cdef inline void _hex(string &out, uint64_t value, int digits):
    cdef char buf[16]
    out.append(buf, _hex_at(buf, value, digits) - buf)


cdef inline void _int(string &out, int64_t value):
    cdef char buf[24]
    out.append(buf, _int_at(buf, value) - buf)


cdef inline void _raw(string &out, bytes data):
    out.append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef inline void _job_id(string &out, uint64_t created, uint64_t jid):
    cdef char buf[36]
    out.append(buf, _job_id_at(buf, created, jid) - buf)


cdef void _string(string &out, object text) except *:
    """``text`` as orjson writes it: copied between quotes when plain ASCII (as
    every job id is), else encoded by orjson."""
    cdef const char *s
    cdef Py_ssize_t i, n
    cdef char c
    if type(text) is str and PyUnicode_IS_COMPACT_ASCII(text):
        s = PyUnicode_AsUTF8AndSize(text, &n)
        for i in range(n):
            c = s[i]
            if c < 0x20 or c == c'"' or c == c'\\':
                break
        else:
            out.push_back(c'"')
            out.append(s, n)
            out.push_back(c'"')
            return
    _raw(out, _dumps(text))


cdef inline uint64_t _token(object token) except? 0:
    """A lease token as a C int; ValueError (the twin's) unless 0 <= token < 2**64."""
    if PyLong_CheckExact(token):
        try:
            return PyLong_AsUnsignedLongLong(token)
        except OverflowError:
            pass
    elif 0 <= token <= _TOKEN_MAX:
        return <uint64_t>token
    raise ValueError("claimed(): a lease token is not a 64-bit unsigned int")


cdef bytes _backoff(dict cache, object ms):
    """The retry hint's seconds as orjson writes ``ms / 1000``, kept by ``ms``."""
    found = cache.get(ms)
    if found is None:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        found = cache[ms] = _dumps(ms / 1000)
    return <bytes>found


cdef bytes _encoded(dict cache, object text):
    """orjson's encoding of ``text``, kept: names (tenants, job types) come back."""
    found = cache.get(text)
    if found is None:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        found = cache[text] = _dumps(text)
    return <bytes>found


@cython.final
cdef class Wire:
    """Encoder of claimed jobs and decoder of plain-success acks. Stateless as far
    as anyone can tell: it only keeps encodings it made (a name's JSON string, a
    backoff's JSON number), which depend on nothing but what they encode."""

    def __cinit__(self):
        self._names = {}
        self._seconds = {}
        self._second = -1
        self._prefix_len = 0

    cdef int _rfc3339(self, char *buf, int64_t ms) except -1:
        """``2026-11-27T10:00:00.123Z`` into ``buf`` (at least 32 bytes); its length.
        The date-and-second part is kept: lease deadlines mostly share it."""
        cdef int64_t second = ms // 1000
        cdef time_t t
        cdef tm parts
        if second != self._second:
            t = <time_t>second
            if gmtime_r(&t, &parts) == NULL:
                raise OverflowError("timestamp out of range")
            self._prefix_len = <int>strftime(self._prefix, 32, "%Y-%m-%dT%H:%M:%S.", &parts)
            self._second = second
        memcpy(buf, self._prefix, self._prefix_len)
        cdef int rest = <int>(ms % 1000)
        buf[self._prefix_len] = c'0' + <char>(rest // 100)
        buf[self._prefix_len + 1] = c'0' + <char>(rest // 10 % 10)
        buf[self._prefix_len + 2] = c'0' + <char>(rest % 10)
        buf[self._prefix_len + 3] = c'Z'
        return self._prefix_len + 4

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def claimed(
        self,
        jobs,
        tokens,
        deadlines,
        type_names,
        tenant_names,
        ceiling,
    ):
        cdef Py_ssize_t n = len(jobs)
        if len(tokens) != n or len(deadlines) != n:
            raise ValueError("claimed(): jobs, tokens and deadlines differ in length")
        cdef string out
        cdef char *p
        cdef size_t at = 1, need
        cdef char until[40]
        cdef int until_len = 0
        cdef int64_t until_ms = 0, deadline
        cdef bint have_until = False
        cdef unsigned char *digest
        cdef unsigned char sha[32]
        cdef Py_ssize_t i, k
        cdef int64_t created, jid, attempt, max_attempts, priority, jtype, tenant
        cdef int64_t last_jtype = -1, last_tenant = -1
        cdef uint64_t token
        cdef dict names = self._names
        cdef int64_t last_attempt = 0
        cdef bint have_attempt = False
        cdef bytes backoff = b""
        cdef bytes payload, hashed, type_json = b"", tenant_json = b""
        cdef bytes project = b"", correlation = b"", key = b"", run = b""
        out.resize(n * 420 + 2)
        out[0] = c'['
        for i in range(n):
            job = jobs[i]
            if type(job) is Job:
                created = (<Job>job).created
                jid = (<Job>job).jid
                attempt = (<Job>job).attempt
                max_attempts = (<Job>job).max_attempts
                priority = (<Job>job).priority
                jtype = (<Job>job).jtype
                tenant = (<Job>job).tenant
                payload = <bytes?>(<Job>job).payload
                meta = (<Job>job).meta
            else:
                created = job.created
                jid = job.jid
                attempt = job.attempt
                max_attempts = job.max_attempts
                priority = job.priority
                jtype = job.jtype
                tenant = job.tenant
                payload = <bytes?>job.payload
                meta = job.meta
            deadline = deadlines[i]
            if not have_until or deadline != until_ms:
                until_len = self._rfc3339(until, deadline)
                until_ms = deadline
                have_until = True
            token = _token(tokens[i])
            # a batch mostly shares its job type and tenant: their JSON is looked up once
            if jtype != last_jtype:
                type_json = _encoded(names, type_names[jtype])
                last_jtype = jtype
            if tenant != last_tenant:
                tenant_json = _encoded(names, tenant_names[tenant])
                last_tenant = tenant
            if meta:
                project = _dumps(meta.project)
                correlation = _dumps(meta.correlation_id)
                key = _dumps(meta.idempotency_key)
                run = _dumps(meta.run_id)
            if not have_attempt or attempt != last_attempt:  # mostly one attempt per claim
                backoff = _backoff(self._seconds, ceiling(attempt))
                last_attempt = attempt
                have_attempt = True
            # room for this job at most: its literals and numbers (512 bytes), and
            # what it holds
            need = (512 + len(payload) + len(type_json) + len(tenant_json) + len(backoff)
                    + (len(project) + len(correlation) + len(key) + len(run) if meta else 0))
            if at + need + 1 > out.size():
                out.resize(2 * (at + need + 1))
            p = &out[0] + at
            if i:
                p[0] = c','
                p += 1
            p = _put(p, b'{"jobId":"', 10)
            p = _job_id_at(p, <uint64_t>created, <uint64_t>jid)
            p = _put(p, b'","leaseId":"', 13)
            p = _hex_at(p, token, 16)
            p = _put(p, b'","leaseUntil":"', 16)
            p = _put(p, until, until_len)
            p = _put(p, b'","attempt":', 12)
            p = _int_at(p, attempt)
            p = _put(p, b',"maxAttempts":', 15)
            p = _int_at(p, max_attempts)
            p = _put(p, b',"jobType":', 11)
            p = _put_bytes(p, type_json)
            p = _put(p, b',"priority":', 12)
            p = _int_at(p, priority)
            p = _put(p, b',"tenant":', 10)
            p = _put_bytes(p, tenant_json)
            if not meta:
                p = _put(p, b',"project":null,"correlationId":null,"idempotencyKey":null,"runId":null', 71)
            else:
                p = _put(p, b',"project":', 11)
                p = _put_bytes(p, project)
                p = _put(p, b',"correlationId":', 17)
                p = _put_bytes(p, correlation)
                p = _put(p, b',"idempotencyKey":', 18)
                p = _put_bytes(p, key)
                p = _put(p, b',"runId":', 9)
                p = _put_bytes(p, run)
            p = _put(p, b',"payload":', 11)
            p = _put_bytes(p, payload)
            p = _put(p, b',"payloadDigest":"sha256:', 25)
            digest = sha
            if not broker_sha256(<unsigned char *>PyBytes_AS_STRING(payload),
                                 PyBytes_GET_SIZE(payload), sha):
                hashed = _sha256(payload).digest()
                digest = <unsigned char *>PyBytes_AS_STRING(hashed)
            for k in range(32):
                p[2 * k] = _HEX[digest[k] >> 4]
                p[2 * k + 1] = _HEX[digest[k] & 0xF]
            p = _put(p + 64, b'","retryHint":{"backoffSeconds":', 32)
            p = _put_bytes(p, backoff)
            p = _put(p, b'}}', 2)
            at = p - &out[0]
        out[at] = c']'
        return PyBytes_FromStringAndSize(out.data(), at + 1)

    def plain_successes(self, list results):
        cdef list jids = []
        cdef list tokens = []
        cdef Py_ssize_t i, n = PyList_GET_SIZE(results)
        cdef PyObject *value
        cdef uint64_t jid = 0, token = 0
        for i in range(n):
            result = <object>PyList_GET_ITEM(results, i)
            if type(result) is not dict:
                return None
            if PyDict_Size(result) != 3:  # exactly jobId, leaseId and status
                return None
            value = PyDict_GetItem(result, "status")
            if value == NULL or type(<object>value) is not str or <str>value != "succeeded":
                return None
            value = PyDict_GetItem(result, "jobId")
            if value == NULL or not _parse_job_number(<object>value, &jid):
                return None
            value = PyDict_GetItem(result, "leaseId")
            if value == NULL or not _parse_token(<object>value, &token):
                return None
            jids.append(jid)
            tokens.append(token)
        return jids, tokens

    def submitted(self, replies, state_names):
        cdef string out
        cdef dict names = self._names
        cdef Py_ssize_t i, n = len(replies)
        out.reserve(n * 80 + 10)
        out.append(b'{"jobs":[')
        for i in range(n):
            reply = replies[i]
            if i:
                out.push_back(c',')
            out.append(b'{"jobId":"')
            _job_id(out, <uint64_t>reply.created, <uint64_t>reply.jid)
            out.append(b'","state":')
            _raw(out, _encoded(names, state_names[reply.state]))
            out.append(b',"deduplicated":true}' if reply.deduplicated else b',"deduplicated":false}')
        out.append(b']}')
        return PyBytes_FromStringAndSize(out.data(), out.size())

    def ack_results(self, job_ids, replies, state_names):
        cdef string out
        cdef dict names = self._names
        cdef Py_ssize_t i, n = len(job_ids)
        if len(replies) != n:
            raise ValueError("ack_results(): job_ids and replies differ in length")
        cdef object last = None  # the engine mostly repeats one shared reply object
        cdef string tail
        out.reserve(n * 90 + 2)
        out.push_back(c'[')
        for i in range(n):
            reply = replies[i]
            if i:
                out.push_back(c',')
            out.append(b'{"jobId":')
            _string(out, job_ids[i])
            if reply is not last:
                tail.clear()
                outcome = reply.outcome
                if outcome == "accepted":
                    tail.append(b',"outcome":"accepted","state":')
                    _raw(tail, _encoded(names, state_names[reply.state]))
                else:
                    tail.append(b',"outcome":')
                    _raw(tail, _encoded(names, outcome))
                tail.push_back(c'}')
                last = reply
            out.append(tail)
        out.push_back(c']')
        return PyBytes_FromStringAndSize(out.data(), out.size())

    def request_head(self, bytes head, routes, max_body):
        cdef const char *s = PyBytes_AS_STRING(head)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(head)
        cdef Py_ssize_t i = 5, t_end, pos, name_end, v_start, v_end, line_end
        cdef char lowered[64]
        cdef int64_t length = -1, limit = max_body
        cdef uint64_t digits
        cdef bint keep_alive = True
        cdef dict headers = {}
        # request line: "POST <target> HTTP/1.1", then CRLF or the end of the head
        if n < 5 or memcmp(s, b"POST ", 5) != 0:
            return None
        while i < n and s[i] != c' ' and s[i] != c'\r':
            i += 1
        t_end = i
        if i >= n or s[i] != c' ':
            return None
        if n - (i + 1) < 8 or memcmp(s + i + 1, b"HTTP/1.1", 8) != 0:
            return None
        line_end = i + 9
        if line_end != n and (n - line_end < 2 or s[line_end] != c'\r' or s[line_end + 1] != c'\n'):
            return None
        target = PyBytes_FromStringAndSize(s + 5, t_end - 5)
        if target not in routes:
            return None
        if line_end == n:
            return None  # no Content-Length
        # fields: "name: value" lines; a name is a token, a value has no CR or LF
        pos = line_end + 2
        while True:
            name_end = pos
            while name_end < n and _TCHAR[<unsigned char>s[name_end]]:
                name_end += 1
            if name_end == pos or name_end >= n or s[name_end] != c':':
                return None
            v_start = name_end + 1
            v_end = v_start
            while v_end < n and s[v_end] != c'\r' and s[v_end] != c'\n':
                if _CTL[<unsigned char>s[v_end]]:
                    return None  # a control character: aiohttp's parser judges it
                v_end += 1
            if v_end < n and (s[v_end] == c'\n' or v_end + 1 >= n or s[v_end + 1] != c'\n'):
                return None  # a bare LF or CR
            line_end = v_end
            while v_start < v_end and (s[v_start] == c' ' or s[v_start] == c'\t'):
                v_start += 1
            while v_end > v_start and (s[v_end - 1] == c' ' or s[v_end - 1] == c'\t'):
                v_end -= 1
            if name_end - pos > 64:
                key = PyBytes_FromStringAndSize(s + pos, name_end - pos).lower().decode("latin-1")
            else:
                for i in range(name_end - pos):
                    lowered[i] = s[pos + i] | 0x20 if c'A' <= s[pos + i] <= c'Z' else s[pos + i]
                key = PyUnicode_DecodeLatin1(lowered, name_end - pos, NULL)
            value = PyBytes_FromStringAndSize(s + v_start, v_end - v_start)
            if key == "content-length":
                if length >= 0 or v_end - v_start < 1 or v_end - v_start > 19:
                    return None
                digits = 0
                for i in range(v_start, v_end):
                    if not c'0' <= s[i] <= c'9':
                        return None
                    digits = digits * 10 + <uint64_t>(s[i] - c'0')
                if digits > <uint64_t>INT64_MAX:
                    return None
                length = <int64_t>digits
            elif key == "transfer-encoding" or key == "expect" or key == "upgrade":
                return None
            elif key == "connection":
                keep_alive = b"close" not in value.lower()
            if PyDict_GetItem(headers, key) == NULL:  # the first value counts
                headers[key] = value
            if line_end >= n:
                break
            pos = line_end + 2
        if length < 0 or length > limit:
            return None
        return PyUnicode_DecodeASCII(s + 5, t_end - 5, NULL), length, headers, keep_alive

    def encode_each(self, list values):
        """``orjson.dumps(value)`` of every value, cut out of one encoding of the
        whole list: the same bytes (orjson writes a list's items as it writes them
        alone), without one output buffer allocated and shrunk per value, which
        costs more than the encoding itself once thousands are kept alive."""
        cdef list out = []
        if not values:
            return out
        cdef bytes data = _dumps(values)
        cdef const char *s = PyBytes_AS_STRING(data)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(data) - 1  # the closing bracket
        cdef Py_ssize_t i = 1, start = 1, depth = 0
        cdef char c
        while i < end:
            c = s[i]
            if c == c'"':
                i += 1
                while i < end and s[i] != c'"':
                    i += 2 if s[i] == c'\\' else 1
            elif c == c'[' or c == c'{':
                depth += 1
            elif c == c']' or c == c'}':
                depth -= 1
            elif c == c',' and depth == 0:
                out.append(PyBytes_FromStringAndSize(s + start, i - start))
                start = i + 1
            i += 1
        out.append(PyBytes_FromStringAndSize(s + start, end - start))
        return out


cdef inline int _nibble(char c):
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


cdef bint _hex_run(const char *text, int start, int end, uint64_t *value):
    cdef int i, d
    cdef uint64_t v = value[0]
    for i in range(start, end):
        d = _nibble(text[i])
        if d < 0:
            return False
        v = (v << 4) | <uint64_t>d
    value[0] = v
    return True


cdef bint _ascii(object text, Py_ssize_t length, const char **chars):
    cdef Py_ssize_t size
    if type(text) is not str or PyUnicode_GET_LENGTH(text) != length:
        return False
    if not PyUnicode_IS_COMPACT_ASCII(text):
        return False
    chars[0] = PyUnicode_AsUTF8AndSize(text, &size)
    return True


cdef bint _parse_job_number(object text, uint64_t *jid):
    """The job number of a jobId in the form ``wire_py.job_id`` writes (any case)."""
    cdef const char *s
    cdef uint64_t skip = 0, high = 0, low = 0
    cdef int variant
    if not _ascii(text, 36, &s):
        return False
    if s[8] != c'-' or s[13] != c'-' or s[18] != c'-' or s[23] != c'-':
        return False
    if s[14] != c'7' or s[15] != c'0' or s[16] != c'0' or s[17] != c'0':
        return False
    if not (_hex_run(s, 0, 8, &skip) and _hex_run(s, 9, 13, &skip)):
        return False
    variant = _nibble(s[19])
    if variant < 8 or variant > 11:
        return False
    if not (_hex_run(s, 20, 23, &high) and _hex_run(s, 24, 36, &low)):
        return False
    jid[0] = (<uint64_t>(variant & 0x3) << 60) | (high << 48) | low
    return True


cdef bint _parse_token(object text, uint64_t *token):
    cdef const char *s
    token[0] = 0
    if not _ascii(text, 16, &s):
        return False
    return _hex_run(s, 0, 16, token)
