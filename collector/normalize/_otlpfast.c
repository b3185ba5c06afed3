/*
 * OTLP/protobuf ExportTraceServiceRequest -> Fluoro span rows, in C.
 *
 * Why by hand: the Python path (protobuf's upb parse, then a walk into Python values and the
 * derivations of derive.py) costs ~70-80 us a span here, which caps ingest near 13k spans/s;
 * the collector is asked for 50k. This module reads the wire format directly and derives the
 * X-Ray notions in the same pass, creating Python objects only for the stored columns. It
 * implements exactly what collector/normalize/otel.py and derive.py do: an equivalence test
 * (tests/unit/collector/test_fast_decoder.py) runs both over the same requests and compares
 * every row. Field numbers are those of opentelemetry-proto's trace.proto and common.proto.
 * bench/ingest.py shows the difference.
 *
 * decode(body: bytes) -> (columns: tuple of 29 lists in SPAN_SCHEMA order,
 *                         annotations: list of 7-tuples, links: list of 5-tuples,
 *                         rejected: int, reasons: list of str)
 * Raises ValueError for bytes that are not a well-formed request, and returns None when the
 * request uses a feature left to the Python path (aws.xray.annotations, bytes values under the
 * attribute names the derivations read). Unlike upb, it does not check UTF-8 in string fields
 * it never reads (trace_state, scope names, schema URLs).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define N_COLUMNS 29
#define MAX_JSON_BYTES (64 * 1024)
#define MAX_DEPTH 32

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

/* A field header: number and wire type. */
static int read_tag(Reader *r, uint32_t *field, int *wire) {
    uint64_t tag;
    if (read_varint(r, &tag) < 0) return -1;
    *field = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    return *field == 0 ? -1 : 0;
}

static int read_bytes(Reader *r, Reader *sub) {
    uint64_t len;
    if (read_varint(r, &len) < 0 || len > (uint64_t)(r->end - r->p)) return -1;
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
    default: return -1;
    }
}

/* ------------------------------------------------------------------ growable buffer (JSON) */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *grown = PyMem_Realloc(b->data, cap);
    if (!grown) { PyErr_NoMemory(); return -1; }
    b->data = grown;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static int buf_putc(Buf *b, char c) { return buf_put(b, &c, 1); }

static int buf_json_string(Buf *b, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(b, n + 2) < 0 || buf_putc(b, '"') < 0) return -1;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (buf_put(b, (const char *)s + start, i - start) < 0) return -1;
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
        start = i + 1;
    }
    if (buf_put(b, (const char *)s + start, n - start) < 0) return -1;
    return buf_putc(b, '"');
}

static int buf_int(Buf *b, int64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    return buf_put(b, tmp, (size_t)n);
}

static int buf_double(Buf *b, double v) {
    if (!isfinite(v)) return buf_put(b, "null", 4);
    char *repr = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!repr) return -1;
    int rc = buf_put(b, repr, strlen(repr));
    PyMem_Free(repr);
    return rc;
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
    int64_t i;
    double d;
    int b;
    int truthy;
} Hot;

enum {
    K_HTTP_STATUS, K_HTTP_STATUS_OLD, K_METHOD, K_METHOD_OLD, K_ROUTE, K_URL_FULL, K_URL_OLD, K_URL_PATH,
    K_UA, K_UA_OLD, K_FAAS_VERSION, K_ENDUSER, K_ORIGIN, K_TARGET_TYPE, K_TARGET_NAME, K_RPC_SYSTEM,
    K_RPC_SERVICE, K_S3_BUCKET, K_SQS_URL, K_MESSAGING_URL, K_KINESIS, K_LAMBDA_FN, K_INVOKED_NAME,
    K_MSG_DEST, K_DDB_TABLES, K_DB_SYSTEM, K_DB_NAMESPACE, K_DB_NAME, K_MSG_SYSTEM, K_PEER_SERVICE,
    K_SERVER_ADDRESS, K_NET_PEER_NAME, K_SERVER_PORT, K_NET_PEER_PORT, K_FAAS_TRIGGER, K_FAAS_INVOCATION,
    K_ERROR, K_FAULT, K_THROTTLE, K_COLDSTART, N_HOT
};

static const char *HOT_KEYS[N_HOT] = {
    "http.response.status_code", "http.status_code", "http.request.method", "http.method", "http.route",
    "url.full", "http.url", "url.path", "user_agent.original", "http.user_agent", "faas.version",
    "enduser.id", "fluoro.origin", "fluoro.target.type", "fluoro.target.name", "rpc.system", "rpc.service",
    "aws.s3.bucket", "aws.sqs.queue_url", "messaging.url", "aws.kinesis.stream_name",
    "aws.lambda.function_name", "faas.invoked_name", "messaging.destination.name",
    "aws.dynamodb.table_names", "db.system", "db.namespace", "db.name", "messaging.system", "peer.service",
    "server.address", "net.peer.name", "server.port", "net.peer.port", "faas.trigger", "faas.invocation_id",
    "fluoro.error", "fluoro.fault", "fluoro.throttle", "faas.coldstart",
};
static size_t HOT_LENS[N_HOT];

