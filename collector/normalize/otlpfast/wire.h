/* Reading protobuf's wire format: varints, fixed64, tags, length-delimited fields, skipping.
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_WIRE_H
#define OTLPFAST_WIRE_H

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

#endif /* OTLPFAST_WIRE_H */
