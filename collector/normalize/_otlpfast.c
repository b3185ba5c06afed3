/*
 * OTLP/protobuf ExportTraceServiceRequest -> Fluoro span rows, in C.
 *
 * Why by hand: the Python path (protobuf's upb parse, then a walk into Python values) costs
 * ~70-80 us a span here, which caps ingest near 13k spans/s; the collector is asked for 50k.
 * This module reads the wire format directly, creating Python objects only for the stored
 * columns. It decodes; what a span means is derive.py's alone: configure() hands over its fact
 * keys, the keys whose text it reads, its annotation prefix and its span_meaning and
 * resource_meaning, which the walk asks once per distinct signature of a span's (or
 * resource's) facts and keeps per thread (see "meanings" below). An equivalence test
 * (tests/unit/collector/test_fast_decoder.py, test_derive.py) and the differential fuzz run both
 * paths over the same requests and compare every row. Field numbers are those of
 * opentelemetry-proto's trace.proto and common.proto. bench/ingest.py shows the difference.
 *
 * decode(body: bytes) -> (spans, annotations, links, rejected: int, reasons: list of str, bytes held: int)
 * Each table is a PyCapsule of an Arrow C data interface struct array (29 columns in SPAN_SCHEMA
 * order, 7 in ANNOTATION_SCHEMA's, 5 in LINK_SCHEMA's), which otlp_proto.py imports with pyarrow
 * without copying or touching a value (one call a table: wrapping each column's buffers from
 * Python had cost 0.3-0.4 ms a 512-span request). The walk creates no
 * Python object and runs with the GIL released (only a double's repr, and a meaning not yet
 * kept, take it back), so requests
 * decode on both cores while the writer works; building Python lists and converting them to Arrow
 * had cost more than the walk itself (bench/ingest.py: 7.4 -> 3.3 us a span, decode and Arrow).
 * Strings are checked as Python's strict UTF-8 decoder checks them; the JSON of attributes and
 * events is checked as it is written (and not again), plain text eight bytes at a time, and a
 * span's working buffers live as long as the request: 18.4k -> 11.0k instructions a span on the
 * bench's requests (callgrind), 1.07 -> 0.69-0.84 ms of CPU a request of 512 spans.
 * Raises ValueError for bytes that are not a well-formed request, and returns None when the
 * request uses a feature left to the Python path: aws.xray.annotations, bytes values under the
 * fact keys, a rule of derive.py that failed or read a text it does not list, and encodings only protobuf's merge rules decode (a
 * group, a singular message field sent twice, two members of one oneof, resource entity refs).
 * Like upb it checks UTF-8 in every string field, stored or not, and refuses field numbers past
 * 2^29 - 1; enums keep their low 32 bits. Duplicate attribute keys are found by hashing past 32
 * keys (a 160k-key span: ~0.03 s; comparing each with each had taken ~40 s). The differential
 * fuzz (tests/fuzz/) holds both paths to identical rows on whatever either accepts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define N_COLUMNS 29
#define N_ANNOTATION_COLUMNS 7
#define N_LINK_COLUMNS 5
#define MAX_JSON_CHARS (64 * 1024)
#define MAX_DEPTH 32
#define MAX_REASONS 5
#define MAX_NAME_CHARS 200  /* X-Ray's limit on a segment's name */
#define MAX_FIELD_NUMBER ((1u << 29) - 1)

/* The walk runs without the GIL: it allocates with PyMem_Raw* and reports failures here, in
 * this thread, for decode() to raise once it holds the GIL again. */
static _Thread_local const char *decode_error;
static _Thread_local int decode_oom;
/* Set when the request is well-formed but encoded in a way only protobuf's own merge rules
 * decode (a group, a singular message field sent twice, two members of a oneof, bytes where the
 * derivations read text, ...): decode() returns None and the Python path, the reference, decodes
 * it. Canonical encoders never send these, so the fast path keeps every real request. */
static _Thread_local int decode_defer;

static int fail(const char *message) {
    if (!decode_error) decode_error = message;
    return -1;
}

static int oom(void) {
    decode_oom = 1;
    return -1;
}

static int failed(void) { return decode_error != NULL || decode_oom; }

static int defer(void) {
    decode_defer = 1;
    return -1;
}

/* ------------------------------------------------------------------ wire reading */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Reader;

static int read_varint(Reader *r, uint64_t *out) {
    uint64_t value = 0;
    int shift = 0;
    while (r->p < r->end && shift < 64) {
        uint8_t byte = *r->p++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return 0;
        }
        shift += 7;
    }
    return -1;
}

static int read_fixed64(Reader *r, uint64_t *out) {
    if (r->end - r->p < 8) return -1;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | r->p[i];
    r->p += 8;
    *out = v;
    return 0;
}

/* A varint upb reads as 32 bits (a tag, a length): at most five bytes, however small its value. */
static int read_varint32(Reader *r, uint64_t *out) {
    const uint8_t *start = r->p;
    if (read_varint(r, out) < 0 || r->p - start > 5 || *out > UINT32_MAX) return -1;
    return 0;
}

/* A field header: number and wire type. */
static int read_tag(Reader *r, uint32_t *field, int *wire) {
    uint64_t tag;
    if (read_varint32(r, &tag) < 0) return -1;
    if ((tag >> 3) == 0 || (tag >> 3) > MAX_FIELD_NUMBER) return -1;
    *field = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    return 0;
}

static int read_bytes(Reader *r, Reader *sub) {
    uint64_t len;
    if (read_varint32(r, &len) < 0 || len > INT32_MAX || len > (uint64_t)(r->end - r->p)) return -1;
    sub->p = r->p;
    sub->end = r->p + len;
    r->p += len;
    return 0;
}

static int skip_field(Reader *r, int wire) {
    uint64_t ignored;
    Reader sub;
    switch (wire) {
    case 0: return read_varint(r, &ignored);
    case 1: if (r->end - r->p < 8) return -1; r->p += 8; return 0;
    case 2: return read_bytes(r, &sub);
    case 5: if (r->end - r->p < 4) return -1; r->p += 4; return 0;
    case 3: case 4: return defer();  /* a group: upb skips it as an unknown field */
    default: return -1;
    }
}

/* ------------------------------------------------------------------ growable buffer (JSON) */

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

/* ------------------------------------------------------------------ attribute values */

enum { V_NONE = 0, V_STR, V_BOOL, V_INT, V_DOUBLE, V_ARRAY, V_KVLIST, V_BYTES };

/* What the derivations need to know of one hot attribute. */
typedef struct {
    int present;
    int type;
    const uint8_t *s;     /* V_STR: the string; V_ARRAY: its first element if a string */
    size_t slen;
    int first_is_str;     /* V_ARRAY: first element is a string */
    int first_is_bytes;   /* V_ARRAY: first element is bytes (hex text to the Python path) */
    int64_t i;
    double d;
    int b;
    int truthy;
} Hot;

/* The attribute keys derive.py's span_meaning reads (its FACT_KEYS, given by configure()), and
 * which of them it reads the text of (TEXT_READ_KEYS): a span's signature holds those texts,
 * and a marker stands for every other key's text. */
#define MAX_FACT_KEYS 64
#define MAX_HOT_LEN 64
#define MAX_HOT_PER_LEN 8
static int N_HOT;
static char *HOT_KEYS[MAX_FACT_KEYS];
static int TEXT_READ[MAX_FACT_KEYS];
static int HOT_BY_LEN[MAX_HOT_LEN][MAX_HOT_PER_LEN];
static int HOT_COUNT_BY_LEN[MAX_HOT_LEN];
static PyObject *KEY_OBJECTS[MAX_FACT_KEYS];  /* the keys as str, for the attributes dict */
static PyObject *MARKERS[MAX_FACT_KEYS];      /* one unique str per key, known by identity */
static PyObject *SPAN_MEANING, *RESOURCE_MEANING;
#define MARKER_PREFIX "\x01fluoro-fact:"

/* derive.py's too: the attributes that are annotations (by the prefix of their key), and the key
 * of an ADOT-style list naming others, which makes a request the Python path's */
static char ANNOTATION_PREFIX[64];
static size_t ANNOTATION_PREFIX_LEN;
static char ANNOTATION_LIST_KEY[64];
static size_t ANNOTATION_LIST_KEY_LEN;

static int hot_index(const uint8_t *key, size_t n) {
    if (n >= MAX_HOT_LEN) return -1;
    for (int j = 0; j < HOT_COUNT_BY_LEN[n]; j++) {
        int k = HOT_BY_LEN[n][j];
        if (memcmp(HOT_KEYS[k], key, n) == 0) return k;
    }
    return -1;
}

/* One AnyValue: appended to `json` (if not NULL), summarized into `hot` (if not NULL). */
static int any_value(Reader *r, Buf *json, Hot *hot, int depth);

static int kv_list(Reader *r, Buf *json, int depth);

static int array_value(Reader *r, Buf *json, Hot *hot, int depth) {
    int count = 0;
    if (json && buf_putc(json, '[') < 0) return -1;
    while (r->p < r->end) {
        uint32_t field; int wire; Reader sub;
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (field != 1 || wire != 2) { if (skip_field(r, wire) < 0) return -1; continue; }
        if (read_bytes(r, &sub) < 0) return -1;
        if (json && count && buf_putc(json, ',') < 0) return -1;
        Hot element = {0};
        if (any_value(&sub, json, count == 0 ? &element : NULL, depth + 1) < 0) return -1;
        if (count == 0 && hot && element.type == V_STR) {
            hot->first_is_str = 1; hot->s = element.s; hot->slen = element.slen;
        }
        if (count == 0 && hot && element.type == V_BYTES) hot->first_is_bytes = 1;
        count++;
    }
    if (hot) { hot->type = V_ARRAY; hot->truthy = count > 0; }
    return json ? buf_putc(json, ']') : 0;
}