static const char ANNOTATION_PREFIX[] = "fluoro.annotation.";
#define ANNOTATION_PREFIX_LEN (sizeof(ANNOTATION_PREFIX) - 1)

static int hot_index(const uint8_t *key, size_t n) {
    for (int k = 0; k < N_HOT; k++)
        if (HOT_LENS[k] == n && memcmp(HOT_KEYS[k], key, n) == 0) return k;
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
    int written = 0;
    if (depth > MAX_DEPTH) { PyErr_SetString(PyExc_ValueError, "attribute values nested too deep"); return -1; }
    while (r->p < r->end) {
        uint32_t field; int wire;
        if (read_tag(r, &field, &wire) < 0) return -1;
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
        } else if (field == 5 && wire == 2) {
            if (read_bytes(r, &sub) < 0) return -1;
            if (json && written) { PyErr_SetString(PyExc_ValueError, "AnyValue holds two values"); return -1; }
            if (array_value(&sub, json, h, depth) < 0) return -1;
            written = 1;
            continue;
        } else if (field == 6 && wire == 2) {
            if (read_bytes(r, &sub) < 0) return -1;
            Reader probe = sub;
            int entries = 0;
            if (json) { if (kv_list(&sub, json, depth + 1) < 0) return -1; written = 1; }
            while (probe.p < probe.end) {  /* count entries for truthiness */
                uint32_t f2; int w2;
                if (read_tag(&probe, &f2, &w2) < 0 || skip_field(&probe, w2) < 0) break;
                if (f2 == 1) entries++;
            }
            h->type = V_KVLIST; h->truthy = entries > 0;
            continue;
        } else if (field == 7 && wire == 2) {
            if (read_bytes(r, &sub) < 0) return -1;
            h->type = V_BYTES; h->s = sub.p; h->slen = (size_t)(sub.end - sub.p); h->truthy = h->slen > 0;
        } else {
            if (skip_field(r, wire) < 0) return -1;
        }
    }
    if (!json || written) return 0;
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

static int collect_kvs(Reader *r, uint32_t kv_field, KV **out, size_t *count) {
    size_t cap = 0;
    *out = NULL; *count = 0;
    while (r->p < r->end) {
        uint32_t field; int wire; Reader kv;
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (field != kv_field || wire != 2) { if (skip_field(r, wire) < 0) return -1; continue; }
        if (read_bytes(r, &kv) < 0) return -1;
        KV item = {NULL, 0, {NULL, NULL}};
        item.key = (const uint8_t *)""; item.value.p = item.value.end = kv.p;
        while (kv.p < kv.end) {
            uint32_t f2; int w2; Reader sub;
            if (read_tag(&kv, &f2, &w2) < 0) return -1;
            if (f2 == 1 && w2 == 2) { if (read_bytes(&kv, &sub) < 0) return -1; item.key = sub.p; item.klen = (size_t)(sub.end - sub.p); }
            else if (f2 == 2 && w2 == 2) { if (read_bytes(&kv, &item.value) < 0) return -1; }
            else if (skip_field(&kv, w2) < 0) return -1;
        }
        /* A repeated key replaces the earlier value in place, keeping its first position. */
        size_t at = *count;
        for (size_t j = 0; j < *count; j++)
            if ((*out)[j].klen == item.klen && memcmp((*out)[j].key, item.key, item.klen) == 0) { at = j; break; }
        if (at == *count) {
            if (*count == cap) {
                cap = cap ? cap * 2 : 16;
                KV *grown = PyMem_Realloc(*out, cap * sizeof(KV));
                if (!grown) { PyErr_NoMemory(); return -1; }
                *out = grown;
            }
            (*count)++;
        }
        (*out)[at] = item;
    }
    return 0;
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
    KV *kvs; size_t count;
    if (collect_kvs(r, 1, &kvs, &count) < 0) { PyMem_Free(kvs); return -1; }
    int rc = kvs_json(kvs, count, json, depth);
    PyMem_Free(kvs);
    return rc;
}

/* ------------------------------------------------------------------ Python values */

/* A str from UTF-8 bytes; NULL (keeping the first error) once any conversion has failed, since
 * the row is built in one go and CPython must not be called with an exception pending. */
static PyObject *str_of(const uint8_t *s, size_t n) {
    if (PyErr_Occurred()) return NULL;
    return PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "strict");
}

