/* One Span read off the wire into SpanFields: ids, name, kind, times, attributes (kept in the
 * span's KvSet), events (written as their JSON), links and status. Checks only what the wire
 * says; span.h validates and appends.
 *
 * Every reader returns 0, -1 with the error set (fail()), or SPAN_MALFORMED when the bytes are
 * not a Span (the caller says so, once).
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_SPAN_WIRE_H
#define OTLPFAST_SPAN_WIRE_H

#define SPAN_MALFORMED (-2)

typedef struct { const uint8_t *trace; uint64_t span; } LinkRef;

/* A span's working buffers, kept from span to span of a request (emptied, not freed). */
typedef struct {
    KvSet attrs, event_attrs, scratch_attrs;
    LinkRef *links;
    size_t link_cap;
    Buf events, attrs_json, scratch;
    Meaning asked;  /* a meaning asked for but not kept */
} SpanScratch;

/* What one Span says; pointers into the request's body. The buffers are the scratch's, lent
 * for the span (locals, not the scratch's fields, so the compiler keeps them in registers). */
typedef struct {
    const uint8_t *trace, *span, *parent, *name, *status_msg;
    size_t trace_len, span_len, parent_len, name_len, status_msg_len;
    uint64_t kind, start, end, status_code;
    LinkRef *link_refs;
    size_t link_count, link_cap;
    Buf events, attrs_json, scratch;
    int event_count, has_exception;
} SpanFields;

static uint64_t be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
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

/* A length-delimited field: 1 and its bytes in `sub`, or 0 when the field has another wire
 * type (skipped, as upb skips a field it cannot read as declared). */
static int bytes_field(Reader *r, int wire, Reader *sub) {
    if (wire != 2) return skip_field(r, wire) < 0 ? SPAN_MALFORMED : 0;
    return read_bytes(r, sub) < 0 ? SPAN_MALFORMED : 1;
}

/* A string that replaces an earlier one of the same field (the last wins, as in upb), after
 * the earlier one is checked: upb checked it when it parsed it. */
static int replace_text(Reader sub, const uint8_t **text, size_t *text_len) {
    if (replaced_text_ok(*text, *text_len) < 0) return -1;
    *text = sub.p;
    *text_len = (size_t)(sub.end - sub.p);
    return 0;
}

static int read_event(Reader sub, SpanScratch *work, SpanFields *f) {
    uint64_t when = 0;
    const uint8_t *name = (const uint8_t *)"";
    size_t name_len = 0;
    Reader scan = sub;
    while (scan.p < scan.end) {
        uint32_t field; int wire; Reader s2;
        if (read_tag(&scan, &field, &wire) < 0) return SPAN_MALFORMED;
        if (field == 1 && wire == 1) {
            if (read_fixed64(&scan, &when) < 0) return SPAN_MALFORMED;
        } else if (field == 2 && wire == 2) {
            if (read_bytes(&scan, &s2) < 0) return SPAN_MALFORMED;
            if (replace_text(s2, &name, &name_len) < 0) return -1;
        } else if (skip_field(&scan, wire) < 0) return SPAN_MALFORMED;
    }
    if (collect_kvs(&sub, 3, &work->event_attrs) < 0) return SPAN_MALFORMED;
    if (name_len == 9 && memcmp(name, "exception", 9) == 0) f->has_exception = 1;
    Buf *events = &f->events;
    int rc = buf_putc(events, f->event_count ? ',' : '[');
    if (rc == 0) rc = buf_put(events, "{\"name\":", 8);
    if (rc == 0) rc = buf_json_string(events, name, name_len);
    if (rc == 0) rc = buf_put(events, ",\"time_ns\":", 11);
    if (rc == 0) rc = buf_uint(events, when);
    if (rc == 0) rc = buf_put(events, ",\"attributes\":", 14);
    if (rc == 0) rc = kvs_json(work->event_attrs.items, work->event_attrs.count, events, 0);
    if (rc == 0) rc = buf_putc(events, '}');
    if (rc < 0) return -1;
    f->event_count++;
    return 0;
}

static int keep_link(SpanFields *f, const uint8_t *trace, const uint8_t *span) {
    if (f->link_count == f->link_cap) {
        size_t cap = f->link_cap ? f->link_cap * 2 : 4;
        LinkRef *grown = PyMem_RawRealloc(f->link_refs, cap * sizeof(LinkRef));
        if (!grown) return oom();
        f->link_refs = grown;
        f->link_cap = cap;
    }
    f->link_refs[f->link_count].trace = trace;
    f->link_refs[f->link_count].span = be64(span);
    f->link_count++;
    return 0;
}

