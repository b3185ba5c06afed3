"""Hypothesis on the filter language: any text is either an expression or a FilterError with
a column, never another exception; every expression compiles to SQL that DuckDB runs, and no
value the user wrote is ever part of the SQL text (values are bound parameters)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.storage.duckdb_store import DuckDBStore
from collector.storage.filter_sql import compile_trace_predicate
from collector.storage.protocols import TimeWindow
from spanlang.filter_ast import FilterError
from spanlang.filter_parser import parse_filter
from tests.factories import SECOND, T0, at, spans_batch

MARKER = "zq'\"x"  # in every generated value: quotes, to be found in the SQL text if pasted
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


values = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12).map(lambda t: MARKER + t)
strings = values.map(quoted)
numbers = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e400", "-1e300", "0.5", ".5", "7"]),
)
keys = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
attribute_keys = st.from_regex(r"[A-Za-z0-9_.:/@~-]{1,16}", fullmatch=True)
node = st.one_of(strings, st.tuples(strings, strings).map(lambda p: f"id(name: {p[0]}, type: {p[1]})"))
atoms = st.one_of(
    st.sampled_from(["ok", "error", "fault", "throttle", "partial", "root", "cold_start"]).flatmap(
        lambda k: st.sampled_from([k, f"{k} = true", f"{k} != false", f"!{k}"])
    ),
    st.tuples(
        st.sampled_from(["responsetime", "duration", "http.status"]),
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        numbers,
    ).map(" ".join),
    st.tuples(
        st.sampled_from(["http.url", "http.method", "http.useragent", "name", "user"]),
        st.sampled_from(["=", "!=", "CONTAINS", "BEGINSWITH", "ENDSWITH"]),
        strings,
    ).map(" ".join),
    st.tuples(
        keys, st.sampled_from(["", " = ", " != ", " CONTAINS ", " < "]), st.one_of(strings, numbers, st.just("true"))
    ).map(lambda t: f"annotation.{t[0]}" + (f"{t[1]}{t[2]}" if t[1] else "")),
    st.tuples(
        st.sampled_from(["attribute", "resource"]),
        attribute_keys,
        st.sampled_from(["", " = ", " != ", " CONTAINS ", " ENDSWITH ", " >= "]),
        st.one_of(strings, numbers, st.just("false")),
    ).map(lambda t: f"{t[0]}.{t[1]}" + (f"{t[2]}{t[3]}" if t[2] else "")),
    node.map(lambda n: f"service({n})"),
    st.tuples(strings, strings).map(lambda p: f"edge({p[0]}, {p[1]})"),
    st.sampled_from(['id("1-5759e988-bd862e3fe1be46a994272793")', 'id("' + "ab" * 16 + '")', 'id("nope")']),
)


def combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from([" AND ", " OR ", " and ", " "]), inner).map("".join),
        inner.map(lambda e: f"!({e})"),
        inner.map(lambda e: f"({e})"),
        st.tuples(node, inner).map(lambda p: f"service({p[0]}) {{ {p[1]} }}"),
    )


expressions = st.recursive(atoms, combine, max_leaves=10)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    instance = DuckDBStore(str(tmp_path_factory.mktemp("filters") / "f.duckdb"))
    root = at(1, 1, None, 0.0, service="a", kind="SERVER", attributes='{"k":"v","n":1}', resource='{"r":true}')
    instance.write([spans_batch(root, at(1, 2, 1, 0.1, service="b", attributes='{"k":[1,{"x":"y"}]}'))])
    instance.link_new_spans()
    yield instance
    instance.close()


@FUZZ
@given(st.text(max_size=200))
def test_any_text_parses_or_says_where_it_is_wrong(text: str) -> None:
    try:
        parse_filter(text)
    except FilterError as exc:
        assert exc.column >= 1 and exc.reason


@FUZZ
@given(st.text(alphabet='!(){}"\\ ab=<>', max_size=400))
def test_punctuation_storms_parse_or_say_where_they_are_wrong(text: str) -> None:
    try:
        parse_filter(text)
    except FilterError as exc:
        assert exc.column >= 1


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@FUZZ
@given(expressions)
def test_generated_expressions_run_and_never_paste_a_value_into_sql(store: DuckDBStore, text: str) -> None:
    try:
        expr = parse_filter(text)
        statement = compile_trace_predicate(expr, (T0, T0 + SECOND))
    except FilterError as exc:  # a number out of range, service() inside service() { }: with a column
        assert exc.column >= 1
        return
    assert MARKER not in statement.text and "zq" not in statement.text
    window = TimeWindow(T0 - SECOND, T0 + 10 * SECOND)
    store.reader.search_traces(window, expr, 10)  # DuckDB runs it: any error fails here


def test_the_generator_reaches_values_in_the_sql_parameters() -> None:
    expr = parse_filter(
        f"name = {quoted(MARKER + 'x')} AND service({quoted(MARKER)}) {{ annotation.k = {quoted(MARKER)} }}"
    )
    statement = compile_trace_predicate(expr, (T0, T0 + SECOND))
    assert MARKER not in statement.text
    assert sum(isinstance(p, str) and MARKER in p for p in statement.params) >= 3
