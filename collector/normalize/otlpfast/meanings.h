/* What a span means, asked of derive.py once per distinct signature and kept per thread.
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_MEANINGS_H
#define OTLPFAST_MEANINGS_H

/* What a span means is derive.py's span_meaning (with its sampling weight), asked once per distinct signature of a span's
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
    int has_weight;      /* 0: NULL */
    double weight;
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
    if (!PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 15) {
        PyErr_SetString(PyExc_TypeError, "span_meaning_and_weight must answer a tuple of 15");
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
    PyObject *weight = PyTuple_GET_ITEM(answer, 14);
    m->has_weight = weight != Py_None;
    m->weight = m->has_weight ? PyFloat_AsDouble(weight) : 0.0;
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

#endif /* OTLPFAST_MEANINGS_H */