/* JSON text as a str, capped like otel.to_json. */
static PyObject *json_text(Buf *json) {
    if (PyErr_Occurred()) return NULL;
    if (json->len > MAX_JSON_BYTES) {
        char tmp[64];
        int n = snprintf(tmp, sizeof tmp, "{\"truncated\":true,\"chars\":%zu}", json->len);
        return PyUnicode_FromStringAndSize(tmp, n);
    }
    return PyUnicode_DecodeUTF8(json->data, (Py_ssize_t)json->len, "strict");
}

/* Python's `get(a) or get(b)`: a if truthy, else b (absent: NULL). */
static const Hot *first_truthy(const Hot *hot, int a, int b) {
    if (hot[a].present && hot[a].truthy) return &hot[a];
    return hot[b].present ? &hot[b] : NULL;
}

static PyObject *text_or_none(const Hot *h) {
    if (h && h->type == V_STR) return str_of(h->s, h->slen);
    Py_RETURN_NONE;
}

/* derive._first_string for one key: a non-empty string, or an array's first element (a string). */
static int first_string(const Hot *h, const uint8_t **s, size_t *n) {
    if (!h->present) return 0;
    if (h->type == V_STR && h->slen > 0) { *s = h->s; *n = h->slen; return 1; }
    if (h->type == V_ARRAY && h->first_is_str && h->slen > 0) { *s = h->s; *n = h->slen; return 1; }
    return 0;
}

static int first_string2(const Hot *hot, int a, int b, const uint8_t **s, size_t *n) {
    return first_string(&hot[a], s, n) || (b >= 0 && first_string(&hot[b], s, n));
}

/* derive.http_status_of: the new key wins whenever present, valid or not. */
static int http_status(const Hot *hot, int *status) {
    const Hot *h = hot[K_HTTP_STATUS].present ? &hot[K_HTTP_STATUS] : &hot[K_HTTP_STATUS_OLD];
    if (!h->present) return 0;
    int64_t v;
    if (h->type == V_INT) v = h->i;
    else if (h->type == V_STR && h->slen > 0 && h->slen < 10) {
        v = 0;
        for (size_t i = 0; i < h->slen; i++) {
            if (h->s[i] < '0' || h->s[i] > '9') return 0;
            v = v * 10 + (h->s[i] - '0');
        }
    } else return 0;
    if (v < 100 || v > 999) return 0;
    *status = (int)v;
    return 1;
}

static const char *AWS_TYPES[][2] = {
    {"DynamoDB", "AWS::DynamoDB::Table"}, {"S3", "AWS::S3::Bucket"}, {"SQS", "AWS::SQS::Queue"},
    {"Kinesis", "AWS::Kinesis::Stream"}, {"Lambda", "AWS::Lambda::Function"},
    {"EventBridge", "AWS::Events::EventBus"}, {"SFN", "AWS::StepFunctions::StateMachine"},
    {"SNS", "AWS::SNS::Topic"},
};