static int any_value(Reader *r, Buf *json, Hot *hot, int depth) {
    Hot local = {0};
    Hot *h = hot ? hot : &local;
    memset(h, 0, sizeof *h);
    h->present = 1;
    h->type = V_NONE;
    if (depth > MAX_DEPTH) return fail("attribute values nested too deep");
    /* Protobuf's rules for a oneof sent more than once (the last member wins, a message member
     * sent twice is merged) are the Python path's: defer such a value to it. */
    int members = 0;
    Reader container = {NULL, NULL};
    int container_field = 0;
    while (r->p < r->end) {
        uint32_t field; int wire;
        if (read_tag(r, &field, &wire) < 0) return -1;
        /* Any member's field number counts, whatever its wire type: a second one, even one upb
         * would skip as unknown, only sends the value to the Python path, which is always right. */
        if (field - 1u < 8u && ++members > 1) return defer();
        uint64_t v; Reader sub;
        if (field == 1 && wire == 2) {
            if (read_bytes(r, &sub) < 0) return -1;
            h->type = V_STR; h->s = sub.p; h->slen = (size_t)(sub.end - sub.p); h->truthy = h->slen > 0;
        } else if (field == 2 && wire == 0) {
            if (read_varint(r, &v) < 0) return -1;
            h->type = V_BOOL; h->b = v != 0; h->truthy = h->b;
        } else if (field == 3 && wire == 0) {
            if (read_varint(r, &v) < 0) return -1;
            h->type = V_INT; h->i = (int64_t)v; h->truthy = v != 0;
        } else if (field == 4 && wire == 1) {
            if (read_fixed64(r, &v) < 0) return -1;
            memcpy(&h->d, &v, 8); h->type = V_DOUBLE; h->truthy = h->d != 0.0;
        } else if ((field == 5 || field == 6) && wire == 2) {
            if (read_bytes(r, &container) < 0) return -1;
            container_field = (int)field;
        } else if (field == 7 && wire == 2) {
            if (read_bytes(r, &sub) < 0) return -1;
            h->type = V_BYTES; h->s = sub.p; h->slen = (size_t)(sub.end - sub.p); h->truthy = h->slen > 0;
        } else {
            /* string_value_strindex (8) is a member the Python path reads as no value */
            if (skip_field(r, wire) < 0) return -1;
        }
    }
    if (container_field == 5) {
        if (array_value(&container, json, h, depth) < 0) return -1;
        return 0;
    }
    if (container_field == 6) {
        Reader probe = container;
        int entries = 0;
        if (json && kv_list(&container, json, depth) < 0) return -1;
        while (probe.p < probe.end) {  /* count entries for truthiness */
            uint32_t f2; int w2;
            if (read_tag(&probe, &f2, &w2) < 0 || skip_field(&probe, w2) < 0) break;
            if (f2 == 1) entries++;
        }
        h->type = V_KVLIST; h->truthy = entries > 0;
        return 0;
    }
    if (!json) return 0;
    switch (h->type) {
    case V_STR: return buf_json_string(json, h->s, h->slen);
    case V_BOOL: return h->b ? buf_put(json, "true", 4) : buf_put(json, "false", 5);
    case V_INT: return buf_int(json, h->i);
    case V_DOUBLE: return buf_double(json, h->d);
    case V_BYTES: {
        static const char hex[] = "0123456789abcdef";
        if (buf_reserve(json, h->slen * 2 + 2) < 0 || buf_putc(json, '"') < 0) return -1;
        for (size_t i = 0; i < h->slen; i++) {
            char pair[2] = {hex[h->s[i] >> 4], hex[h->s[i] & 15]};
            if (buf_put(json, pair, 2) < 0) return -1;
        }
        return buf_putc(json, '"');
    }
    default: return buf_put(json, "null", 4);
    }
}

/* A KeyValueList or repeated KeyValue as a JSON object (later duplicates win, as in Python). */
typedef struct { const uint8_t *key; size_t klen; Reader value; } KV;

/* The distinct keys of one attribute list, in first-seen order. Up to LINEAR_KEYS keys a new key
 * is compared with each (a span has a dozen or two: cheaper than hashing); past that an
 * open-addressing index keyed by Python's own keyed hash of bytes (SipHash, seeded per process,
 * so no client can choose colliding keys) keeps a request of 160k keys linear. */
#define LINEAR_KEYS 32

typedef struct {
    KV *items;
    size_t count, cap;
    int32_t *slots;   /* index into items, -1 empty; valid while `indexed` */
    size_t nslots;    /* a power of two, at least twice count */
    int indexed;
    int value_depth;  /* the nesting depth of its values (0: top level, as 1) */
} KvSet;

static void kvset_clear(KvSet *s) {
    if (s->indexed) memset(s->slots, 0xff, s->nslots * sizeof *s->slots);
    s->count = 0;
    s->indexed = 0;
}

static void kvset_free(KvSet *s) {
    PyMem_RawFree(s->items);
    PyMem_RawFree(s->slots);
    memset(s, 0, sizeof *s);
}

static inline size_t kv_hash(const uint8_t *key, size_t n) {
    return (size_t)_Py_HashBytes(key, (Py_ssize_t)n);
}

static int32_t *kvset_slot(KvSet *s, const uint8_t *key, size_t n) {
    size_t mask = s->nslots - 1, i = kv_hash(key, n) & mask;
    for (;;) {
        int32_t at = s->slots[i];
        if (at < 0) return &s->slots[i];
        const KV *kv = &s->items[at];
        if (kv->klen == n && memcmp(kv->key, key, n) == 0) return &s->slots[i];
        i = (i + 1) & mask;
    }
}

/* (Re)build the index for at least `need` keys. */
static int kvset_index(KvSet *s, size_t need) {
    size_t nslots = 64;
    while (nslots < 2 * need) nslots *= 2;
    if (nslots > INT32_MAX) return fail("too many attributes");
    if (nslots > s->nslots) {
        int32_t *grown = PyMem_RawRealloc(s->slots, nslots * sizeof *grown);
        if (!grown) return oom();
        s->slots = grown;
        s->nslots = nslots;
    }
    memset(s->slots, 0xff, s->nslots * sizeof *s->slots);
    for (size_t j = 0; j < s->count; j++) *kvset_slot(s, s->items[j].key, s->items[j].klen) = (int32_t)j;
    s->indexed = 1;
    return 0;
}

static int replaced_value_ok(Reader value, int depth);

/* Add a key/value; a repeated key replaces the earlier value in place, keeping its first
 * position (the replaced value is checked still, as upb parses it). */
static inline int kvset_put(KvSet *s, KV item) {
    int32_t *slot = NULL;
    if (s->indexed) {
        slot = kvset_slot(s, item.key, item.klen);
        if (*slot >= 0) {
            if (replaced_value_ok(s->items[*slot].value, s->value_depth) < 0) return -1;
            s->items[*slot] = item;
            return 0;
        }
    } else {
        for (size_t j = 0; j < s->count; j++)
            if (s->items[j].klen == item.klen && memcmp(s->items[j].key, item.key, item.klen) == 0) {
                if (replaced_value_ok(s->items[j].value, s->value_depth) < 0) return -1;
                s->items[j] = item;
                return 0;
            }
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        KV *grown = PyMem_RawRealloc(s->items, cap * sizeof(KV));
        if (!grown) return oom();
        s->items = grown;
        s->cap = cap;
    }
    s->items[s->count] = item;
    if (slot) *slot = (int32_t)s->count;
    s->count++;
    if ((s->indexed && 2 * s->count > s->nslots) || (!s->indexed && s->count > LINEAR_KEYS))
        return kvset_index(s, s->count * 2);
    return 0;
}

/* A string field sent again replaces the first, which the rows never show; upb checks every
 * string it parses, so the replaced one is checked here (a canonical request has none). */
static int replaced_text_ok(const uint8_t *previous, size_t n) {
    return previous == NULL || n == 0 || utf8_ok(previous, n) ? 0 : fail("string is not valid UTF-8");
}

/* One KeyValue message: its key and value (the Python path's merge rules for a value sent
 * twice are deferred to it). */
static inline int read_kv(Reader kv, KV *item) {
    int values = 0, keys = 0;
    item->key = (const uint8_t *)""; item->klen = 0;
    item->value.p = item->value.end = kv.p;
    while (kv.p < kv.end) {
        uint32_t f2; int w2; Reader sub;
        if (read_tag(&kv, &f2, &w2) < 0) return -1;
        if (f2 == 1 && w2 == 2) {
            if (read_bytes(&kv, &sub) < 0) return -1;
            if (keys++ && replaced_text_ok(item->key, item->klen) < 0) return -1;
            item->key = sub.p; item->klen = (size_t)(sub.end - sub.p);
        }
        else if (f2 == 2 && w2 == 2) { if (read_bytes(&kv, &item->value) < 0) return -1; if (++values > 1) return defer(); }
        else if (skip_field(&kv, w2) < 0) return -1;
    }
    return 0;
}

static int collect_kvs(Reader *r, uint32_t kv_field, KvSet *set) {
    kvset_clear(set);
    while (r->p < r->end) {
        uint32_t field; int wire; Reader kv; KV item;
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (field != kv_field || wire != 2) { if (skip_field(r, wire) < 0) return -1; continue; }
        if (read_bytes(r, &kv) < 0 || read_kv(kv, &item) < 0 || kvset_put(set, item) < 0) return -1;
    }
    return 0;
}

/* A value the rows never show (a repeated key's earlier one), walked as if written: its strings,
 * nesting and wire format are held to what the Python path's parse holds them to. */
static int replaced_value_ok(Reader value, int depth) {
    if (value.p == value.end) return 0;
    Buf scratch = {NULL, 0, 0};
    int rc = any_value(&value, &scratch, NULL, depth > 1 ? depth : 1);
    PyMem_RawFree(scratch.data);
    return rc;
}

