# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""ESJsonEncoder's bulk item (action line, document, newline) written in typed code.

A second implementation of ESJsonEncoder.encode for its usual configuration (every
dynamic field, no raw fields, dots kept): the item goes straight from the message's
headers and fields into one growing C buffer, with Heka's escaping (control characters,
quote and backslash as \\u00xx; everything else raw UTF-8) done on the bytes, eight at
a time where none needs it, and no intermediate str, dict or orjson call. The Python
code in es_json.py stays the reference: `encode` returns None for anything it does not
write exactly as the reference would (a lone surrogate, a BYTES field, an integer
beyond 64 bits, a value of an unexpected type, a Uuid that is not 16 bytes), and the
encoder then runs the reference. Which one runs is chosen by collector/compiled.py
(`typed_module`): HEKAPY_PURE=1 or a build without Cython selects the reference;
tests/outputs/test_es_doc_writer.py holds both to the same bytes.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport copysign
from libc.stdint cimport uint64_t
from libc.string cimport memcpy


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bytes PyUnicode_AsUTF8String(object)
    char* PyOS_double_to_string(double, char, int, int, int*) except NULL


# The members of the document, in the order `fields` names them: C constants, and the
# same numbers under Python names for the encoder.
cdef enum Member:
    M_DYNAMIC_FIELDS, M_TIMESTAMP, M_SEVERITY, M_PID, M_UUID, M_TYPE, M_LOGGER, M_PAYLOAD,
    M_ENV_VERSION, M_HOSTNAME

DYNAMIC_FIELDS = M_DYNAMIC_FIELDS
TIMESTAMP = M_TIMESTAMP
SEVERITY = M_SEVERITY
PID = M_PID
UUID = M_UUID
TYPE = M_TYPE
LOGGER = M_LOGGER
PAYLOAD = M_PAYLOAD
ENV_VERSION = M_ENV_VERSION
HOSTNAME = M_HOSTNAME

DEF MAX_MEMBERS = 16  # `fields` names each of the 10 members at most once
DEF KEEP_BYTES = 65536  # the buffer's size kept after an item larger than KEEP_LIMIT
DEF KEEP_LIMIT = 1048576
DEF V_BYTES = 1
DEF V_INTEGER = 2
DEF V_DOUBLE = 3
DEF V_BOOL = 4

# Byte → whether Heka escapes it in a document string.
cdef unsigned char ESCAPE[256]
for _i in range(256):
    ESCAPE[_i] = 1 if (_i < 0x20 or _i == 34 or _i == 92) else 0
cdef const char* HEX = b"0123456789abcdef"
cdef uint64_t ONES = 0x0101010101010101ULL
cdef uint64_t HIGHS = 0x8080808080808080ULL


cdef inline bint word_is_plain(uint64_t w):
    """No byte of `w` is below 0x20, a quote or a backslash (the borrow tricks are exact
    about whether any byte is; bytes >= 0x80 never count)."""
    cdef uint64_t low = (w - ONES * 0x20) & ~w
    cdef uint64_t quote = w ^ (ONES * 0x22)
    cdef uint64_t backslash = w ^ (ONES * 0x5C)
    quote = (quote - ONES) & ~quote
    backslash = (backslash - ONES) & ~backslash
    return ((low | quote | backslash) & HIGHS) == 0


class Fallback(Exception):
    """Raised inside the writer for a value only the reference writes exactly."""