/* derive.target_of; sets *type and *name to new references (or None). */
static int target(const Hot *hot, const char *kind, PyObject **type, PyObject **name) {
    const uint8_t *s; size_t n;
    *type = NULL; *name = NULL;
    if (hot[K_TARGET_TYPE].type == V_STR && hot[K_TARGET_NAME].type == V_STR) {
        *type = str_of(hot[K_TARGET_TYPE].s, hot[K_TARGET_TYPE].slen);
        *name = str_of(hot[K_TARGET_NAME].s, hot[K_TARGET_NAME].slen);
        goto done;
    }
    if (strcmp(kind, "CLIENT") != 0 && strcmp(kind, "PRODUCER") != 0) goto none;
    if (hot[K_RPC_SYSTEM].type == V_STR && hot[K_RPC_SYSTEM].slen == 7 && memcmp(hot[K_RPC_SYSTEM].s, "aws-api", 7) == 0) {
        const uint8_t *svc = (const uint8_t *)""; size_t svc_len = 0;
        first_string(&hot[K_RPC_SERVICE], &svc, &svc_len);
        PyObject *node = NULL;
        for (size_t i = 0; i < sizeof AWS_TYPES / sizeof AWS_TYPES[0]; i++)
            if (strlen(AWS_TYPES[i][0]) == svc_len && memcmp(AWS_TYPES[i][0], svc, svc_len) == 0)
                node = PyUnicode_FromString(AWS_TYPES[i][1]);
        if (!node && svc_len) {
            PyObject *svc_str = str_of(svc, svc_len);
            node = svc_str ? PyUnicode_FromFormat("AWS::%U", svc_str) : NULL;
            Py_XDECREF(svc_str);
        } else if (!node) node = PyUnicode_FromString("AWS");
        if (!node) return -1;
        const uint8_t *found = NULL; size_t found_len = 0;
        if (first_string(&hot[K_DDB_TABLES], &s, &n) || first_string(&hot[K_S3_BUCKET], &s, &n)) { found = s; found_len = n; }
        else if (first_string2(hot, K_SQS_URL, K_MESSAGING_URL, &s, &n)) {
            size_t end = n;
            while (end > 0 && s[end - 1] == '/') end--;
            size_t start = end;
            while (start > 0 && s[start - 1] != '/') start--;
            found = s + start; found_len = end - start;
            if (found_len == 0) { found = NULL; }
        }
        if (!found && (first_string(&hot[K_KINESIS], &s, &n) || first_string2(hot, K_LAMBDA_FN, K_INVOKED_NAME, &s, &n)
                       || first_string(&hot[K_MSG_DEST], &s, &n))) { found = s; found_len = n; }
        if (!found && svc_len) { found = svc; found_len = svc_len; }
        if (!found) { Py_DECREF(node); goto none; }
        *type = node;
        *name = str_of(found, found_len);
        goto done;
    }
    if (first_string(&hot[K_DB_SYSTEM], &s, &n)) {
        const uint8_t *db; size_t db_len;
        *type = PyUnicode_FromString("database");
        *name = first_string2(hot, K_DB_NAMESPACE, K_DB_NAME, &db, &db_len) ? str_of(db, db_len) : str_of(s, n);
        goto done;
    }
    if (first_string(&hot[K_MSG_SYSTEM], &s, &n)) {
        const uint8_t *dest; size_t dest_len;
        *type = PyUnicode_FromString("queue");
        *name = first_string(&hot[K_MSG_DEST], &dest, &dest_len) ? str_of(dest, dest_len) : str_of(s, n);
        goto done;
    }
    if (first_string(&hot[K_PEER_SERVICE], &s, &n)) {
        *type = PyUnicode_FromString("service");
        *name = str_of(s, n);
        goto done;
    }
    if (first_string2(hot, K_SERVER_ADDRESS, K_NET_PEER_NAME, &s, &n)) {
        const Hot *port = hot[K_SERVER_PORT].present ? &hot[K_SERVER_PORT] : &hot[K_NET_PEER_PORT];
        *type = PyUnicode_FromString("remote");
        if (port->present && port->type == V_INT) {
            PyObject *host = str_of(s, n);
            *name = host ? PyUnicode_FromFormat("%U:%lld", host, (long long)port->i) : NULL;
            Py_XDECREF(host);
        } else *name = str_of(s, n);
        goto done;
    }
none:
    Py_INCREF(Py_None); Py_INCREF(Py_None);
    *type = Py_None; *name = Py_None;
    return 0;
done:
    if (!*type || !*name) { Py_XDECREF(*type); Py_XDECREF(*name); *type = *name = NULL; return -1; }
    return 0;
}

/* ------------------------------------------------------------------ the request walk */

typedef struct {
    PyObject *columns[N_COLUMNS];
    PyObject *annotations;
    PyObject *links;
    PyObject *reasons;
    Py_ssize_t rejected;
    int needs_python;
} Out;

typedef struct {
    PyObject *service;
    PyObject *function_version;
    PyObject *json;
} Resource;

