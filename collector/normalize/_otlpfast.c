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
 * Its concerns live in the headers of otlpfast/ (wire, JSON buffer, values, UTF-8, columns, Arrow export,
 * meanings, a span off the wire, a span validated and appended, resource), each included once below.
 *
 * decode(body: bytes) -> (spans, annotations, links, rejected: int, reasons: list of str, bytes held: int)
 * Each table is a PyCapsule of an Arrow C data interface struct array (30 columns in SPAN_SCHEMA
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

#define N_COLUMNS 30
#define RESOURCE_COLUMN 28  /* SPAN_SCHEMA's resource: dictionary-encoded, like the service (3) */
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

/* The decoder's concerns, one file each, compiled as this one translation unit (a unity build):
 * every function stays static, so the compiler inlines across them as when they were one file. */
#include "otlpfast/wire.h"
#include "otlpfast/buffer.h"
#include "otlpfast/values.h"
#include "otlpfast/utf8.h"
#include "otlpfast/columns.h"
#include "otlpfast/arrow_export.h"
#include "otlpfast/meanings.h"
#include "otlpfast/span_wire.h"
#include "otlpfast/span.h"
#include "otlpfast/resource.h"

/* ------------------------------------------------------------------ the request */

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
    out->spans[RESOURCE_COLUMN].dictionary = &out->resource_dict;
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
