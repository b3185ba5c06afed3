/* One Span: walked, validated, its facts scanned, its meaning applied, appended to the columns.
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_SPAN_H
#define OTLPFAST_SPAN_H

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

#endif /* OTLPFAST_SPAN_H */