static const char *KIND_NAMES[] = {"UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};

static int reject(Out *out, const char *reason) {
    out->rejected++;
    Py_ssize_t n = PyList_GET_SIZE(out->reasons);
    if (n >= 5) return 0;
    PyObject *text = PyUnicode_FromString(reason);
    if (!text) return -1;
    int seen = PySequence_Contains(out->reasons, text);
    int rc = seen ? 0 : PyList_Append(out->reasons, text);
    Py_DECREF(text);
    return seen < 0 ? -1 : rc;
}

static int append_steal(PyObject *list, PyObject *item) {
    if (!item) return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
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

static int scan_attributes(KV *kvs, size_t count, Hot *hot, Buf *json, int *annotations) {
    *annotations = 0;
    for (size_t j = 0; j < count; j++) {
        int k = hot_index(kvs[j].key, kvs[j].klen);
        if (k >= 0) {
            Reader value = kvs[j].value;
            if (value.p == value.end) { memset(&hot[k], 0, sizeof hot[k]); hot[k].present = 1; }
            else if (any_value(&value, NULL, &hot[k], 0) < 0) return -1;
        }
        if (kvs[j].klen > ANNOTATION_PREFIX_LEN && memcmp(kvs[j].key, ANNOTATION_PREFIX, ANNOTATION_PREFIX_LEN) == 0)
            (*annotations)++;
        if (kvs[j].klen == 20 && memcmp(kvs[j].key, "aws.xray.annotations", 20) == 0) return 1;
        if (k >= 0 && hot[k].type == V_BYTES) return 1;  /* derivations see bytes as hex text: Python's job */
    }
    return json ? kvs_json(kvs, count, json, 0) : 0;
}

static int add_annotations(Out *out, KV *kvs, size_t count, PyObject *trace_id, PyObject *span_id, PyObject *start) {
    for (size_t j = 0; j < count; j++) {
        if (!(kvs[j].klen > ANNOTATION_PREFIX_LEN && memcmp(kvs[j].key, ANNOTATION_PREFIX, ANNOTATION_PREFIX_LEN) == 0))
            continue;
        Hot h; Reader value = kvs[j].value;
        if (value.p == value.end) continue;
        if (any_value(&value, NULL, &h, 0) < 0) return -1;
        PyObject *s = Py_None, *num = Py_None, *flag = Py_None;
        PyObject *owned = NULL;
        if (h.type == V_STR) { owned = s = str_of(h.s, h.slen); }
        else if (h.type == V_BOOL) { flag = h.b ? Py_True : Py_False; }
        else if (h.type == V_INT) { owned = num = PyFloat_FromDouble((double)h.i); }
        else if (h.type == V_DOUBLE) { owned = num = PyFloat_FromDouble(h.d); }
        else continue;
        if ((h.type == V_STR || h.type == V_INT || h.type == V_DOUBLE) && !owned) return -1;
        PyObject *key = str_of(kvs[j].key + ANNOTATION_PREFIX_LEN, kvs[j].klen - ANNOTATION_PREFIX_LEN);
        if (!key) { Py_XDECREF(owned); return -1; }
        PyObject *row = PyTuple_Pack(7, trace_id, span_id, start, key, s, num, flag);
        Py_DECREF(key);
        Py_XDECREF(owned);
        if (append_steal(out->annotations, row) < 0) return -1;
    }
    return 0;
}

static int walk_span(Reader *r, const Resource *res, Out *out) {
    const uint8_t *trace = NULL, *span = NULL, *parent = NULL, *name = (const uint8_t *)"", *status_msg = NULL;
    size_t trace_len = 0, span_len = 0, parent_len = 0, name_len = 0, status_msg_len = 0;
    uint64_t kind = 0, start = 0, end = 0, status_code = 0;
    KV *kvs = NULL; size_t kv_count = 0, kv_cap = 0;
    int rc = -1;
    Buf events = {0}, attrs_json = {0};
    int event_count = 0, has_exception = 0;
    PyObject *link_items = PyList_New(0);
    if (!link_items) return -1;

    while (r->p < r->end) {
        uint32_t field; int wire; Reader sub; uint64_t v;
        if (read_tag(r, &field, &wire) < 0) goto malformed;
        switch (field) {
        case 1: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; trace = sub.p; trace_len = (size_t)(sub.end - sub.p); break;
        case 2: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; span = sub.p; span_len = (size_t)(sub.end - sub.p); break;
        case 4: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; parent = sub.p; parent_len = (size_t)(sub.end - sub.p); break;
        case 5: if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_bytes(r, &sub) < 0) goto malformed; name = sub.p; name_len = (size_t)(sub.end - sub.p); break;
        case 6: if (wire != 0) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_varint(r, &kind) < 0) goto malformed; break;
        case 7: if (wire != 1) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_fixed64(r, &start) < 0) goto malformed; break;
        case 8: if (wire != 1) { if (skip_field(r, wire) < 0) goto malformed; break; } if (read_fixed64(r, &end) < 0) goto malformed; break;
        case 9: {
            if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; }
            if (read_bytes(r, &sub) < 0) goto malformed;
            /* One KeyValue; a repeated key keeps its first position and its last value. */
            Reader wrapped = {sub.p, sub.end};
            KV item = {(const uint8_t *)"", 0, {sub.p, sub.p}};
            while (wrapped.p < wrapped.end) {
                uint32_t f2; int w2; Reader s2;
                if (read_tag(&wrapped, &f2, &w2) < 0) goto malformed;
                if (f2 == 1 && w2 == 2) { if (read_bytes(&wrapped, &s2) < 0) goto malformed; item.key = s2.p; item.klen = (size_t)(s2.end - s2.p); }
                else if (f2 == 2 && w2 == 2) { if (read_bytes(&wrapped, &item.value) < 0) goto malformed; }
                else if (skip_field(&wrapped, w2) < 0) goto malformed;
            }
            size_t at = kv_count;
            for (size_t j = 0; j < kv_count; j++)
                if (kvs[j].klen == item.klen && memcmp(kvs[j].key, item.key, item.klen) == 0) { at = j; break; }
            if (at == kv_count) {
                if (kv_count == kv_cap) {
                    kv_cap = kv_cap ? kv_cap * 2 : 16;
                    KV *grown = PyMem_Realloc(kvs, kv_cap * sizeof(KV));
                    if (!grown) { PyErr_NoMemory(); goto fail; }
                    kvs = grown;
                }
                kv_count++;
            }
            kvs[at] = item;
            break;
        }
        case 11: {
            if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; }
            if (read_bytes(r, &sub) < 0) goto malformed;
            uint64_t when = 0; const uint8_t *ename = (const uint8_t *)""; size_t ename_len = 0;
            Reader eattrs = {sub.p, sub.p};
            KV *ekvs = NULL; size_t ecount = 0;
            Reader scan = sub;
            while (scan.p < scan.end) {
                uint32_t f2; int w2; Reader s2;
                if (read_tag(&scan, &f2, &w2) < 0) goto malformed;
                if (f2 == 1 && w2 == 1) { if (read_fixed64(&scan, &when) < 0) goto malformed; }
                else if (f2 == 2 && w2 == 2) { if (read_bytes(&scan, &s2) < 0) goto malformed; ename = s2.p; ename_len = (size_t)(s2.end - s2.p); }
                else if (skip_field(&scan, w2) < 0) goto malformed;
            }
            eattrs = sub;
            if (collect_kvs(&eattrs, 3, &ekvs, &ecount) < 0) { PyMem_Free(ekvs); goto malformed; }
            if (ename_len == 9 && memcmp(ename, "exception", 9) == 0) has_exception = 1;
            int erc = buf_putc(&events, event_count ? ',' : '[');
            if (erc == 0) erc = buf_put(&events, "{\"name\":", 8);
            if (erc == 0) erc = buf_json_string(&events, ename, ename_len);
            if (erc == 0) erc = buf_put(&events, ",\"time_ns\":", 11);
            if (erc == 0) erc = buf_int(&events, (int64_t)when);
            if (erc == 0) erc = buf_put(&events, ",\"attributes\":", 14);
            if (erc == 0) erc = kvs_json(ekvs, ecount, &events, 0);
            if (erc == 0) erc = buf_putc(&events, '}');
            PyMem_Free(ekvs);
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
                else if (skip_field(&sub, w2) < 0) goto malformed;
            }
            if (lt_len == 16 && ls_len == 8) {
                PyObject *pair = Py_BuildValue("(y#K)", (const char *)lt, (Py_ssize_t)16, (unsigned long long)be64(ls));
                if (append_steal(link_items, pair) < 0) goto fail;
            }
            break;
        }
        case 15: {
            if (wire != 2) { if (skip_field(r, wire) < 0) goto malformed; break; }
            if (read_bytes(r, &sub) < 0) goto malformed;
            while (sub.p < sub.end) {
                uint32_t f2; int w2; Reader s2;
                if (read_tag(&sub, &f2, &w2) < 0) goto malformed;
                if (f2 == 2 && w2 == 2) { if (read_bytes(&sub, &s2) < 0) goto malformed; status_msg = s2.p; status_msg_len = (size_t)(s2.end - s2.p); }
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
    if (problem) { rc = reject(out, problem); goto cleanup; }

    Hot hot[N_HOT];
    memset(hot, 0, sizeof hot);
    int annotation_count = 0;
    int scanned = scan_attributes(kvs, kv_count, hot, kv_count ? &attrs_json : NULL, &annotation_count);
    if (scanned < 0) goto fail;
    if (scanned == 1) { out->needs_python = 1; rc = 0; goto cleanup; }

    const char *kind_name = kind < 6 ? KIND_NAMES[kind] : "UNSPECIFIED";
    int status = 0, has_status = http_status(hot, &status);
    int error = (hot[K_ERROR].present && hot[K_ERROR].truthy) || (has_status && status >= 400 && status < 500);
    int throttle = (hot[K_THROTTLE].present && hot[K_THROTTLE].truthy) || (has_status && status == 429);
    int fault = (hot[K_FAULT].present && hot[K_FAULT].truthy) || (has_status && status >= 500);
    uint64_t code = status_code <= 2 ? status_code : 0;
    if (status_code == 2 && !(error || throttle || fault))
        fault = has_exception || strcmp(kind_name, "SERVER") == 0 || !has_status;

    PyObject *target_type, *target_name;
    if (target(hot, kind_name, &target_type, &target_name) < 0) goto fail;

    PyObject *origin;
    if (hot[K_ORIGIN].type == V_STR) origin = str_of(hot[K_ORIGIN].s, hot[K_ORIGIN].slen);
    else if ((hot[K_FAAS_TRIGGER].present && hot[K_FAAS_TRIGGER].truthy) ||
             (hot[K_FAAS_INVOCATION].present && hot[K_FAAS_INVOCATION].truthy))
        origin = PyUnicode_FromString("AWS::Lambda::Function");
    else { origin = Py_None; Py_INCREF(origin); }

    /* `_text(get(faas.version)) or resource.function_version`: an empty string falls through too */
    PyObject *function_version;
    if (hot[K_FAAS_VERSION].type == V_STR && hot[K_FAAS_VERSION].slen > 0)
        function_version = str_of(hot[K_FAAS_VERSION].s, hot[K_FAAS_VERSION].slen);
    else { function_version = res->function_version; Py_INCREF(function_version); }

    PyObject *cold;
    if (hot[K_COLDSTART].type == V_BOOL) cold = hot[K_COLDSTART].b ? Py_True : Py_False;
    else cold = Py_None;
    Py_INCREF(cold);

    PyObject *events_json;
    if (event_count) {
        if (buf_putc(&events, ']') < 0) events_json = NULL;
        else events_json = json_text(&events);
    } else { events_json = Py_None; Py_INCREF(events_json); }

    PyObject *row[N_COLUMNS] = {
        PyBytes_FromStringAndSize((const char *)trace, 16),
        PyLong_FromUnsignedLongLong(be64(span)),
        parent_len ? PyLong_FromUnsignedLongLong(be64(parent)) : (Py_INCREF(Py_None), Py_None),
        (Py_INCREF(res->service), res->service),
        str_of(name, name_len),
        PyUnicode_FromString(kind_name),
        PyLong_FromUnsignedLongLong(start),
        PyLong_FromUnsignedLongLong(end > start ? end - start : 0),
        PyLong_FromUnsignedLongLong(code),
        status_msg_len ? str_of(status_msg, status_msg_len) : (Py_INCREF(Py_None), Py_None),
        text_or_none(first_truthy(hot, K_METHOD, K_METHOD_OLD)),
        text_or_none(hot[K_ROUTE].present ? &hot[K_ROUTE] : NULL),
        text_or_none(hot[K_URL_FULL].present && hot[K_URL_FULL].truthy ? &hot[K_URL_FULL]
                     : first_truthy(hot, K_URL_OLD, K_URL_PATH)),
        has_status ? PyLong_FromLong(status) : (Py_INCREF(Py_None), Py_None),
        text_or_none(first_truthy(hot, K_UA, K_UA_OLD)),
        PyBool_FromLong(error),
        PyBool_FromLong(fault),
        PyBool_FromLong(throttle),
        cold,
        origin,
        target_type,
        target_name,
        function_version,
        text_or_none(hot[K_ENDUSER].present ? &hot[K_ENDUSER] : NULL),
        (Py_INCREF(Py_False), Py_False),
        PyUnicode_FromString("otlp"),
        kv_count ? json_text(&attrs_json) : (Py_INCREF(Py_None), Py_None),
        events_json,
        (Py_INCREF(res->json), res->json),
    };
    int ok = 1;
    for (int c = 0; c < N_COLUMNS; c++) if (!row[c]) ok = 0;
    if (ok) {
        for (int c = 0; c < N_COLUMNS && ok; c++) if (PyList_Append(out->columns[c], row[c]) < 0) ok = 0;
    }
    if (ok && annotation_count) ok = add_annotations(out, kvs, kv_count, row[0], row[1], row[6]) == 0;
    for (Py_ssize_t i = 0; ok && i < PyList_GET_SIZE(link_items); i++) {
        PyObject *pair = PyList_GET_ITEM(link_items, i);
        PyObject *link = PyTuple_Pack(5, row[0], row[1], row[6], PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1));
        ok = append_steal(out->links, link) == 0;
    }
    for (int c = 0; c < N_COLUMNS; c++) Py_XDECREF(row[c]);
    rc = ok ? 0 : -1;
    goto cleanup;

malformed:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "malformed span");
fail:
    rc = -1;