cdef class DocumentWriter:
    cdef char* buf
    cdef Py_ssize_t cap
    cdef Py_ssize_t n
    cdef bint busy         # encode() is running: a re-entrant call gets None
    cdef int count
    cdef int codes[MAX_MEMBERS]
    cdef list keys         # b'"key":' per member (None for the dynamic fields)
    cdef bint uuid_id      # the action line's _id is the Uuid (LMA's `id = "%{UUID}"`)
    cdef object render_time
    cdef long long time_second
    cdef bytes time_escaped

    def __cinit__(self):
        self.cap = 4096
        self.buf = <char*>PyMem_Malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.n = 0
        self.busy = False

    def __dealloc__(self):
        PyMem_Free(self.buf)

    def __init__(self, members, render_time, bint uuid_id):
        """members: (code, key) per document member in order, the key being the
        `"name":` text of that member (None for DYNAMIC_FIELDS); render_time: the
        encoder's ns → text (the same text all through a second); uuid_id: encode() is
        given the action line's head and writes `,"_id":"<Uuid>"}}` itself."""
        if len(members) > MAX_MEMBERS:
            raise ValueError("too many document members")
        self.count = len(members)
        self.keys = []
        for i, (code, key) in enumerate(members):
            self.codes[i] = code
            self.keys.append(None if key is None else key.encode("utf-8"))
        self.render_time = render_time
        self.uuid_id = uuid_id
        self.time_second = -1
        self.time_escaped = None

    cdef inline int reserve(self, Py_ssize_t more) except -1:
        cdef Py_ssize_t want = self.n + more
        cdef Py_ssize_t cap = self.cap
        cdef char* grown
        if want <= cap:
            return 0
        while cap < want:
            cap *= 2
        grown = <char*>PyMem_Realloc(self.buf, cap)
        if grown == NULL:
            raise MemoryError()
        self.buf = grown
        self.cap = cap
        return 0

    cdef inline int raw(self, const char* s, Py_ssize_t length) except -1:
        self.reserve(length)
        memcpy(self.buf + self.n, s, length)
        self.n += length
        return 0

    cdef inline int byte(self, char c) except -1:
        self.reserve(1)
        self.buf[self.n] = c
        self.n += 1
        return 0

    cdef int escaped(self, const unsigned char* s, Py_ssize_t length) except -1:
        """Heka's document escaping of UTF-8 bytes: runs of plain bytes copied whole,
        looked through eight at a time."""
        cdef Py_ssize_t i = 0, start, stop
        cdef unsigned char c
        cdef uint64_t w
        cdef char* out
        while i < length:
            start = i
            while True:
                while i + 8 <= length:
                    memcpy(&w, s + i, 8)
                    if not word_is_plain(w):
                        break
                    i += 8
                stop = i + 8 if i + 8 < length else length
                while i < stop and not ESCAPE[s[i]]:
                    i += 1
                if i >= length or ESCAPE[s[i]]:
                    break
            if i > start:
                self.raw(<const char*>s + start, i - start)
            if i < length:
                c = s[i]
                self.reserve(6)
                out = self.buf + self.n
                out[0] = 92  # \
                out[1] = 117  # u
                out[2] = 48  # 0
                out[3] = 48
                out[4] = HEX[c >> 4]
                out[5] = HEX[c & 15]
                self.n += 6
                i += 1
        return 0

    cdef int text(self, object value, bint escape) except -1:
        """A str's UTF-8 bytes (escaped, or raw); Fallback for a lone surrogate (the
        reference writes it as "?") or a value that is not a str."""
        cdef bytes utf8
        if type(value) is not str:
            raise Fallback()
        if PyUnicode_IS_ASCII(value):
            if escape:
                self.escaped(<const unsigned char*>PyUnicode_DATA(value),
                             PyUnicode_GET_LENGTH(value))
            else:
                self.raw(<const char*>PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value))
            return 0
        try:
            utf8 = PyUnicode_AsUTF8String(value)
        except UnicodeEncodeError:
            raise Fallback() from None
        if escape:
            self.escaped(<const unsigned char*>PyBytes_AS_STRING(utf8),
                         PyBytes_GET_SIZE(utf8))
        else:
            self.raw(PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8))
        return 0

    cdef inline int string(self, object value) except -1:
        self.byte(34)
        self.text(value, True)
        self.byte(34)
        return 0

    cdef int decimal(self, long long v) except -1:
        cdef char digits[24]
        cdef int i = 24
        cdef unsigned long long u = <unsigned long long>(-(v + 1)) + 1 if v < 0 else \
            <unsigned long long>v
        while True:
            i -= 1
            digits[i] = 48 + <char>(u % 10)
            u //= 10
            if u == 0:
                break
        if v < 0:
            i -= 1
            digits[i] = 45  # -
        self.raw(digits + i, 24 - i)
        return 0

    cdef int integer(self, object value) except -1:
        """An int as decimal; Fallback for bool, other types and beyond int64 (the
        reference's str(int(v)) is kept for those)."""
        cdef long long v
        if type(value) is not int:
            raise Fallback()
        try:
            v = value
        except OverflowError:
            raise Fallback() from None
        self.decimal(v)
        return 0

    cdef int go_float(self, double x) except -1:
        """Go's strconv.FormatFloat(x, 'g', -1, 64), as es_encoder.go_float (the
        reference) writes it, from the shortest round-trip digits (Python's repr)."""
        cdef char* r
        cdef char digits[32]
        cdef int nd = 0, dp = 0, e = 0, i, exp, lead
        cdef bint seen_point = False, negative = False, in_exp = False, exp_negative = False
        cdef char* p
        if x != x or x - x != 0:  # NaN, ±Inf
            self.raw("null", 4)
            return 0
        if x == 0:
            if copysign(1.0, x) < 0:
                self.raw("-0", 2)
            else:
                self.byte(48)
            return 0
        r = PyOS_double_to_string(x, b'r', 0, 0, NULL)
        try:
            p = r
            if p[0] == 45:
                negative = True
                p += 1
            lead = 1  # still in the leading zeros
            while p[0] != 0:
                if p[0] == 46:  # .
                    seen_point = True
                elif p[0] == 101:  # e
                    in_exp = True
                elif in_exp:
                    if p[0] == 45:
                        exp_negative = True
                    elif p[0] != 43:
                        e = e * 10 + (p[0] - 48)
                elif lead and p[0] == 48:
                    if seen_point:
                        dp -= 1  # a zero after the point, before the first digit
                else:
                    lead = 0
                    if nd < 32:
                        digits[nd] = p[0]
                        nd += 1
                    if not seen_point:
                        dp += 1
                p += 1
        finally:
            PyMem_Free(r)
        if exp_negative:
            e = -e
        dp += e
        while nd > 1 and digits[nd - 1] == 48:
            nd -= 1
        if negative:
            self.byte(45)
        exp = dp - 1
        if exp < -4 or exp >= 6:
            self.byte(digits[0])
            if nd > 1:
                self.byte(46)
                self.raw(digits + 1, nd - 1)
            self.byte(101)
            self.byte(45 if exp < 0 else 43)
            if exp < 0:
                exp = -exp
            if exp < 10:
                self.byte(48)
            self.decimal(exp)
        elif dp <= 0:
            self.raw("0.", 2)
            for i in range(-dp):
                self.byte(48)
            self.raw(digits, nd)
        elif dp >= nd:
            self.raw(digits, nd)
            for i in range(dp - nd):
                self.byte(48)
        else:
            self.raw(digits, dp)
            self.byte(46)
            self.raw(digits + dp, nd - dp)
        return 0

    cdef int field_value(self, object f) except -1:
        """One dynamic field's value: a scalar, or an array for none or several."""
        cdef list values = f.values
        cdef object vt = f.value_type
        cdef Py_ssize_t count, i
        cdef int kind
        if type(vt) is not int or type(values) is not list:
            raise Fallback()
        kind = vt
        if kind == V_BYTES:  # Heka's single-value/base64 rules stay in the reference
            raise Fallback()
        count = len(values)
        if count != 1:
            self.byte(91)  # [
        for i in range(count):
            if i:
                self.byte(44)  # ,
            v = values[i]
            if kind == V_INTEGER:
                self.integer(v)
            elif kind == V_DOUBLE:
                if type(v) is not float:
                    raise Fallback()
                self.go_float(v)
            elif kind == V_BOOL:
                if type(v) is not bool:
                    raise Fallback()
                if v:
                    self.raw("true", 4)
                else:
                    self.raw("false", 5)
            else:  # STRING, and any unknown type as the reference writes it
                self.string(v)
        if count != 1:
            self.byte(93)  # ]
        return 0

    cdef int uuid(self, object msg) except -1:
        """The Uuid's 8-4-4-4-12 hex; a message without one gets it from the property
        (which generates it); Fallback for one that is not 16 bytes."""
        cdef object raw = msg._uuid
        cdef const unsigned char* b
        cdef char* out
        cdef int i, j = 0
        if raw is None:
            raw = msg.uuid
        if type(raw) is not bytes or PyBytes_GET_SIZE(raw) != 16:
            raise Fallback()
        b = <const unsigned char*>PyBytes_AS_STRING(raw)
        self.reserve(36)
        out = self.buf + self.n
        for i in range(16):
            if i == 4 or i == 6 or i == 8 or i == 10:
                out[j] = 45
                j += 1
            out[j] = HEX[b[i] >> 4]
            out[j + 1] = HEX[b[i] & 15]
            j += 2
        self.n += 36
        return 0

    cdef int timestamp(self, object ns) except -1:
        cdef long long second
        cdef Py_ssize_t start
        if type(ns) is not int:
            raise Fallback()
        try:
            second = ns // 1_000_000_000
        except OverflowError:
            raise Fallback() from None
        if second != self.time_second or self.time_escaped is None:
            # render_time's text changes once a second: its escaped form is kept.
            start = self.n
            self.string(self.render_time(ns))
            self.time_escaped = PyBytes_FromStringAndSize(self.buf + start, self.n - start)
            self.time_second = second
            return 0
        self.raw(PyBytes_AS_STRING(self.time_escaped), PyBytes_GET_SIZE(self.time_escaped))
        return 0

    cdef int document(self, object msg) except -1:
        cdef int i, code
        cdef bint first = True
        cdef bytes key
        self.byte(123)  # {
        for i in range(self.count):
            code = self.codes[i]
            if code == M_DYNAMIC_FIELDS:
                for f in msg.fields:
                    if not first:
                        self.byte(44)
                    first = False
                    self.string(f.name)
                    self.byte(58)  # :
                    self.field_value(f)
                continue
            if not first:
                self.byte(44)
            first = False
            key = self.keys[i]
            self.raw(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
            if code == M_TIMESTAMP:
                self.timestamp(msg.timestamp)
            elif code == M_SEVERITY:
                self.integer(msg.severity)
            elif code == M_PID:
                pid = msg.pid
                self.integer(pid if pid else 0)
            elif code == M_UUID:
                self.byte(34)
                self.uuid(msg)
                self.byte(34)
            elif code == M_TYPE:
                self.string(msg.type or "")
            elif code == M_LOGGER:
                self.string(msg.logger or "")
            elif code == M_PAYLOAD:
                self.string(msg.payload or "")
            elif code == M_ENV_VERSION:
                self.string(msg.env_version or "")
            elif code == M_HOSTNAME:
                self.string(msg.hostname or "")
        self.byte(125)  # }
        return 0

    def encode(self, str action, object msg):
        """The bulk item as ESJsonEncoder.encode gives it, or None where only the
        reference is exact. `action` is the whole action line with its newline, or,
        with uuid_id, its head (`{"index":{"_index":…`), the _id being written here."""
        cdef bytes item
        cdef char* smaller
        if self.busy:
            # Entered again from a callback it made (a property, render_time) on another
            # thread: the buffer is in use, the reference writes this item.
            return None
        self.busy = True
        self.n = 0
        try:
            self.text(action, False)
            if self.uuid_id:
                self.raw(',"_id":"', 8)
                self.uuid(msg)
                self.raw('"}}\n', 4)
            self.document(msg)
            self.byte(10)
            item = PyBytes_FromStringAndSize(self.buf, self.n)
        except Fallback:
            return None
        finally:
            self.busy = False
        if self.cap > KEEP_LIMIT:
            # One huge item must not keep its buffer for the process's life.
            smaller = <char*>PyMem_Realloc(self.buf, KEEP_BYTES)
            if smaller != NULL:
                self.buf = smaller
                self.cap = KEEP_BYTES
        return item