static int kvs_json(KV *kvs, size_t count, Buf *json, int depth) {
    if (buf_putc(json, '{') < 0) return -1;
    for (size_t j = 0; j < count; j++) {
        if (j && buf_putc(json, ',') < 0) return -1;
        if (buf_json_string(json, kvs[j].key, kvs[j].klen) < 0 || buf_putc(json, ':') < 0) return -1;
        Reader value = kvs[j].value;
        if (value.p == value.end) { if (buf_put(json, "null", 4) < 0) return -1; continue; }
        if (any_value(&value, json, NULL, depth + 1) < 0) return -1;
    }
    return buf_putc(json, '}');
}

static int kv_list(Reader *r, Buf *json, int depth) {
    KvSet set = {0};
    set.value_depth = depth + 1;  /* as kvs_json walks them */
    int rc = collect_kvs(r, 1, &set);
    if (rc == 0) rc = kvs_json(set.items, set.count, json, depth);
    kvset_free(&set);
    return rc;
}

/* ------------------------------------------------------------------ UTF-8 (Python's strict codec) */

static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII (nearly all of a span's text) eight bytes at a time */
        while (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;  /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return 0;
        if (n - i <= need) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++) if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
        i += need + 1;
    }
    return 1;
}

/* ------------------------------------------------------------------ Arrow columns */

/* Each column is built as Arrow's buffers (validity bitmap, int32 offsets for strings, values),
 * which pyarrow wraps without converting a value: no Python object per value, and no GIL. */
enum { C_F16, C_U64, C_I64, C_U8, C_U16, C_F64, C_BOOL, C_STR, C_DICT };

typedef struct Col {
    int kind;
    int64_t length, nulls;
    Buf validity, offsets, values;
    struct Col *dictionary;  /* C_DICT: the strings its int32 indices point at (owned elsewhere) */
} Col;

/* Bit `index` of a bitmap, growing it with zero bytes as needed. */
static inline int bit_put(Buf *b, int64_t index, int on) {
    size_t byte = (size_t)(index >> 3);
    if (byte >= b->len) {
        size_t grow = byte + 1 - b->len;
        if (buf_reserve(b, grow) < 0) return -1;
        memset(b->data + b->len, 0, grow);
        b->len += grow;
    }
    if (on) b->data[byte] = (char)((uint8_t)b->data[byte] | (1u << (index & 7)));
    return 0;
}

static const size_t WIDTH[] = {16, 8, 8, 1, 2, 8, 0, 0, 4};

static int col_init(Col *c, int kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    int32_t zero = 0;
    return kind == C_STR ? buf_put(&c->offsets, &zero, 4) : 0;
}

static void col_free(Col *c) {
    PyMem_RawFree(c->validity.data);
    PyMem_RawFree(c->offsets.data);
    PyMem_RawFree(c->values.data);
}

static inline int col_end(Col *c, int valid) {
    if (bit_put(&c->validity, c->length, valid) < 0) return -1;
    if (!valid) c->nulls++;
    c->length++;
    return 0;
}

static inline int col_fixed(Col *c, const void *p) {
    return buf_put(&c->values, p, WIDTH[c->kind]) < 0 ? -1 : col_end(c, 1);
}

static inline int col_null(Col *c) {
    static const uint8_t zeros[16] = {0};
    if (c->kind == C_STR) {
        int32_t offset = (int32_t)c->values.len;
        if (buf_put(&c->offsets, &offset, 4) < 0) return -1;
    } else if (c->kind == C_BOOL) {
        if (bit_put(&c->values, c->length, 0) < 0) return -1;
    } else if (buf_put(&c->values, zeros, WIDTH[c->kind]) < 0) return -1;
    return col_end(c, 0);
}

static int col_u64(Col *c, uint64_t v) { return col_fixed(c, &v); }
static int col_i64(Col *c, int64_t v) { return col_fixed(c, &v); }
static int col_u8(Col *c, uint8_t v) { return col_fixed(c, &v); }
static int col_u16(Col *c, uint16_t v) { return col_fixed(c, &v); }
static int col_f64(Col *c, double v) { return col_fixed(c, &v); }

static int col_bool(Col *c, int v) {
    return bit_put(&c->values, c->length, v) < 0 ? -1 : col_end(c, 1);
}

/* Text known to be valid UTF-8: a constant, or JSON built by buf_json_string. */
static inline int col_text_checked(Col *c, const void *s, size_t n) {
    if (c->values.len + n > INT32_MAX) return fail("request too large");
    if (buf_put(&c->values, s, n) < 0) return -1;
    int32_t offset = (int32_t)c->values.len;
    if (buf_put(&c->offsets, &offset, 4) < 0) return -1;
    return col_end(c, 1);
}

/* A string from the request, checked as Python's strict UTF-8 decoder would. */
static inline int col_str(Col *c, const void *s, size_t n) {
    if (!utf8_ok((const uint8_t *)s, n)) return fail("string is not valid UTF-8");
    return col_text_checked(c, s, n);
}

static int col_cstr(Col *c, const char *s) { return col_text_checked(c, s, strlen(s)); }

/* Characters (code points) of valid UTF-8: its bytes that do not continue a sequence. */
static size_t utf8_chars(const char *s, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((uint8_t)s[i] & 0xC0) != 0x80;
    return chars;
}

/* JSON text (its strings were checked as they were written), capped like otel.to_json: at
 * MAX_JSON_CHARS characters, not bytes (the Python path counts a str). */
static int col_json(Col *c, const Buf *json) {
    size_t chars = json->len > MAX_JSON_CHARS ? utf8_chars(json->data, json->len) : json->len;
    if (chars > MAX_JSON_CHARS) {
        char tmp[64];
        int n = snprintf(tmp, sizeof tmp, "{\"truncated\":true,\"chars\":%zu}", chars);
        return col_text_checked(c, tmp, (size_t)n);
    }
    return col_text_checked(c, json->data, json->len);
}

/* ------------------------------------------------------------------ Arrow C data interface */

/* The Arrow C data interface's array (arrow.apache.org/docs/format/CDataInterface.html): a
 * table goes to pyarrow as one struct array of its columns, in a PyCapsule ("arrow_array"),
 * its buffers handed over without a copy and freed by the release callbacks. */
struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

static const uint64_t NO_BYTES = 0;  /* stands in for an empty values buffer: never NULL */

typedef struct {
    void *owned[3];
    const void *buffers[3];
    struct ArrowArray *dictionary;
} ColumnPrivate;

static void release_column(struct ArrowArray *a) {
    ColumnPrivate *p = a->private_data;
    for (int i = 0; i < 3; i++) PyMem_RawFree(p->owned[i]);
    if (p->dictionary) {
        if (p->dictionary->release) p->dictionary->release(p->dictionary);  /* unless moved out */
        PyMem_RawFree(p->dictionary);
    }
    PyMem_RawFree(p);
    a->release = NULL;
}

/* Move a column's buffers into `a` (the Col is left empty). */
static int column_array(Col *c, struct ArrowArray *a) {
    ColumnPrivate *p = PyMem_RawCalloc(1, sizeof *p);
    if (!p) return oom();
    int n = 0;
    p->owned[0] = c->validity.data;
    p->buffers[n++] = c->nulls ? c->validity.data : NULL;
    if (c->kind == C_STR) { p->owned[1] = c->offsets.data; p->buffers[n++] = c->offsets.data; }
    p->owned[2] = c->values.data;
    p->buffers[n++] = c->values.data ? (const void *)c->values.data : (const void *)&NO_BYTES;
    memset(a, 0, sizeof *a);
    a->length = c->length;
    a->null_count = c->nulls;
    a->n_buffers = n;
    a->buffers = p->buffers;
    a->release = release_column;
    a->private_data = p;
    memset(&c->validity, 0, sizeof c->validity);
    memset(&c->offsets, 0, sizeof c->offsets);
    memset(&c->values, 0, sizeof c->values);
    if (c->kind == C_DICT) {
        /* A dictionary-encoded column: its strings once, as the array's dictionary. */
        p->dictionary = PyMem_RawCalloc(1, sizeof *p->dictionary);
        if (!p->dictionary || column_array(c->dictionary, p->dictionary) < 0) return oom();
        a->dictionary = p->dictionary;
    }
    return 0;
}

typedef struct {
    const void *buffers[1];
    struct ArrowArray **children;
    struct ArrowArray *columns;
} TablePrivate;

static void release_table(struct ArrowArray *a) {
    TablePrivate *p = a->private_data;
    for (int64_t i = 0; i < a->n_children; i++)
        if (p->columns[i].release) p->columns[i].release(&p->columns[i]);
    PyMem_RawFree(p->children);
    PyMem_RawFree(p->columns);
    PyMem_RawFree(p);
    a->release = NULL;
}

static void release_capsule(PyObject *capsule) {
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (!a) { PyErr_Clear(); return; }
    if (a->release) a->release(a);  /* not imported (an import moves it out) */
    PyMem_RawFree(a);
}

/* The columns as a struct array in a capsule, for pa.RecordBatch._import_from_c_capsule. */
static PyObject *table_capsule(Col *cols, int n) {
    struct ArrowArray *table = PyMem_RawCalloc(1, sizeof *table);
    TablePrivate *p = PyMem_RawCalloc(1, sizeof *p);
    struct ArrowArray **children = PyMem_RawCalloc((size_t)n, sizeof *children);
    struct ArrowArray *columns = PyMem_RawCalloc((size_t)n, sizeof *columns);
    if (!table || !p || !children || !columns) {
        PyMem_RawFree(table); PyMem_RawFree(p); PyMem_RawFree(children); PyMem_RawFree(columns);
        return PyErr_NoMemory();
    }
    p->children = children;
    p->columns = columns;
    table->length = cols[0].length;
    table->n_buffers = 1;  /* the struct's validity: none, nothing is null */
    table->n_children = n;
    table->buffers = p->buffers;
    table->children = children;
    table->release = release_table;
    table->private_data = p;
    for (int i = 0; i < n; i++) {
        children[i] = &columns[i];
        if (column_array(&cols[i], &columns[i]) < 0) {
            release_table(table);
            PyMem_RawFree(table);
            return PyErr_NoMemory();
        }
    }
    PyObject *capsule = PyCapsule_New(table, "arrow_array", release_capsule);
    if (!capsule) { release_table(table); PyMem_RawFree(table); }
    return capsule;
}