cleanup:
    PyMem_Free(kvs);
    PyMem_Free(events.data);
    PyMem_Free(attrs_json.data);
    Py_DECREF(link_items);
    return rc;
}

static int walk_resource(Reader *r, Resource *res) {
    KV *kvs; size_t count;
    Reader attrs = *r;
    if (collect_kvs(&attrs, 1, &kvs, &count) < 0) { PyMem_Free(kvs); return -1; }
    Hot service = {0}, faas_version = {0}, service_version = {0};
    for (size_t j = 0; j < count; j++) {
        Reader value = kvs[j].value;
        Hot *target = NULL;
        if (kvs[j].klen == 12 && memcmp(kvs[j].key, "service.name", 12) == 0) target = &service;
        else if (kvs[j].klen == 12 && memcmp(kvs[j].key, "faas.version", 12) == 0) target = &faas_version;
        else if (kvs[j].klen == 15 && memcmp(kvs[j].key, "service.version", 15) == 0) target = &service_version;
        if (target && value.p != value.end && any_value(&value, NULL, target, 0) < 0) { PyMem_Free(kvs); return -1; }
    }
    Buf json = {0};
    int rc = kvs_json(kvs, count, &json, 0);
    PyMem_Free(kvs);
    if (rc < 0) { PyMem_Free(json.data); return -1; }
    res->json = json_text(&json);
    PyMem_Free(json.data);
    res->service = service.type == V_STR && service.slen ? str_of(service.s, service.slen)
                                                        : PyUnicode_FromString("unknown_service");
    /* otel.resource_info: faas.version, else service.version (a truthy value wins the `or`) */
    const Hot *version = faas_version.present && faas_version.truthy ? &faas_version
                         : (service_version.present ? &service_version : NULL);
    res->function_version = text_or_none(version);
    return res->json && res->service && res->function_version ? 0 : -1;
}