static int read_link(Reader sub, SpanScratch *work, SpanFields *f) {
    const uint8_t *trace = NULL, *span = NULL;
    size_t trace_len = 0, span_len = 0;
    while (sub.p < sub.end) {
        uint32_t field; int wire; Reader s2;
        if (read_tag(&sub, &field, &wire) < 0) return SPAN_MALFORMED;
        if (wire == 2 && field >= 1 && field <= 4) {
            if (read_bytes(&sub, &s2) < 0) return SPAN_MALFORMED;
            if (field == 1) { trace = s2.p; trace_len = (size_t)(s2.end - s2.p); }
            else if (field == 2) { span = s2.p; span_len = (size_t)(s2.end - s2.p); }
            else if (field == 3) { if (text_ok(s2) < 0) return -1; }
            else if (attributes_ok(&s2, &work->scratch_attrs, &f->scratch) < 0) return -1;
        } else if (skip_field(&sub, wire) < 0) return SPAN_MALFORMED;
    }
    return trace_len == 16 && span_len == 8 ? keep_link(f, trace, span) : 0;
}

static int read_status(Reader sub, SpanFields *f) {
    while (sub.p < sub.end) {
        uint32_t field; int wire; Reader s2; uint64_t v;
        if (read_tag(&sub, &field, &wire) < 0) return SPAN_MALFORMED;
        if (field == 2 && wire == 2) {
            if (read_bytes(&sub, &s2) < 0) return SPAN_MALFORMED;
            if (replace_text(s2, &f->status_msg, &f->status_msg_len) < 0) return -1;
        } else if (field == 3 && wire == 0) {
            if (read_varint(&sub, &v) < 0) return SPAN_MALFORMED;
            f->status_code = v;
        } else if (skip_field(&sub, wire) < 0) return SPAN_MALFORMED;
    }
    return 0;
}

/* A scalar field of the wire type it is declared with (else skipped, as upb does). */
static int scalar_field(Reader *r, int wire, int declared, uint64_t *value) {
    if (wire != declared) return skip_field(r, wire) < 0 ? SPAN_MALFORMED : 0;
    int rc = declared == 0 ? read_varint(r, value) : read_fixed64(r, value);
    return rc < 0 ? SPAN_MALFORMED : 0;
}

/* A length-delimited field of the span, by number. */
static int span_bytes_field(uint32_t field, Reader sub, SpanScratch *work, SpanFields *f) {
    KV item;
    switch (field) {
    case 1: f->trace = sub.p; f->trace_len = (size_t)(sub.end - sub.p); return 0;
    case 2: f->span = sub.p; f->span_len = (size_t)(sub.end - sub.p); return 0;
    case 3: return text_ok(sub);  /* trace_state */
    case 4: f->parent = sub.p; f->parent_len = (size_t)(sub.end - sub.p); return 0;
    case 5: return replace_text(sub, &f->name, &f->name_len);
    case 9:
        if (read_kv(sub, &item) < 0) return SPAN_MALFORMED;
        return kvset_put(&work->attrs, item);
    case 11: return read_event(sub, work, f);
    case 13: return read_link(sub, work, f);
    case 15: return read_status(sub, f);
    default: return 0;
    }
}

static int read_span_fields(Reader *r, SpanScratch *work, SpanFields *f) {
    while (r->p < r->end) {
        uint32_t field; int wire; Reader sub; int rc;
        if (read_tag(r, &field, &wire) < 0) return SPAN_MALFORMED;
        switch (field) {
        case 6: rc = scalar_field(r, wire, 0, &f->kind); break;
        case 7: rc = scalar_field(r, wire, 1, &f->start); break;
        case 8: rc = scalar_field(r, wire, 1, &f->end); break;
        case 1: case 2: case 3: case 4: case 5: case 9: case 11: case 13: case 15:
            rc = bytes_field(r, wire, &sub);
            if (rc == 1) rc = span_bytes_field(field, sub, work, f);
            break;
        default: rc = skip_field(r, wire) < 0 ? SPAN_MALFORMED : 0;
        }
        if (rc < 0) return rc;
    }
    return 0;
}

#endif /* OTLPFAST_SPAN_WIRE_H */
