# cython: language_level=3, boundscheck=False, wraparound=False
"""The oslo.log line prefix and request context, read in typed code.

A second implementation of openstack_log.py's `match_line` and `match_context` (the
reference: its regular expressions `_LINE_RE` and `_FAST_CTX_RE`, matched at the line's
or message's start), reading the characters once, left to right, with the same
results. Where a digit is expected and a non-ASCII character stands (the reference's
\\d also takes other scripts' digits), `line` answers FALLBACK and the decoder runs the
reference. collector/compiled.py (`typed_module`) chooses which runs; HEKAPY_PURE=1 or
a build without Cython selects the reference; tests/decoders/test_oslo_line.py holds
both to the same results.
"""

cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    bint Py_UNICODE_ISSPACE(Py_UCS4)


FALLBACK = object()  # `line` cannot tell: the reference decides

cdef object _FALLBACK = FALLBACK
cdef tuple LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "AUDIT", "DEBUG", "TRACE")
cdef const char* STAMP = b"dddd-dd-dd?dd:dd:dd"  # d: a digit; ?: " " or "T"


cdef struct Text:
    int kind
    void* data
    Py_ssize_t length


cdef inline Py_UCS4 at(Text* t, Py_ssize_t i) noexcept:
    """The character at i, or 0 past the end (0 matches nothing the grammar wants)."""
    if i >= t.length:
        return 0
    return PyUnicode_READ(t.kind, t.data, i)


cdef inline int digit(Text* t, Py_ssize_t i) noexcept:
    """1: an ASCII digit; 0: not a digit; -1: a non-ASCII character (the reference's
    \\d may take it)."""
    cdef Py_UCS4 c = at(t, i)
    if 48 <= c <= 57:
        return 1
    return -1 if c >= 128 else 0


cdef inline Py_ssize_t digits(Text* t, Py_ssize_t i, Py_ssize_t count) noexcept:
    """i + count if `count` ASCII digits start at i; -1 if not; -2 for a non-ASCII
    character where a digit is wanted."""
    cdef Py_ssize_t j
    cdef int d
    for j in range(i, i + count):
        d = digit(t, j)
        if d != 1:
            return -2 if d < 0 else -1
    return i + count


cdef inline bint word_at(Text* t, Py_ssize_t i, str word):
    """`word` (ASCII) and a space at i."""
    cdef Py_ssize_t k, n = len(word)
    for k in range(n):
        if at(t, i + k) != <Py_UCS4>word[k]:
            return False
    return at(t, i + n) == 32


cdef inline bint module_char(Py_UCS4 c) noexcept:
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57) or c == 95 or c == 46 \
        or c == 45


def line(str s):
    """As openstack_log.match_line: (stamp, frac, offset, pid, level, module, text,
    key_end) for an oslo.log line, None for another line; FALLBACK where a non-ASCII
    character stands where the prefix has a digit."""
    cdef Text t
    cdef Py_ssize_t i, j, frac_start = 0, frac_end = -1, off_start, off_end = -1, pid_start
    cdef Py_ssize_t mod_start, pid_end, key_end
    cdef Py_UCS4 c
    cdef int d, lv
    cdef char want
    cdef str level
    t.kind = PyUnicode_KIND(s)
    t.data = PyUnicode_DATA(s)
    t.length = PyUnicode_GET_LENGTH(s)
    # \d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d
    for i in range(19):
        want = STAMP[i]
        c = at(&t, i)
        if want == 100:  # d: a digit
            d = digit(&t, i)
            if d != 1:
                return _FALLBACK if d < 0 else None
        elif want == 63:  # ?: " " or "T"
            if c != 32 and c != 84:
                return None
        elif c != <Py_UCS4>want:
            return None
    i = 19
    # (?:[.,](\d+))?
    c = at(&t, i)
    if c == 46 or c == 44:
        d = digit(&t, i + 1)
        if d < 0:
            return _FALLBACK
        if d == 1:
            frac_start = i + 1
            i += 1
            while True:
                d = digit(&t, i)
                if d < 0:
                    return _FALLBACK
                if d == 0:
                    break
                i += 1
            frac_end = i
    # (Z|[+-]\d\d(?::?\d\d)?)?
    c = at(&t, i)
    off_start = i
    if c == 90:  # Z
        i += 1
        off_end = i
    elif c == 43 or c == 45:  # + -
        j = digits(&t, i + 1, 2)
        if j == -2:
            return _FALLBACK
        if j > 0:
            i = j
            c = at(&t, i)
            j = digits(&t, i + 1 if c == 58 else i, 2)
            if j == -2:
                return _FALLBACK
            if j > 0:
                i = j
            off_end = i
    #  (\d+)
    if at(&t, i) != 32:
        return None
    i += 1
    pid_start = i
    while True:
        d = digit(&t, i)
        if d < 0:
            return _FALLBACK
        if d == 0:
            break
        i += 1
    if i == pid_start or at(&t, i) != 32:
        return None
    pid_end = i
    i += 1
    # (CRITICAL|ERROR|WARNING|INFO|AUDIT|DEBUG|TRACE) and a space
    level = None
    for lv in range(7):
        candidate = <str>LEVELS[lv]
        if word_at(&t, i, candidate):
            level = candidate
            j = len(candidate)
            break
    if level is None:
        return None
    i += j + 1
    # ([A-Za-z0-9_.-]+) ?(.*)
    mod_start = i
    while module_char(at(&t, i)):
        i += 1
    if i == mod_start:
        return None
    key_end = i
    if at(&t, i) == 32:
        i += 1
    return (s[0:19], s[frac_start:frac_end] if frac_end >= 0 else None,
            s[off_start:off_end] if off_end >= 0 else None,
            int(s[pid_start:pid_end]), level, s[mod_start:key_end], s[i:], key_end)