static int walk_request(Reader *r, Out *out) {
    while (r->p < r->end) {
        uint32_t field; int wire; Reader rs;
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (field != 1 || wire != 2) { if (skip_field(r, wire) < 0) return -1; continue; }
        if (read_bytes(r, &rs) < 0) return -1;
        /* The resource may follow its scope spans on the wire: find it first. */
        Reader scan = rs, resource_body = {rs.p, rs.p};
        while (scan.p < scan.end) {
            uint32_t f2; int w2; Reader s2;
            if (read_tag(&scan, &f2, &w2) < 0) return -1;
            if (f2 == 1 && w2 == 2) { if (read_bytes(&scan, &s2) < 0) return -1; resource_body = s2; }
            else if (skip_field(&scan, w2) < 0) return -1;
        }
        Resource res = {NULL, NULL, NULL};
        if (walk_resource(&resource_body, &res) < 0) {
            Py_XDECREF(res.service); Py_XDECREF(res.function_version); Py_XDECREF(res.json);
            return -1;
        }
        int rc = 0;
        scan = rs;
        while (rc == 0 && scan.p < scan.end) {
            uint32_t f2; int w2; Reader ss;
            if (read_tag(&scan, &f2, &w2) < 0) { rc = -1; break; }
            if (f2 != 2 || w2 != 2) { if (skip_field(&scan, w2) < 0) rc = -1; continue; }
            if (read_bytes(&scan, &ss) < 0) { rc = -1; break; }
            while (rc == 0 && ss.p < ss.end) {
                uint32_t f3; int w3; Reader sp;
                if (read_tag(&ss, &f3, &w3) < 0) { rc = -1; break; }
                if (f3 != 2 || w3 != 2) { if (skip_field(&ss, w3) < 0) rc = -1; continue; }
                if (read_bytes(&ss, &sp) < 0) { rc = -1; break; }
                rc = walk_span(&sp, &res, out);
                if (out->needs_python) break;
            }
        }
        Py_DECREF(res.service); Py_DECREF(res.function_version); Py_DECREF(res.json);
        if (rc < 0) return -1;
        if (out->needs_python) return 0;
    }
    return 0;
}

