/* Attribute values: an AnyValue summarized for a fact and written as JSON; KeyValue lists as JSON objects,
 * their keys deduplicated (later ones win, as in Python) through a SipHash index past 32 keys.
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_VALUES_H
#define OTLPFAST_VALUES_H

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

/* One member of an AnyValue: a scalar read into `h`, or an array (5) or key/value list (6)
 * kept in `container` to be read once the value's last member is known. */
static inline int any_value_member(Reader *r, uint32_t field, int wire, Hot *h, Reader *container, int *container_field) {
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
        if (read_bytes(r, container) < 0) return -1;
        *container_field = (int)field;
    } else if (field == 7 && wire == 2) {
        if (read_bytes(r, &sub) < 0) return -1;
        h->type = V_BYTES; h->s = sub.p; h->slen = (size_t)(sub.end - sub.p); h->truthy = h->slen > 0;
    } else {
        /* string_value_strindex (8) is a member the Python path reads as no value */
        if (skip_field(r, wire) < 0) return -1;
    }
    return 0;
}

/* A KeyValueList value: its JSON object (when `json`), truthy when it has an entry. */
static int kvlist_value(Reader container, Buf *json, Hot *h, int depth) {
    Reader probe = container;
    int entries = 0;
    if (json && kv_list(&container, json, depth) < 0) return -1;
    while (probe.p < probe.end) {  /* count entries for truthiness */
        uint32_t field; int wire;
        if (read_tag(&probe, &field, &wire) < 0 || skip_field(&probe, wire) < 0) break;
        if (field == 1) entries++;
    }
    h->type = V_KVLIST; h->truthy = entries > 0;
    return 0;
}

/* The JSON of a scalar value read into `h` (bytes as lowercase hex, as the Python path writes them). */
static inline int scalar_json(Buf *json, const Hot *h) {
    static const char hex[] = "0123456789abcdef";
    switch (h->type) {
    case V_STR: return buf_json_string(json, h->s, h->slen);
    case V_BOOL: return h->b ? buf_put(json, "true", 4) : buf_put(json, "false", 5);
    case V_INT: return buf_int(json, h->i);
    case V_DOUBLE: return buf_double(json, h->d);
    case V_BYTES:
        if (buf_reserve(json, h->slen * 2 + 2) < 0 || buf_putc(json, '"') < 0) return -1;
        for (size_t i = 0; i < h->slen; i++) {
            char pair[2] = {hex[h->s[i] >> 4], hex[h->s[i] & 15]};
            if (buf_put(json, pair, 2) < 0) return -1;
        }
        return buf_putc(json, '"');
    default: return buf_put(json, "null", 4);
    }
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
        if (any_value_member(r, field, wire, h, &container, &container_field) < 0) return -1;
    }
    if (container_field == 5) return array_value(&container, json, h, depth) < 0 ? -1 : 0;
    if (container_field == 6) return kvlist_value(container, json, h, depth);
    return json ? scalar_json(json, h) : 0;
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

#endif /* OTLPFAST_VALUES_H */