cdef inline bint hex_char(Py_UCS4 c) noexcept:
    return (48 <= c <= 57) or (97 <= c <= 102)


cdef Py_ssize_t lc_uuid(Text* t, Py_ssize_t i) noexcept:
    """The end of an 8-4-4-4-12 lower-case hex UUID at i, or -1."""
    cdef Py_ssize_t j
    for j in range(36):
        if j == 8 or j == 13 or j == 18 or j == 23:
            if at(t, i + j) != 45:
                return -1
        elif not hex_char(at(t, i + j)):
            return -1
    return i + 36


cdef Py_ssize_t ident(Text* t, Py_ssize_t i) noexcept:
    """The end of 32 lower-case hex digits or a lower-case UUID at i, or -1."""
    cdef Py_ssize_t j
    for j in range(32):
        if not hex_char(at(t, i + j)):
            return lc_uuid(t, i) if j == 8 else -1
    return i + 32


cdef tuple context_rest(str s, Text* t, Py_ssize_t i):
    """req-(UUID)(?: (ID) (ID))?[ \\]] at i: (req, user, tenant), or None."""
    cdef Py_ssize_t req_end, user_end, tenant_end
    cdef Py_UCS4 c
    if not (at(t, i) == 114 and at(t, i + 1) == 101 and at(t, i + 2) == 113
            and at(t, i + 3) == 45):  # req-
        return None
    req_end = lc_uuid(t, i + 4)
    if req_end < 0:
        return None
    if at(t, req_end) == 32:
        user_end = ident(t, req_end + 1)
        if user_end >= 0 and at(t, user_end) == 32:
            tenant_end = ident(t, user_end + 1)
            if tenant_end >= 0:
                c = at(t, tenant_end)
                if c == 32 or c == 93:
                    return (s[i + 4:req_end], s[req_end + 1:user_end],
                            s[user_end + 1:tenant_end])
    c = at(t, req_end)
    if c == 32 or c == 93:
        return (s[i + 4:req_end], None, None)
    return None


def context(str s):
    """As openstack_log.match_context: (global, req, user, tenant) for a request
    context at the start of `s`, or None."""
    cdef Text t
    cdef Py_ssize_t j
    cdef tuple rest
    t.kind = PyUnicode_KIND(s)
    t.data = PyUnicode_DATA(s)
    t.length = PyUnicode_GET_LENGTH(s)
    if at(&t, 0) != 91:  # [
        return None
    # (?:(?:req-(UUID)|None|-) )? first, then without it (the regex backtracks so).
    glob = None
    j = -1
    if at(&t, 1) == 114:  # r
        if at(&t, 2) == 101 and at(&t, 3) == 113 and at(&t, 4) == 45:
            j = lc_uuid(&t, 5)
            if j >= 0:
                glob = s[5:j]
    elif at(&t, 1) == 78 and at(&t, 2) == 111 and at(&t, 3) == 110 and at(&t, 4) == 101:
        j = 5  # None
    elif at(&t, 1) == 45:
        j = 2  # -
    if j >= 0 and at(&t, j) == 32:
        rest = context_rest(s, &t, j + 1)
        if rest is not None:
            return (glob, *rest)
    rest = context_rest(s, &t, 1)
    if rest is not None:
        return (None, *rest)
    return None