static PyObject *decode(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Out out = {{0}, NULL, NULL, NULL, 0, 0};
    PyObject *result = NULL;
    int ok = 1;
    for (int c = 0; c < N_COLUMNS && ok; c++) ok = (out.columns[c] = PyList_New(0)) != NULL;
    if (ok) ok = (out.annotations = PyList_New(0)) && (out.links = PyList_New(0)) && (out.reasons = PyList_New(0));
    if (ok) {
        Reader r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
        if (walk_request(&r, &out) < 0) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "body is not a valid OTLP protobuf ExportTraceServiceRequest");
            }
        } else if (out.needs_python) {
            result = Py_None;
            Py_INCREF(result);
        } else {
            PyObject *columns = PyTuple_New(N_COLUMNS);
            if (columns) {
                for (int c = 0; c < N_COLUMNS; c++) { PyTuple_SET_ITEM(columns, c, out.columns[c]); out.columns[c] = NULL; }
                result = Py_BuildValue("(NOOnO)", columns, out.annotations, out.links, out.rejected, out.reasons);
            }
        }
    }
    for (int c = 0; c < N_COLUMNS; c++) Py_XDECREF(out.columns[c]);
    Py_XDECREF(out.annotations);
    Py_XDECREF(out.links);
    Py_XDECREF(out.reasons);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef METHODS[] = {
    {"decode", decode, METH_O, "Decode an OTLP ExportTraceServiceRequest into Fluoro's span columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_otlpfast", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__otlpfast(void) {
    for (int k = 0; k < N_HOT; k++) HOT_LENS[k] = strlen(HOT_KEYS[k]);
    return PyModule_Create(&MODULE);
}