/* ------------------------------------------------------------------ meanings */

/* What a span means is derive.py's span_meaning, asked once per distinct signature of a span's
 * fact values (kind, status code, exception event, its resource's version, and per present key
 * its type, truthiness, number, and text where the rules read it) and kept here, per thread, to
 * apply to every span that shares the signature. A text the rules only copy comes back as its
 * key's marker, and each span gets its own text for it. */

typedef struct {
    const uint8_t *s;
    size_t n;
    int present;
} Text;


static int col_text(Col *c, Text t) { return t.present ? col_str(c, t.s, t.n) : col_null(c); }

enum { O_METHOD, O_ROUTE, O_URL, O_UA, O_ORIGIN, O_TARGET_TYPE, O_TARGET_NAME, O_VERSION, O_USER, N_OUT_TEXTS };
/* their places in span_meaning's tuple */
static const int OUT_TEXT_AT[N_OUT_TEXTS] = {0, 1, 2, 4, 9, 10, 11, 12, 13};
enum { T_NULL, T_CONST, T_REF };

typedef struct {
    int kind;      /* T_NULL, T_CONST (bytes, len) or T_REF (the text of fact key `ref`) */
    int ref;
    char *bytes;
    size_t len;
} OutText;

typedef struct {
    uint8_t *signature;  /* NULL: an empty slot */
    size_t signature_len;
    uint64_t hash;
    OutText text[N_OUT_TEXTS];
    int status;          /* -1: none */
    int error, fault, throttle;
    int cold;            /* -1: none */
} Meaning;

#define CACHE_SLOTS 4096                  /* a power of two */
#define CACHE_MAX_ENTRIES (CACHE_SLOTS / 2)
#define CACHE_MAX_BYTES (4u << 20)
#define MAX_CACHED_SIGNATURE 1024         /* a longer one is asked for each time, never kept */

typedef struct {
    Meaning slots[CACHE_SLOTS];
    size_t entries, bytes;
} MeaningCache;

/* Per thread: the decode runs without the GIL on several threads at once. */
static _Thread_local MeaningCache *meaning_cache;

static void meaning_free(Meaning *m) {
    PyMem_RawFree(m->signature);
    for (int i = 0; i < N_OUT_TEXTS; i++) PyMem_RawFree(m->text[i].bytes);
    memset(m, 0, sizeof *m);
}

static void cache_clear(MeaningCache *cache) {
    for (size_t i = 0; i < CACHE_SLOTS; i++) if (cache->slots[i].signature) meaning_free(&cache->slots[i]);
    cache->entries = cache->bytes = 0;
}

enum { SIGNATURE_OF_SPAN, SIGNATURE_OF_RESOURCE };

static inline uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) { *p++ = (uint8_t)(v | 0x80); v >>= 7; }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *put_small(uint8_t *p, int32_t v) {
    if (v >= 0 && v < 255) *p++ = (uint8_t)v;
    else { *p++ = 255; memcpy(p, &v, 4); p += 4; }
    return p;
}

/* The signature of a span: everything span_meaning's answer depends on, packed (a span of the
 * bench's: ~40 bytes). `present` has bit k set for each fact key the span holds. Room for all
 * of it is reserved first, then it is written without a check per field. */
static int build_signature(Buf *b, const Hot *hot, uint64_t present, int32_t kind, int32_t code, int has_exception,
                           Text version) {
    size_t need = 32 + version.n + 24 * (size_t)__builtin_popcountll(present);
    for (uint64_t bits = present; bits; bits &= bits - 1) {
        int k = __builtin_ctzll(bits);
        if (TEXT_READ[k]) need += hot[k].slen;
    }
    b->len = 0;
    if (buf_reserve(b, need) < 0) return -1;
    uint8_t *p = (uint8_t *)b->data;
    *p++ = SIGNATURE_OF_SPAN;
    p = put_small(put_small(p, kind), code);
    *p++ = (uint8_t)(has_exception | version.present << 1);
    if (version.present) { p = put_varint(p, version.n); memcpy(p, version.s, version.n); p += version.n; }
    for (uint64_t bits = present; bits; bits &= bits - 1) {
        int k = __builtin_ctzll(bits);
        const Hot *h = &hot[k];
        int has_text = h->type == V_STR || (h->type == V_ARRAY && h->first_is_str);
        *p++ = (uint8_t)k;
        *p++ = (uint8_t)(h->type | h->truthy << 3 | has_text << 4 | (h->slen > 0) << 5 | (h->type == V_BOOL && h->b) << 6);
        if (h->type == V_INT) p = put_varint(p, ((uint64_t)h->i << 1) ^ (uint64_t)(h->i >> 63));
        else if (h->type == V_DOUBLE) { memcpy(p, &h->d, 8); p += 8; }
        else if (has_text && TEXT_READ[k]) { p = put_varint(p, h->slen); memcpy(p, h->s, h->slen); p += h->slen; }
    }
    b->len = (size_t)(p - (uint8_t *)b->data);
    return 0;
}

/* A fact's value as span_meaning sees it (with the GIL): a text it only copies is its marker. */
static PyObject *fact_value(const Hot *h, int k, int real_texts) {
    switch (h->type) {
    case V_STR:
    case V_ARRAY: {
        PyObject *text = NULL;
        if (h->type == V_STR || h->first_is_str) {
            if (real_texts || TEXT_READ[k] || h->slen == 0) text = PyUnicode_DecodeUTF8((const char *)h->s, (Py_ssize_t)h->slen, "strict");
            else { text = MARKERS[k]; Py_INCREF(text); }
            if (!text) return NULL;
        }
        if (h->type == V_STR) return text;
        /* an array: only its first element, and whether it has one, reach the rules */
        if (!text && h->truthy) { text = Py_None; Py_INCREF(text); }
        PyObject *list = PyList_New(0);
        if (list && text && PyList_Append(list, text) < 0) Py_CLEAR(list);
        Py_XDECREF(text);
        return list;
    }
    case V_BOOL: return PyBool_FromLong(h->b);
    case V_INT: return PyLong_FromLongLong(h->i);
    case V_DOUBLE: return PyFloat_FromDouble(h->d);
    case V_KVLIST: return h->truthy ? Py_BuildValue("{s:O}", "", Py_None) : PyDict_New();
    default: Py_RETURN_NONE;
    }
}

static int contains_marker(const char *s, size_t n) {
    size_t m = strlen(MARKER_PREFIX);
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == MARKER_PREFIX[0] && memcmp(s + i, MARKER_PREFIX, m) == 0) return 1;
    return 0;
}

/* One text of span_meaning's answer into `out`. */
static int out_text(PyObject *value, OutText *out) {
    memset(out, 0, sizeof *out);
    if (value == Py_None) return 0;
    for (int k = 0; k < N_HOT; k++)
        if (value == MARKERS[k]) { out->kind = T_REF; out->ref = k; return 0; }
    Py_ssize_t n;
    const char *utf8 = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &n) : NULL;
    if (!utf8) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "span_meaning answered a text that is not a str");
        return -1;
    }
    if (contains_marker(utf8, (size_t)n)) {
        /* a rule looked into a text it does not list in TEXT_READ_KEYS */
        PyErr_SetString(PyExc_SystemError, "derive.span_meaning composed a marker: list the key in TEXT_READ_KEYS");
        return -1;
    }
    out->bytes = PyMem_RawMalloc((size_t)n + 1);
    if (!out->bytes) { PyErr_NoMemory(); return -1; }
    memcpy(out->bytes, utf8, (size_t)n);
    out->len = (size_t)n;
    out->kind = T_CONST;
    return 0;
}

static int optional_bool(PyObject *value) { return value == Py_None ? -1 : PyObject_IsTrue(value); }

/* Ask span_meaning (taking the GIL) for the meaning of a span; fills `m` but its signature. */
static int ask_meaning(Meaning *m, const Hot *hot, uint64_t present, const char *kind_name, int32_t code,
                       int has_exception, Text version) {
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = -1;
    PyObject *attributes = PyDict_New(), *version_obj = NULL, *answer = NULL;
    for (uint64_t bits = present; attributes && bits; bits &= bits - 1) {
        int k = __builtin_ctzll(bits);
        PyObject *value = fact_value(&hot[k], k, 0);
        if (!value || PyDict_SetItem(attributes, KEY_OBJECTS[k], value) < 0) { Py_XDECREF(value); goto done; }
        Py_DECREF(value);
    }
    if (!attributes) goto done;
    version_obj = version.present ? PyUnicode_DecodeUTF8((const char *)version.s, (Py_ssize_t)version.n, "strict") : Py_NewRef(Py_None);
    if (!version_obj) goto done;
    answer = PyObject_CallFunction(SPAN_MEANING, "OsiOO", attributes, kind_name, (int)code,
                                   has_exception ? Py_True : Py_False, version_obj);
    if (!answer) goto done;
    if (!PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 14) {
        PyErr_SetString(PyExc_TypeError, "span_meaning must answer a tuple of 14");
        goto done;
    }
    for (int i = 0; i < N_OUT_TEXTS; i++)
        if (out_text(PyTuple_GET_ITEM(answer, OUT_TEXT_AT[i]), &m->text[i]) < 0) goto done;
    PyObject *status = PyTuple_GET_ITEM(answer, 3);
    m->status = status == Py_None ? -1 : (int)PyLong_AsLong(status);
    m->error = PyObject_IsTrue(PyTuple_GET_ITEM(answer, 5));
    m->fault = PyObject_IsTrue(PyTuple_GET_ITEM(answer, 6));
    m->throttle = PyObject_IsTrue(PyTuple_GET_ITEM(answer, 7));
    m->cold = optional_bool(PyTuple_GET_ITEM(answer, 8));
    rc = PyErr_Occurred() ? -1 : 0;
done:
    if (rc < 0) {
        /* a bug in derive.py, not a bad request: said loudly, and the request left to the
         * Python path, where the same rules raise it where it belongs */
        PyErr_WriteUnraisable(SPAN_MEANING);
        defer();
    }
    Py_XDECREF(attributes);
    Py_XDECREF(version_obj);
    Py_XDECREF(answer);
    PyGILState_Release(gil);
    return rc;
}

