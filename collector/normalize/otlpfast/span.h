/* One Span validated, its facts scanned, its meaning applied, appended to the columns (span_wire.h reads it).
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_SPAN_H
#define OTLPFAST_SPAN_H

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
    C_BOOL, C_BOOL, C_BOOL, C_BOOL, C_STR, C_STR, C_STR, C_STR, C_STR, C_BOOL, C_STR, C_STR, C_STR, C_DICT, C_F64,
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
    rc |= m->has_weight ? col_f64(&c[29], m->weight) : col_null(&c[29]);
    return rc ? -1 : 0;
}

/* Validation, in otel.invalid_ids' order and words: NULL when the span may be stored. */
static const char *span_problem(const SpanFields *f) {
    if (f->trace_len != 16 || all_zero(f->trace, 16)) return "trace_id must be 16 non-zero bytes";
    if (f->span_len != 8 || all_zero(f->span, 8)) return "span_id must be 8 non-zero bytes";
    if (f->parent_len != 0 && f->parent_len != 8) return "parent_span_id must be empty or 8 bytes";
    if (f->start > INT64_MAX || f->end > INT64_MAX) return "start and end times must be nanoseconds within int64";
    if (f->end < f->start) return "a span must not end before it starts";
    return NULL;
}

/* A span refused alone. Its attributes are checked still (UTF-8, depth): the Python path's
 * parse refuses the whole request over them, rejected span or not. */
static int reject_span(Out *out, SpanScratch *work, SpanFields *f, const char *problem) {
    if (work->attrs.count && kvs_json(work->attrs.items, work->attrs.count, &f->attrs_json, 0) < 0) return -1;
    if (!utf8_ok(f->name, f->name_len) || !utf8_ok(f->status_msg, f->status_msg_len))
        return fail("string is not valid UTF-8");
    reject(out, problem);
    return 0;
}

static int append_links(Out *out, const SpanFields *f, uint64_t span_id) {
    for (size_t i = 0; i < f->link_count; i++) {
        Col *l = out->links;
        if (col_fixed(&l[0], f->trace) | col_u64(&l[1], span_id) | col_i64(&l[2], (int64_t)f->start)
            | col_fixed(&l[3], f->link_refs[i].trace) | col_u64(&l[4], f->link_refs[i].span))
            return -1;
    }
    return 0;
}

/* A valid span's facts scanned, its meaning asked, its row, annotations and links appended. */
static int emit_span(Out *out, const Resource *res, SpanScratch *work, SpanFields *f) {
    Hot hot[MAX_FACT_KEYS];  /* only the keys in `present` are set */
    uint64_t present = 0;
    int annotation_count = 0;
    KV *kvs = work->attrs.items;
    size_t kv_count = work->attrs.count;
    int scanned = scan_attributes(kvs, kv_count, hot, &present, kv_count ? &f->attrs_json : NULL, &annotation_count);
    if (scanned < 0) return -1;
    if (scanned == 1) { out->needs_python = 1; return 0; }

    /* Enums are int32 on the wire: upb keeps the low 32 bits of a longer varint. */
    int32_t kind32 = (int32_t)(uint32_t)f->kind, code32 = (int32_t)(uint32_t)f->status_code;
    const char *kind_name = kind32 >= 0 && kind32 < 6 ? KIND_NAMES[kind32] : "UNSPECIFIED";
    uint64_t code = code32 >= 0 && code32 <= 2 ? (uint64_t)code32 : 0;
    const Meaning *meaning;
    if (meaning_of(hot, present, kind_name, kind32, code32, f->has_exception, res->function_version, &f->scratch,
                   &work->asked, &meaning) < 0)
        return -1;
    if (f->event_count && buf_putc(&f->events, ']') < 0) return -1;

    Text name_text = {f->name, f->name_len, 1};
    Text status_text = {f->status_msg, f->status_msg_len, f->status_msg_len > 0};
    if (append_span(out, res, f->trace, f->span, f->parent, f->parent_len, name_text, kind_name, f->start, f->end, code,
                    status_text, hot, meaning, &f->attrs_json, kv_count, &f->events, f->event_count) < 0)
        return -1;
    uint64_t span_id = be64(f->span);
    if (annotation_count && add_annotations(out, kvs, kv_count, f->trace, span_id, (int64_t)f->start) < 0) return -1;
    return append_links(out, f, span_id);
}

static int walk_span(Reader *r, const Resource *res, Out *out) {
    SpanScratch *work = &out->work;
    kvset_clear(&work->attrs);
    SpanFields f = {.name = (const uint8_t *)"", .link_refs = work->links, .link_cap = work->link_cap,
                    .events = work->events, .attrs_json = work->attrs_json, .scratch = work->scratch};
    f.events.len = f.attrs_json.len = f.scratch.len = 0;
    int rc = read_span_fields(r, work, &f);
    if (rc == SPAN_MALFORMED) rc = fail("malformed span");
    if (rc == 0) {
        const char *problem = span_problem(&f);
        rc = problem ? reject_span(out, work, &f, problem) : emit_span(out, res, work, &f);
    }
    work->links = f.link_refs; work->link_cap = f.link_cap;  /* grown buffers are kept for the next span */
    work->events = f.events; work->attrs_json = f.attrs_json; work->scratch = f.scratch;
    return rc;
}

#endif /* OTLPFAST_SPAN_H */