cdef Py_ssize_t run_of_digits(Text* t, Py_ssize_t i) noexcept:
    """The end of the ASCII digits from i; -2 at a non-ASCII character among or right
    after them (the reference's \\d may take it)."""
    cdef int d
    while True:
        d = digit(t, i)
        if d < 0:
            return -2
        if d == 0:
            return i
        i += 1


cdef inline bint literal(Text* t, Py_ssize_t i, const char* word) noexcept:
    cdef Py_ssize_t k = 0
    while word[k] != 0:
        if at(t, i + k) != <Py_UCS4>word[k]:
            return False
        k += 1
    return True


cdef object http_at(str s, Text* t, Py_ssize_t i):
    """_HTTP_RE matched at i: the tuple, None, or FALLBACK."""
    cdef Py_ssize_t m0, m1, u0, u1, v0, st0, sz0, sz1, tm0, tm1, j
    cdef int d
    if at(t, i) != 34:  # "
        return None
    i += 1
    m0 = i
    while 65 <= at(t, i) <= 90:  # [A-Z]+
        i += 1
    if i == m0 or at(t, i) != 32:
        return None
    m1 = i
    i += 1
    u0 = i
    while i < t.length and not Py_UNICODE_ISSPACE(at(t, i)):  # \S+
        i += 1
    if i == u0 or not literal(t, i, b" HTTP/"):
        return None
    u1 = i
    i += 6
    v0 = i  # \d\.\d"
    d = digit(t, i)
    if d != 1:
        return _FALLBACK if d < 0 else None
    if at(t, i + 1) != 46:
        return None
    d = digit(t, i + 2)
    if d != 1:
        return _FALLBACK if d < 0 else None
    if at(t, i + 3) != 34:
        return None
    i += 4
    # " +(?:status: )?(\d{3})"
    j = i
    while at(t, i) == 32:
        i += 1
    if i == j:
        return None
    if literal(t, i, b"status: "):
        i += 8
    st0 = i
    j = digits(t, i, 3)
    if j < 0:
        return _FALLBACK if j == -2 else None
    i = j
    # " +(?:len: )?(\d+)"
    j = i
    while at(t, i) == 32:
        i += 1
    if i == j:
        return None
    if literal(t, i, b"len: "):
        i += 5
    sz0 = i
    sz1 = run_of_digits(t, i)
    if sz1 == -2:
        return _FALLBACK
    if sz1 == sz0:
        return None
    i = sz1
    # " +(?:time: )?(\d+(?:\.\d+)?)"
    j = i
    while at(t, i) == 32:
        i += 1
    if i == j:
        return None
    if literal(t, i, b"time: "):
        i += 6
    tm0 = i
    tm1 = run_of_digits(t, i)
    if tm1 == -2:
        return _FALLBACK
    if tm1 == tm0:
        return None
    if at(t, tm1) == 46:
        d = digit(t, tm1 + 1)
        if d < 0:
            return _FALLBACK
        if d == 1:
            j = run_of_digits(t, tm1 + 1)
            if j == -2:
                return _FALLBACK
            tm1 = j
    return (s[m0:m1], s[u0:u1], s[v0:v0 + 3], int(s[st0:st0 + 3]), int(s[sz0:sz1]),
            float(s[tm0:tm1]))


def http(str s):
    """As openstack_log.match_http: (method, url, version, status, size, time) of the
    first HTTP access part of `s`, None, or FALLBACK (a non-ASCII character where the
    reference's \\d may take it)."""
    cdef Text t
    cdef Py_ssize_t i, q
    t.kind = PyUnicode_KIND(s)
    t.data = PyUnicode_DATA(s)
    t.length = PyUnicode_GET_LENGTH(s)
    i = s.find(" HTTP/")
    while i >= 0:
        q = s.rfind('"', 0, i)
        if q >= 0:
            got = http_at(s, &t, q)
            if got is not None:
                return got
        i = s.find(" HTTP/", i + 6)
    return None