static MeaningCache *thread_cache(void) {
    if (!meaning_cache) meaning_cache = PyMem_RawCalloc(1, sizeof *meaning_cache);
    return meaning_cache;
}

/* The entry of `signature` in this thread's cache, or NULL. */
static const Meaning *cache_find(MeaningCache *cache, const Buf *signature, uint64_t hash) {
    for (size_t slot = (size_t)hash & (CACHE_SLOTS - 1); cache->slots[slot].signature; slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        const Meaning *found = &cache->slots[slot];
        if (found->hash == hash && found->signature_len == signature->len
            && memcmp(found->signature, signature->data, signature->len) == 0)
            return found;
    }
    return NULL;
}

/* Keep `asked` (just asked for, not in the cache) under `signature`, unless too long; returns
 * where the meaning now is. A full cache is emptied first: a flood of distinct signatures
 * starts it again rather than growing it. */
static const Meaning *cache_keep(MeaningCache *cache, const Buf *signature, uint64_t hash, Meaning *asked) {
    if (signature->len > MAX_CACHED_SIGNATURE) return asked;
    if (cache->entries >= CACHE_MAX_ENTRIES || cache->bytes >= CACHE_MAX_BYTES) cache_clear(cache);
    uint8_t *kept = PyMem_RawMalloc(signature->len);
    if (!kept) return asked;  /* not kept: it is only asked again */
    memcpy(kept, signature->data, signature->len);
    size_t slot = (size_t)hash & (CACHE_SLOTS - 1);
    while (cache->slots[slot].signature) slot = (slot + 1) & (CACHE_SLOTS - 1);
    Meaning *entry = &cache->slots[slot];
    *entry = *asked;  /* the entry takes over the texts */
    memset(asked, 0, sizeof *asked);
    entry->signature = kept;
    entry->signature_len = signature->len;
    entry->hash = hash;
    cache->entries++;
    cache->bytes += signature->len;
    for (int i = 0; i < N_OUT_TEXTS; i++) cache->bytes += entry->text[i].len;
    return entry;
}

/* The meaning of a span: from this thread's cache, else asked and kept. `*m` points into the
 * cache or at `scratch`; either holds until the next call. */
static int meaning_of(const Hot *hot, uint64_t present, const char *kind_name, int32_t kind, int32_t code,
                      int has_exception, Text version, Buf *signature, Meaning *scratch, const Meaning **m) {
    if (build_signature(signature, hot, present, kind, code, has_exception, version) < 0) return -1;
    uint64_t hash = (uint64_t)_Py_HashBytes(signature->data, (Py_ssize_t)signature->len);
    MeaningCache *cache = thread_cache();
    if (!cache) return oom();
    if ((*m = cache_find(cache, signature, hash))) return 0;
    meaning_free(scratch);
    if (ask_meaning(scratch, hot, present, kind_name, code, has_exception, version) < 0) return -1;
    *m = cache_keep(cache, signature, hash, scratch);
    return 0;
}

/* A text of a meaning, for one span: a constant, or that span's own text of a key. */
static Text meaning_text(const OutText *t, const Hot *hot) {
    Text none = {NULL, 0, 0};
    if (t->kind == T_CONST) { Text c = {(const uint8_t *)t->bytes, t->len, 1}; return c; }
    if (t->kind == T_REF) { Text r = {hot[t->ref].s, hot[t->ref].slen, 1}; return r; }
    return none;
}

/* ------------------------------------------------------------------ the request walk */

typedef struct { const uint8_t *trace; uint64_t span; } LinkRef;

/* A span's working buffers, kept from span to span of a request (emptied, not freed). */
typedef struct {
    KvSet attrs, event_attrs, scratch_attrs;
    LinkRef *links;
    size_t link_cap;
    Buf events, attrs_json, scratch;
    Meaning asked;  /* a meaning asked for but not kept */
} SpanScratch;

typedef struct {
    SpanScratch work;
    Col spans[N_COLUMNS];
    Col annotations[N_ANNOTATION_COLUMNS];
    Col links[N_LINK_COLUMNS];
    Col resource_dict;  /* each ResourceSpans' JSON once; spans hold an index into it */
    Col service_dict;   /* and its service name */
    const char *reasons[MAX_REASONS];
    int reason_count;
    Py_ssize_t rejected;
    int needs_python;
} Out;

static const int SPAN_KINDS[N_COLUMNS] = {
    C_F16, C_U64, C_U64, C_DICT, C_STR, C_STR, C_I64, C_I64, C_U8, C_STR, C_STR, C_STR, C_STR, C_U16, C_STR,
    C_BOOL, C_BOOL, C_BOOL, C_BOOL, C_STR, C_STR, C_STR, C_STR, C_STR, C_BOOL, C_STR, C_STR, C_STR, C_DICT,
};
static const int ANNOTATION_KINDS[N_ANNOTATION_COLUMNS] = {C_F16, C_U64, C_I64, C_STR, C_STR, C_F64, C_BOOL};
static const int LINK_KINDS[N_LINK_COLUMNS] = {C_F16, C_U64, C_I64, C_F16, C_U64};

typedef struct {
    Text service;           /* derive.resource_meaning's answer, held in `names` */
    Text function_version;
    Buf names;
    Buf json;
    int32_t dict_index;     /* its JSON's place in the resource column's dictionary */
    int32_t service_index;  /* its service's place in the service column's dictionary */
} Resource;

static const char *KIND_NAMES[] = {"UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};

static void reject(Out *out, const char *reason) {
    out->rejected++;
    if (out->reason_count >= MAX_REASONS) return;
    for (int i = 0; i < out->reason_count; i++) if (strcmp(out->reasons[i], reason) == 0) return;
    out->reasons[out->reason_count++] = reason;
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) if (p[i]) return 0;
    return 1;
}

static uint64_t be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}


static int scan_attributes(KV *kvs, size_t count, Hot *hot, uint64_t *present, Buf *json, int *annotations) {
    *annotations = 0;
    for (size_t j = 0; j < count; j++) {
        int k = hot_index(kvs[j].key, kvs[j].klen);
        if (k >= 0) {
            Reader value = kvs[j].value;
            if (value.p == value.end) { memset(&hot[k], 0, sizeof hot[k]); hot[k].present = 1; }
            else if (any_value(&value, NULL, &hot[k], 0) < 0) return -1;
            *present |= 1ull << k;
        }
        if (kvs[j].klen > ANNOTATION_PREFIX_LEN && memcmp(kvs[j].key, ANNOTATION_PREFIX, ANNOTATION_PREFIX_LEN) == 0)
            (*annotations)++;
        if (kvs[j].klen == ANNOTATION_LIST_KEY_LEN && memcmp(kvs[j].key, ANNOTATION_LIST_KEY, ANNOTATION_LIST_KEY_LEN) == 0)
            return 1;
        /* derive.py sees bytes as hex text: such a request is the Python path's */
        if (k >= 0 && (hot[k].type == V_BYTES || hot[k].first_is_bytes)) return 1;
    }
    return json ? kvs_json(kvs, count, json, 0) : 0;
}

static int add_annotations(Out *out, KV *kvs, size_t count, const uint8_t *trace, uint64_t span, int64_t start) {
    Col *a = out->annotations;
    for (size_t j = 0; j < count; j++) {
        if (!(kvs[j].klen > ANNOTATION_PREFIX_LEN && memcmp(kvs[j].key, ANNOTATION_PREFIX, ANNOTATION_PREFIX_LEN) == 0))
            continue;
        Hot h; Reader value = kvs[j].value;
        if (value.p == value.end) continue;
        if (any_value(&value, NULL, &h, 0) < 0) return -1;
        if (h.type == V_BYTES) { out->needs_python = 1; return 0; }  /* an annotation of hex text: Python's */
        if (h.type != V_STR && h.type != V_BOOL && h.type != V_INT && h.type != V_DOUBLE) continue;
        int rc = col_fixed(&a[0], trace) | col_u64(&a[1], span) | col_i64(&a[2], start)
                 | col_str(&a[3], kvs[j].key + ANNOTATION_PREFIX_LEN, kvs[j].klen - ANNOTATION_PREFIX_LEN);
        rc |= h.type == V_STR ? col_str(&a[4], h.s, h.slen) : col_null(&a[4]);
        rc |= h.type == V_INT ? col_f64(&a[5], (double)h.i) : h.type == V_DOUBLE ? col_f64(&a[5], h.d) : col_null(&a[5]);
        rc |= h.type == V_BOOL ? col_bool(&a[6], h.b) : col_null(&a[6]);
        if (rc) return -1;
    }
    return 0;
}

