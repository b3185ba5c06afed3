/* The Arrow C data interface: a table handed to pyarrow in a PyCapsule, its buffers moved, not copied.
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_ARROW_EXPORT_H
#define OTLPFAST_ARROW_EXPORT_H

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

#endif /* OTLPFAST_ARROW_EXPORT_H */
