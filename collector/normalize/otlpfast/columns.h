/* Arrow columns built as their buffers (validity bitmap, offsets, values), no Python object per value.
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_COLUMNS_H
#define OTLPFAST_COLUMNS_H

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

#endif /* OTLPFAST_COLUMNS_H */
