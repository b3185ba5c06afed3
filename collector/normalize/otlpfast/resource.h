/* A ResourceSpans' resource and scope: the resource's meaning, its JSON; the scope's strings checked.
 *
 * Part of _otlpfast.c's one translation unit (see its header): included there, in order. */
#ifndef OTLPFAST_RESOURCE_H
#define OTLPFAST_RESOURCE_H

/* derive.resource_meaning of a resource's named values, asked (with the GIL) into `m`: the
 * service as its first text, the version as its second. */
static int ask_resource_meaning(Meaning *m, const Hot named[3]) {
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *args[3] = {NULL, NULL, NULL}, *answer = NULL;
    int rc = -1;
    for (int i = 0; i < 3; i++) {
        args[i] = named[i].present ? fact_value(&named[i], 0, 1) : Py_NewRef(Py_None);
        if (!args[i]) goto done;
    }
    answer = PyObject_CallFunctionObjArgs(RESOURCE_MEANING, args[0], args[1], args[2], NULL);
    if (!answer || !PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 2 || PyTuple_GET_ITEM(answer, 0) == Py_None) goto done;
    if (out_text(PyTuple_GET_ITEM(answer, 0), &m->text[0]) < 0 || out_text(PyTuple_GET_ITEM(answer, 1), &m->text[1]) < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "resource_meaning must answer (str, str or None)");
        PyErr_WriteUnraisable(RESOURCE_MEANING);
        defer();
    }
    for (int i = 0; i < 3; i++) Py_XDECREF(args[i]);
    Py_XDECREF(answer);
    PyGILState_Release(gil);
    return rc;
}

/* A resource's service and version (derive.resource_meaning's), from this thread's cache or
 * asked, copied into `res`. */
static int resource_meaning(Resource *res, const Hot named[3], Buf *signature, Meaning *scratch) {
    size_t need = 8;
    for (int i = 0; i < 3; i++) need += 16 + named[i].slen;
    signature->len = 0;
    if (buf_reserve(signature, need) < 0) return -1;
    uint8_t *p = (uint8_t *)signature->data;
    *p++ = SIGNATURE_OF_RESOURCE;
    for (int i = 0; i < 3; i++) {  /* every text of these is read: all of it signs */
        const Hot *h = &named[i];
        int has_text = h->present && (h->type == V_STR || (h->type == V_ARRAY && h->first_is_str));
        *p++ = (uint8_t)(h->present | h->type << 1 | h->truthy << 4 | has_text << 5);
        if (has_text) { p = put_varint(p, h->slen); memcpy(p, h->s, h->slen); p += h->slen; }
    }
    signature->len = (size_t)(p - (uint8_t *)signature->data);
    uint64_t hash = (uint64_t)_Py_HashBytes(signature->data, (Py_ssize_t)signature->len);
    MeaningCache *cache = thread_cache();
    if (!cache) return oom();
    const Meaning *m = cache_find(cache, signature, hash);
    if (!m) {
        meaning_free(scratch);
        if (ask_resource_meaning(scratch, named) < 0) return -1;
        m = cache_keep(cache, signature, hash, scratch);
    }
    const OutText *service = &m->text[0], *version = &m->text[1];
    res->names.len = 0;
    if (buf_put(&res->names, service->bytes, service->len) < 0 || buf_put(&res->names, version->bytes ? version->bytes : "", version->len) < 0)
        return -1;
    res->service.s = (const uint8_t *)res->names.data; res->service.n = service->len; res->service.present = 1;
    res->function_version.s = (const uint8_t *)res->names.data + service->len;
    res->function_version.n = version->len;
    res->function_version.present = version->kind == T_CONST;
    return 0;
}

static int walk_resource(Reader *r, Resource *res, Out *out) {
    KvSet *set = &out->work.scratch_attrs;
    Reader attrs = *r, scan = *r;
    while (scan.p < scan.end) {  /* entity_refs: rare, and only the Python path checks their strings */
        uint32_t field; int wire;
        if (read_tag(&scan, &field, &wire) < 0) return -1;
        if (field == 3 && wire == 2) return defer();
        if (skip_field(&scan, wire) < 0) return -1;
    }
    if (collect_kvs(&attrs, 1, set) < 0) return -1;
    KV *kvs = set->items;
    size_t count = set->count;
    Hot named[3];  /* service.name, faas.version, service.version: resource_meaning's arguments */
    memset(named, 0, sizeof named);
    static const char *NAMED[3] = {"service.name", "faas.version", "service.version"};
    for (size_t j = 0; j < count; j++) {
        for (int i = 0; i < 3; i++) {
            if (kvs[j].klen != strlen(NAMED[i]) || memcmp(kvs[j].key, NAMED[i], kvs[j].klen) != 0) continue;
            Reader value = kvs[j].value;
            if (value.p != value.end && any_value(&value, NULL, &named[i], 0) < 0) return -1;
            if (value.p == value.end) named[i].present = 1;
            if (named[i].type == V_BYTES) return defer();  /* the Python path reads bytes as hex text */
        }
    }
    /* Its strings are checked here (buf_json_string), as the Python path decodes them, whether
     * or not any span follows. */
    if (kvs_json(kvs, count, &res->json, 0) < 0) return -1;
    return resource_meaning(res, named, &out->work.scratch, &out->work.asked);
}

/* An InstrumentationScope: nothing of it is stored, but upb checks its strings. */
static int scope_ok(Reader scope, Out *out) {
    while (scope.p < scope.end) {
        uint32_t field; int wire; Reader sub;
        if (read_tag(&scope, &field, &wire) < 0) return -1;
        if ((field == 1 || field == 2) && wire == 2) {
            if (read_bytes(&scope, &sub) < 0 || text_ok(sub) < 0) return -1;
        } else if (field == 3 && wire == 2) {
            if (read_bytes(&scope, &sub) < 0) return -1;
            if (attributes_ok(&sub, &out->work.scratch_attrs, &out->work.scratch) < 0) return -1;
        } else if (skip_field(&scope, wire) < 0) return -1;
    }
    return 0;
}

static int walk_scope_spans(Reader ss, const Resource *res, Out *out) {
    while (ss.p < ss.end) {
        uint32_t field; int wire; Reader sub;
        if (read_tag(&ss, &field, &wire) < 0) return -1;
        if (wire != 2 || field > 3) { if (skip_field(&ss, wire) < 0) return -1; continue; }
        if (read_bytes(&ss, &sub) < 0) return -1;
        int rc = field == 2 ? walk_span(&sub, res, out) : field == 1 ? scope_ok(sub, out) : text_ok(sub);
        if (rc < 0) return -1;
        if (out->needs_python) return 0;
    }
    return 0;
}

#endif /* OTLPFAST_RESOURCE_H */