static int append_span(Out *out, const Resource *res, const uint8_t *trace, const uint8_t *span, const uint8_t *parent,
                       size_t parent_len, Text name, const char *kind_name, uint64_t start, uint64_t end, uint64_t code,
                       Text status_msg, const Hot *hot, const Meaning *m, const Buf *attrs_json, size_t kv_count,
                       const Buf *events, int event_count) {
    Col *c = out->spans;
    int rc = col_fixed(&c[0], trace);
    rc |= col_u64(&c[1], be64(span));
    rc |= parent_len ? col_u64(&c[2], be64(parent)) : col_null(&c[2]);
    rc |= col_fixed(&c[3], &res->service_index);
    rc |= col_text(&c[4], name);
    rc |= col_cstr(&c[5], kind_name);
    rc |= col_i64(&c[6], (int64_t)start);
    rc |= col_i64(&c[7], end > start ? (int64_t)(end - start) : 0);
    rc |= col_u8(&c[8], (uint8_t)code);
    rc |= status_msg.n ? col_text(&c[9], status_msg) : col_null(&c[9]);
    rc |= col_text(&c[10], meaning_text(&m->text[O_METHOD], hot));
    rc |= col_text(&c[11], meaning_text(&m->text[O_ROUTE], hot));
    rc |= col_text(&c[12], meaning_text(&m->text[O_URL], hot));
    rc |= m->status >= 0 ? col_u16(&c[13], (uint16_t)m->status) : col_null(&c[13]);
    rc |= col_text(&c[14], meaning_text(&m->text[O_UA], hot));
    rc |= col_bool(&c[15], m->error);
    rc |= col_bool(&c[16], m->fault);
    rc |= col_bool(&c[17], m->throttle);
    rc |= m->cold >= 0 ? col_bool(&c[18], m->cold) : col_null(&c[18]);
    rc |= col_text(&c[19], meaning_text(&m->text[O_ORIGIN], hot));
    rc |= col_text(&c[20], meaning_text(&m->text[O_TARGET_TYPE], hot));
    rc |= col_text(&c[21], meaning_text(&m->text[O_TARGET_NAME], hot));
    rc |= col_text(&c[22], meaning_text(&m->text[O_VERSION], hot));
    rc |= col_text(&c[23], meaning_text(&m->text[O_USER], hot));
    rc |= col_bool(&c[24], 0);
    rc |= col_cstr(&c[25], "otlp");
    rc |= kv_count ? col_json(&c[26], attrs_json) : col_null(&c[26]);
    rc |= event_count ? col_json(&c[27], events) : col_null(&c[27]);
    rc |= col_fixed(&c[28], &res->dict_index);
    return rc ? -1 : 0;
}

/* A string field the rows never show, checked as upb checks every string field it parses. */
static int text_ok(Reader s) {
    return utf8_ok(s.p, (size_t)(s.end - s.p)) ? 0 : fail("string is not valid UTF-8");
}

/* One KeyValue the rows never show (a link's or a scope's attribute), checked as upb would:
 * its key and every string inside its value, by writing it as JSON into `scratch`. */
static int attributes_ok(Reader *kv, KvSet *set, Buf *scratch) {
    KV item;
    if (read_kv(*kv, &item) < 0) return -1;
    kvset_clear(set);
    if (kvset_put(set, item) < 0) return -1;
    size_t mark = scratch->len;
    int rc = kvs_json(set->items, set->count, scratch, 0);
    scratch->len = mark;
    return rc;
}

static int walk_span(Reader *r, const Resource *res, Out *out) {
    const uint8_t *trace = NULL, *span = NULL, *parent = NULL, *name = (const uint8_t *)"", *status_msg = NULL;
    size_t trace_len = 0, span_len = 0, parent_len = 0, name_len = 0, status_msg_len = 0;
    uint64_t kind = 0, start = 0, end = 0, status_code = 0;
    SpanScratch *work = &out->work;
    kvset_clear(&work->attrs);
    LinkRef *link_refs = work->links; size_t link_count = 0, link_cap = work->link_cap;
    int rc = -1;
    Buf events = work->events, attrs_json = work->attrs_json, scratch = work->scratch;
    events.len = attrs_json.len = scratch.len = 0;
    int event_count = 0, has_exception = 0;

    while (r->p < r->end) {
        uint32_t field; int wire; Reader sub; uint64_t v;
        if (read_tag(r, &field, &wire) < 0) goto malformed;
        switch (field) {
        case 1: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; trace = sub.p; trace_len = (size_t)(sub.end - sub.p); break;
        case 2: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; span = sub.p; span_len = (size_t)(sub.end - sub.p); break;
        case 3: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; if (text_ok(sub) < 0) goto fail; break;
        case 4: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; parent = sub.p; parent_len = (size_t)(sub.end - sub.p); break;
        case 5: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; if (replaced_text_ok(name, name_len) < 0) goto fail; name = sub.p; name_len = (size_t)(sub.end - sub.p); break;
        case 6: if (wire != 0) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_varint(r, &kind) < 0) goto malformed; break;
        case 7: if (wire != 1) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_fixed64(r, &start) < 0) goto malformed; break;
        case 8: if (wire != 1) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_fixed64(r, &end) < 0) goto malformed; break;
        case 9: {
            if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; }
            KV item;
            if (read_bytes(r, &sub) < 0 || read_kv(sub, &item) < 0) goto malformed;
            if (kvset_put(&work->attrs, item) < 0) goto fail;
            break;
        }
        case 11: {
            if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; }
            if (read_bytes(r, &sub) < 0) goto malformed;
            uint64_t when = 0; const uint8_t *ename = (const uint8_t *)""; size_t ename_len = 0;
            Reader eattrs = {sub.p, sub.p};
            Reader scan = sub;
            while (scan.p < scan.end) {
                uint32_t f2; int w2; Reader s2;
                if (read_tag(&scan, &f2, &w2) < 0) goto malformed;
                if (f2 == 1 && w2 == 1) { if (read_fixed64(&scan, &when) < 0) goto malformed; }
                else if (f2 == 2 && w2 == 2) { if (read_bytes(&scan, &s2) < 0) goto malformed; if (replaced_text_ok(ename, ename_len) < 0) goto fail; ename = s2.p; ename_len = (size_t)(s2.end - s2.p); }
                else if (skip_field(&scan, w2) < 0) goto malformed;
            }
            eattrs = sub;
            if (collect_kvs(&eattrs, 3, &work->event_attrs) < 0) goto malformed;
            if (ename_len == 9 && memcmp(ename, "exception", 9) == 0) has_exception = 1;
            int erc = buf_putc(&events, event_count ? ',' : '[');
            if (erc == 0) erc = buf_put(&events, "{\"name\":", 8);
            if (erc == 0) erc = buf_json_string(&events, ename, ename_len);
            if (erc == 0) erc = buf_put(&events, ",\"time_ns\":", 11);
            if (erc == 0) erc = buf_uint(&events, when);
            if (erc == 0) erc = buf_put(&events, ",\"attributes\":", 14);
            if (erc == 0) erc = kvs_json(work->event_attrs.items, work->event_attrs.count, &events, 0);
            if (erc == 0) erc = buf_putc(&events, '}');
            if (erc < 0) goto fail;
            event_count++;
            break;
        }
        case 13: {
            if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; }
            if (read_bytes(r, &sub) < 0) goto malformed;
            const uint8_t *lt = NULL, *ls = NULL; size_t lt_len = 0, ls_len = 0;
            while (sub.p < sub.end) {
                uint32_t f2; int w2; Reader s2;
                if (read_tag(&sub, &f2, &w2) < 0) goto malformed;
                if (f2 == 1 && w2 == 2) { if (read_bytes(&sub, &s2) < 0) goto malformed; lt = s2.p; lt_len = (size_t)(s2.end - s2.p); }
                else if (f2 == 2 && w2 == 2) { if (read_bytes(&sub, &s2) < 0) goto malformed; ls = s2.p; ls_len = (size_t)(s2.end - s2.p); }
                else if (f2 == 3 && w2 == 2) { if (read_bytes(&sub, &s2) < 0) goto malformed; if (text_ok(s2) < 0) goto fail; }
                else if (f2 == 4 && w2 == 2) {
                    Reader one;
                    if (read_bytes(&sub, &one) < 0) goto malformed;
                    if (attributes_ok(&one, &work->scratch_attrs, &scratch) < 0) goto fail;
                }
                else if (skip_field(&sub, w2) < 0) goto malformed;
            }
            if (lt_len == 16 && ls_len == 8) {
                if (link_count == link_cap) {
                    link_cap = link_cap ? link_cap * 2 : 4;
                    LinkRef *grown = PyMem_RawRealloc(link_refs, link_cap * sizeof(LinkRef));
                    if (!grown) { oom(); goto fail; }
                    link_refs = grown;
                }
                link_refs[link_count].trace = lt;
                link_refs[link_count].span = be64(ls);
                link_count++;
            }
            break;
        }
        case 15: {
            if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; }
            if (read_bytes(r, &sub) < 0) goto malformed;
            while (sub.p < sub.end) {
                uint32_t f2; int w2; Reader s2;
                if (read_tag(&sub, &f2, &w2) < 0) goto malformed;
                if (f2 == 2 && w2 == 2) { if (read_bytes(&sub, &s2) < 0) goto malformed; if (replaced_text_ok(status_msg, status_msg_len) < 0) goto fail; status_msg = s2.p; status_msg_len = (size_t)(s2.end - s2.p); }
                else if (f2 == 3 && w2 == 0) { if (read_varint(&sub, &v) < 0) goto malformed; status_code = v; }
                else if (skip_field(&sub, w2) < 0) goto malformed;
            }
            break;
        }
        default:
            if (skip_field(r, wire) < 0) goto malformed;
        }
    }

    /* Validation, in otel.invalid_ids' order and words. */
    const char *problem = NULL;
    if (trace_len != 16 || all_zero(trace, 16)) problem = "trace_id must be 16 non-zero bytes";
    else if (span_len != 8 || all_zero(span, 8)) problem = "span_id must be 8 non-zero bytes";
    else if (parent_len != 0 && parent_len != 8) problem = "parent_span_id must be empty or 8 bytes";
    else if (start > INT64_MAX || end > INT64_MAX) problem = "start and end times must be nanoseconds within int64";
    else if (end < start) problem = "a span must not end before it starts";
    if (problem) {
        /* The rejected span's attributes are checked still (UTF-8, depth): the Python path's
         * parse refuses the whole request over them, rejected span or not. */
        if (work->attrs.count && kvs_json(work->attrs.items, work->attrs.count, &attrs_json, 0) < 0) goto fail;
        if (!utf8_ok(name, name_len) || !utf8_ok(status_msg, status_msg_len)) { fail("string is not valid UTF-8"); goto fail; }
        reject(out, problem);
        rc = 0;
        goto cleanup;
    }

    Hot hot[MAX_FACT_KEYS];  /* only the keys in `present` are set */
    uint64_t present = 0;
    int annotation_count = 0;
    KV *kvs = work->attrs.items;
    size_t kv_count = work->attrs.count;
    int scanned = scan_attributes(kvs, kv_count, hot, &present, kv_count ? &attrs_json : NULL, &annotation_count);
    if (scanned < 0) goto fail;
    if (scanned == 1) { out->needs_python = 1; rc = 0; goto cleanup; }

    /* Enums are int32 on the wire: upb keeps the low 32 bits of a longer varint. */
    int32_t kind32 = (int32_t)(uint32_t)kind, code32 = (int32_t)(uint32_t)status_code;
    const char *kind_name = kind32 >= 0 && kind32 < 6 ? KIND_NAMES[kind32] : "UNSPECIFIED";
    uint64_t code = code32 >= 0 && code32 <= 2 ? (uint64_t)code32 : 0;
    const Meaning *meaning;
    int asked = meaning_of(hot, present, kind_name, kind32, code32, has_exception, res->function_version, &scratch,
                           &work->asked, &meaning);
    if (asked < 0) goto fail;
    if (event_count && buf_putc(&events, ']') < 0) goto fail;

    Text name_text = {name, name_len, 1};
    Text status_text = {status_msg, status_msg_len, status_msg_len > 0};
    if (append_span(out, res, trace, span, parent, parent_len, name_text, kind_name, start, end, code, status_text, hot,
                    meaning, &attrs_json, kv_count, &events, event_count) < 0)
        goto fail;
    uint64_t span_id = be64(span);
    if (annotation_count && add_annotations(out, kvs, kv_count, trace, span_id, (int64_t)start) < 0) goto fail;
    for (size_t i = 0; i < link_count; i++) {
        Col *l = out->links;
        if (col_fixed(&l[0], trace) | col_u64(&l[1], span_id) | col_i64(&l[2], (int64_t)start)
            | col_fixed(&l[3], link_refs[i].trace) | col_u64(&l[4], link_refs[i].span))
            goto fail;
    }
    rc = 0;
    goto cleanup;

