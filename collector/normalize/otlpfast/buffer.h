/* A growable byte buffer and the JSON it writes (strings escaped and checked eight bytes at a time, numbers).
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_BUFFER_H
#define OTLPFAST_BUFFER_H

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buf;

static int buf_grow(Buf *b, size_t extra);

/* Inlined: most puts are a few bytes into room already there. */
static inline int buf_reserve(Buf *b, size_t extra) {
    return b->len + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static int buf_grow(Buf *b, size_t extra) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *grown = PyMem_RawRealloc(b->data, cap);
    if (!grown) return oom();
    b->data = grown;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *s, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int buf_putc(Buf *b, char c) { return buf_put(b, &c, 1); }

static int utf8_ok(const uint8_t *s, size_t n);

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any of eight bytes needs escaping in JSON (a control character, '"' or '\\') or is
 * not ASCII: the classic "has a byte less than n" and "has a zero byte" word tests (exact as a
 * yes/no), so plain text is scanned a word at a time. */
static inline int word_is_plain(uint64_t w) {
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    uint64_t special = ((w - ONES * 0x20) | (quote - ONES) | (backslash - ONES)) & ~w;
    return ((special | w) & HIGHS) == 0;
}

/* A JSON string of request bytes, checked as Python's strict UTF-8 decoder checks them (so
 * JSON built of these is valid UTF-8 and is not checked again). */
static int buf_json_string(Buf *b, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(b, n + 2) < 0 || buf_putc(b, '"') < 0) return -1;
    size_t start = 0, i = 0;
    int ascii = 1;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word_is_plain(word)) { i += 8; continue; }
        }
        uint8_t c = s[i++];
        if (c >= 0x80) { ascii = 0; continue; }
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (buf_put(b, (const char *)s + start, i - 1 - start) < 0) return -1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hex[c >> 4]; esc[5] = hex[c & 15]; len = 6;
        }
        if (buf_put(b, esc, len) < 0) return -1;
        start = i;
    }
    if (!ascii && !utf8_ok(s, n)) return fail("string is not valid UTF-8");
    if (buf_put(b, (const char *)s + start, n - start) < 0) return -1;
    return buf_putc(b, '"');
}

static int buf_uint(Buf *b, uint64_t v);

static int buf_int(Buf *b, int64_t v) {
    if (v < 0 && buf_putc(b, '-') < 0) return -1;
    return buf_uint(b, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);  /* INT64_MIN too */
}

static int buf_uint(Buf *b, uint64_t v) {
    char tmp[24];
    char *end = tmp + sizeof tmp, *p = end;
    do { *--p = (char)('0' + v % 10); v /= 10; } while (v);
    return buf_put(b, p, (size_t)(end - p));
}

/* Python's repr of a float (what orjson writes too); the GIL is taken for it: doubles are rare. */
static int buf_double(Buf *b, double v) {
    if (!isfinite(v)) return buf_put(b, "null", 4);
    PyGILState_STATE gil = PyGILState_Ensure();
    char *repr = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    char copy[64];
    size_t n = 0;
    if (repr) {
        n = strlen(repr);
        if (n >= sizeof copy) n = sizeof copy - 1;
        memcpy(copy, repr, n);
        PyMem_Free(repr);
    } else PyErr_Clear();
    PyGILState_Release(gil);
    if (!repr) return oom();
    return buf_put(b, copy, n);
}

#endif /* OTLPFAST_BUFFER_H */