malformed:
    fail("malformed span");
fail:
    rc = -1;
cleanup:
    work->links = link_refs; work->link_cap = link_cap;
    work->events = events; work->attrs_json = attrs_json; work->scratch = scratch;
    return rc;
}

/* derive.resource_meaning of a resource's named values, asked (with the GIL) into `m`: the
 * service as its first text, the version as its second. */
static int ask_resource_meaning(Meaning *m, const Hot named[3]) {
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *args[3] = {NULL, NULL, NULL}, *answer = NULL;
    int rc = -1;
    for (int i = 0; i < 3; i++) {
        args[i] = named[i].present ? fact_value(&named[i], 0, 1) : Py_NewRef(Py_None);
        if (!args[i]) goto done;
    }
    answer = PyObject_CallFunctionObjArgs(RESOURCE_MEANING, args[0], args[1], args[2], NULL);
    if (!answer || !PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 2 || PyTuple_GET_ITEM(answer, 0) == Py_None) goto done;
    if (out_text(PyTuple_GET_ITEM(answer, 0), &m->text[0]) < 0 || out_text(PyTuple_GET_ITEM(answer, 1), &m->text[1]) < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "resource_meaning must answer (str, str or None)");
        PyErr_WriteUnraisable(RESOURCE_MEANING);
        defer();
    }
    for (int i = 0; i < 3; i++) Py_XDECREF(args[i]);
    Py_XDECREF(answer);
    PyGILState_Release(gil);
    return rc;
}

/* A resource's service and version (derive.resource_meaning's), from this thread's cache or
 * asked, copied into `res`. */
static int resource_meaning(Resource *res, const Hot named[3], Buf *signature, Meaning *scratch) {
    size_t need = 8;
    for (int i = 0; i < 3; i++) need += 16 + named[i].slen;
    signature->len = 0;
    if (buf_reserve(signature, need) < 0) return -1;
    uint8_t *p = (uint8_t *)signature->data;
    *p++ = SIGNATURE_OF_RESOURCE;
    for (int i = 0; i < 3; i++) {  /* every text of these is read: all of it signs */
        const Hot *h = &named[i];
        int has_text = h->present && (h->type == V_STR || (h->type == V_ARRAY && h->first_is_str));
        *p++ = (uint8_t)(h->present | h->type << 1 | h->truthy << 4 | has_text << 5);
        if (has_text) { p = put_varint(p, h->slen); memcpy(p, h->s, h->slen); p += h->slen; }
    }
    signature->len = (size_t)(p - (uint8_t *)signature->data);
    uint64_t hash = (uint64_t)_Py_HashBytes(signature->data, (Py_ssize_t)signature->len);
    MeaningCache *cache = thread_cache();
    if (!cache) return oom();
    const Meaning *m = cache_find(cache, signature, hash);
    if (!m) {
        meaning_free(scratch);
        if (ask_resource_meaning(scratch, named) < 0) return -1;
        m = cache_keep(cache, signature, hash, scratch);
    }
    const OutText *service = &m->text[0], *version = &m->text[1];
    res->names.len = 0;
    if (buf_put(&res->names, service->bytes, service->len) < 0 || buf_put(&res->names, version->bytes ? version->bytes : "", version->len) < 0)
        return -1;
    res->service.s = (const uint8_t *)res->names.data; res->service.n = service->len; res->service.present = 1;
    res->function_version.s = (const uint8_t *)res->names.data + service->len;
    res->function_version.n = version->len;
    res->function_version.present = version->kind == T_CONST;
    return 0;
}

static int walk_resource(Reader *r, Resource *res, Out *out) {
    KvSet *set = &out->work.scratch_attrs;
    Reader attrs = *r, scan = *r;
    while (scan.p < scan.end) {  /* entity_refs: rare, and only the Python path checks their strings */
        uint32_t field; int wire;
        if (read_tag(&scan, &field, &wire) < 0) return -1;
        if (field == 3 && wire == 2) return defer();
        if (skip_field(&scan, wire) < 0) return -1;
    }
    if (collect_kvs(&attrs, 1, set) < 0) return -1;
    KV *kvs = set->items;
    size_t count = set->count;
    Hot named[3];  /* service.name, faas.version, service.version: resource_meaning's arguments */
    memset(named, 0, sizeof named);
    static const char *NAMED[3] = {"service.name", "faas.version", "service.version"};
    for (size_t j = 0; j < count; j++) {
        for (int i = 0; i < 3; i++) {
            if (kvs[j].klen != strlen(NAMED[i]) || memcmp(kvs[j].key, NAMED[i], kvs[j].klen) != 0) continue;
            Reader value = kvs[j].value;
            if (value.p != value.end && any_value(&value, NULL, &named[i], 0) < 0) return -1;
            if (value.p == value.end) named[i].present = 1;
            if (named[i].type == V_BYTES) return defer();  /* the Python path reads bytes as hex text */
        }
    }
    /* Its strings are checked here (buf_json_string), as the Python path decodes them, whether
     * or not any span follows. */
    if (kvs_json(kvs, count, &res->json, 0) < 0) return -1;
    return resource_meaning(res, named, &out->work.scratch, &out->work.asked);
}

/* An InstrumentationScope: nothing of it is stored, but upb checks its strings. */
static int scope_ok(Reader scope, Out *out) {
    while (scope.p < scope.end) {
        uint32_t field; int wire; Reader sub;
        if (read_tag(&scope, &field, &wire) < 0) return -1;
        if ((field == 1 || field == 2) && wire == 2) {
            if (read_bytes(&scope, &sub) < 0 || text_ok(sub) < 0) return -1;
        } else if (field == 3 && wire == 2) {
            if (read_bytes(&scope, &sub) < 0) return -1;
            if (attributes_ok(&sub, &out->work.scratch_attrs, &out->work.scratch) < 0) return -1;
        } else if (skip_field(&scope, wire) < 0) return -1;
    }
    return 0;
}

static int walk_scope_spans(Reader ss, const Resource *res, Out *out) {
    while (ss.p < ss.end) {
        uint32_t field; int wire; Reader sub;
        if (read_tag(&ss, &field, &wire) < 0) return -1;
        if (wire != 2 || field > 3) { if (skip_field(&ss, wire) < 0) return -1; continue; }
        if (read_bytes(&ss, &sub) < 0) return -1;
        int rc = field == 2 ? walk_span(&sub, res, out) : field == 1 ? scope_ok(sub, out) : text_ok(sub);
        if (rc < 0) return -1;
        if (out->needs_python) return 0;
    }
    return 0;
}

static int walk_request(Reader *r, Out *out) {
    while (r->p < r->end) {
        uint32_t field; int wire; Reader rs;
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (field != 1 || wire != 2) { if (skip_field(r, wire) < 0) return -1; continue; }
        if (read_bytes(r, &rs) < 0) return -1;
        /* The resource may follow its scope spans on the wire: find it first. A second one
         * is merged into the first by protobuf's rules: the Python path's. */
        Reader scan = rs, resource_body = {rs.p, rs.p};
        int resources = 0;
        while (scan.p < scan.end) {
            uint32_t f2; int w2; Reader s2;
            if (read_tag(&scan, &f2, &w2) < 0) return -1;
            if (f2 == 1 && w2 == 2) {
                if (read_bytes(&scan, &s2) < 0) return -1;
                if (++resources > 1) return defer();
                resource_body = s2;
            } else if (f2 == 3 && w2 == 2) {
                if (read_bytes(&scan, &s2) < 0 || text_ok(s2) < 0) return -1;
            } else if (skip_field(&scan, w2) < 0) return -1;
        }
        Resource res;
        memset(&res, 0, sizeof res);
        int rc = walk_resource(&resource_body, &res, out);
        if (rc == 0) {
            res.dict_index = (int32_t)out->resource_dict.length;
            res.service_index = (int32_t)out->service_dict.length;
            rc = col_json(&out->resource_dict, &res.json) | col_text(&out->service_dict, res.service);
        }
        scan = rs;
        while (rc == 0 && scan.p < scan.end) {
            uint32_t f2; int w2; Reader ss;
            if (read_tag(&scan, &f2, &w2) < 0) { rc = -1; break; }
            if (f2 != 2 || w2 != 2) { if (skip_field(&scan, w2) < 0) rc = -1; continue; }
            if (read_bytes(&scan, &ss) < 0) { rc = -1; break; }
            rc = walk_scope_spans(ss, &res, out);
            if (out->needs_python) break;
        }
        PyMem_RawFree(res.json.data);
        PyMem_RawFree(res.names.data);
        if (rc < 0) return -1;
        if (out->needs_python) return 0;
    }
    return 0;
}

static void out_free(Out *out) {
    kvset_free(&out->work.attrs);
    kvset_free(&out->work.event_attrs);
    kvset_free(&out->work.scratch_attrs);
    PyMem_RawFree(out->work.links);
    PyMem_RawFree(out->work.events.data);
    PyMem_RawFree(out->work.attrs_json.data);
    PyMem_RawFree(out->work.scratch.data);
    meaning_free(&out->work.asked);
    for (int c = 0; c < N_COLUMNS; c++) col_free(&out->spans[c]);
    for (int c = 0; c < N_ANNOTATION_COLUMNS; c++) col_free(&out->annotations[c]);
    for (int c = 0; c < N_LINK_COLUMNS; c++) col_free(&out->links[c]);
    col_free(&out->resource_dict);
    col_free(&out->service_dict);
}

static int out_init(Out *out) {
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (int c = 0; c < N_COLUMNS; c++) rc |= col_init(&out->spans[c], SPAN_KINDS[c]);
    for (int c = 0; c < N_ANNOTATION_COLUMNS; c++) rc |= col_init(&out->annotations[c], ANNOTATION_KINDS[c]);
    for (int c = 0; c < N_LINK_COLUMNS; c++) rc |= col_init(&out->links[c], LINK_KINDS[c]);
    rc |= col_init(&out->resource_dict, C_STR);
    rc |= col_init(&out->service_dict, C_STR);
    out->spans[N_COLUMNS - 1].dictionary = &out->resource_dict;
    out->spans[3].dictionary = &out->service_dict;
    return rc;
}

static PyObject *result_of(Out *out) {
    PyObject *reasons = PyList_New(0);
    if (!reasons) return NULL;
    for (int i = 0; i < out->reason_count; i++) {
        PyObject *text = PyUnicode_FromString(out->reasons[i]);
        if (!text || PyList_Append(reasons, text) < 0) { Py_XDECREF(text); Py_DECREF(reasons); return NULL; }
        Py_DECREF(text);
    }
    /* What the tables hold, summed before their buffers move to pyarrow: the pipeline's memory
     * bound reads it (pyarrow's own sizing costs ~45 us a 512-span request). */
    size_t held = out->resource_dict.validity.len + out->resource_dict.offsets.len + out->resource_dict.values.len
                  + out->service_dict.validity.len + out->service_dict.offsets.len + out->service_dict.values.len;
    for (int c = 0; c < N_COLUMNS; c++) held += out->spans[c].validity.len + out->spans[c].offsets.len + out->spans[c].values.len;
    for (int c = 0; c < N_ANNOTATION_COLUMNS; c++)
        held += out->annotations[c].validity.len + out->annotations[c].offsets.len + out->annotations[c].values.len;
    for (int c = 0; c < N_LINK_COLUMNS; c++) held += out->links[c].validity.len + out->links[c].offsets.len + out->links[c].values.len;
    PyObject *spans = table_capsule(out->spans, N_COLUMNS);
    PyObject *annotations = spans ? table_capsule(out->annotations, N_ANNOTATION_COLUMNS) : NULL;
    PyObject *links = annotations ? table_capsule(out->links, N_LINK_COLUMNS) : NULL;
    if (!links) {
        Py_XDECREF(spans); Py_XDECREF(annotations); Py_DECREF(reasons);
        return NULL;
    }
    return Py_BuildValue("(NNNnNn)", spans, annotations, links, out->rejected, reasons, (Py_ssize_t)held);
}

static PyObject *decode(PyObject *self, PyObject *arg) {
    if (!SPAN_MEANING) {
        PyErr_SetString(PyExc_RuntimeError, "_otlpfast.configure() first: the rules are derive.py's");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Out *out = PyMem_RawMalloc(sizeof(Out));
    if (!out) { PyBuffer_Release(&view); return PyErr_NoMemory(); }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    decode_error = NULL;
    decode_oom = 0;
    decode_defer = 0;
    rc = out_init(out);
    if (rc == 0) {
        Reader r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
        rc = walk_request(&r, out);
    }
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (decode_oom) PyErr_NoMemory();
    else if (decode_defer || out->needs_python) {
        result = Py_None;
        Py_INCREF(result);
    } else if (rc < 0 || failed()) {
        const char *message = decode_error && strcmp(decode_error, "string is not valid UTF-8") != 0
                                  ? decode_error : "body is not a valid OTLP protobuf ExportTraceServiceRequest";
        PyErr_SetString(PyExc_ValueError, message);
    } else result = result_of(out);
    out_free(out);
    PyMem_RawFree(out);
    PyBuffer_Release(&view);
    return result;
}

/* configure(fact_keys, text_read_keys, annotation_prefix, annotation_list_key, span_meaning,
 * resource_meaning): derive.py's rules, once. */
static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *keys, *text_read, *span_meaning, *resource_meaning;
    const char *prefix, *list_key;
    Py_ssize_t prefix_len, list_key_len;
    if (!PyArg_ParseTuple(args, "O!Os#s#OO", &PyTuple_Type, &keys, &text_read, &prefix, &prefix_len, &list_key,
                          &list_key_len, &span_meaning, &resource_meaning))
        return NULL;
    if (SPAN_MEANING) {
        PyErr_SetString(PyExc_RuntimeError, "_otlpfast is configured once");
        return NULL;
    }
    if (prefix_len == 0 || prefix_len >= (Py_ssize_t)sizeof ANNOTATION_PREFIX || list_key_len >= (Py_ssize_t)sizeof ANNOTATION_LIST_KEY)
        return PyErr_Format(PyExc_ValueError, "an annotation prefix of 1-63 bytes and a list key under 64");
    memcpy(ANNOTATION_PREFIX, prefix, (size_t)prefix_len);
    ANNOTATION_PREFIX_LEN = (size_t)prefix_len;
    memcpy(ANNOTATION_LIST_KEY, list_key, (size_t)list_key_len);
    ANNOTATION_LIST_KEY_LEN = (size_t)list_key_len;
    Py_ssize_t n = PyTuple_GET_SIZE(keys);
    if (n > MAX_FACT_KEYS) return PyErr_Format(PyExc_ValueError, "at most %d fact keys", MAX_FACT_KEYS);
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t len;
        PyObject *item = PyTuple_GET_ITEM(keys, k);
        const char *key = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
        if (!key) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "fact keys are str");
        if (len >= MAX_HOT_LEN || HOT_COUNT_BY_LEN[len] == MAX_HOT_PER_LEN
            || ((size_t)len >= ANNOTATION_PREFIX_LEN && memcmp(key, ANNOTATION_PREFIX, ANNOTATION_PREFIX_LEN) == 0))
            return PyErr_Format(PyExc_ValueError, "fact key %R: too long, too many of its length, or an annotation", item);
        int read = PySequence_Contains(text_read, item);
        if (read < 0) return NULL;
        HOT_KEYS[k] = PyMem_RawMalloc((size_t)len + 1);
        KEY_OBJECTS[k] = Py_NewRef(item);
        MARKERS[k] = PyUnicode_FromFormat(MARKER_PREFIX "%zd", k);
        if (!HOT_KEYS[k] || !MARKERS[k]) return PyErr_NoMemory();
        memcpy(HOT_KEYS[k], key, (size_t)len + 1);
        TEXT_READ[k] = read;
        HOT_BY_LEN[len][HOT_COUNT_BY_LEN[len]++] = (int)k;
    }
    N_HOT = (int)n;
    RESOURCE_MEANING = Py_NewRef(resource_meaning);
    SPAN_MEANING = Py_NewRef(span_meaning);
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"configure", configure, METH_VARARGS, "Give the decoder derive.py's fact keys, the keys whose text it reads, span_meaning and resource_meaning."},
    {"decode", decode, METH_O, "Decode an OTLP ExportTraceServiceRequest into Fluoro's span columns (Arrow buffers)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_otlpfast", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__otlpfast(void) {
    return PyModule_Create(&MODULE);
}
