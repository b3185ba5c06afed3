"""The Amazon States Language: definitions checked with the fault's path, paths and templates,
choice rules, and the interpreter's data flow, retries and catches (tasks answered in-process)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from demo_apps.cloud.stepfunctions.asl_choice import evaluate
from demo_apps.cloud.stepfunctions.asl_definition import InvalidDefinition, check_definition
from demo_apps.cloud.stepfunctions.asl_interpreter import Interpreter, RunLimits, StatesError
from demo_apps.cloud.stepfunctions.asl_paths import PathError, fill_template, select, with_result

DOC = {"order": {"id": "o-1", "items": [{"sku": "a", "n": 2}, {"sku": "b", "n": 3}]}, "total": 12.5, "vip": True}


def machine(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states}


@pytest.mark.parametrize(
    ("definition", "where"),
    [
        ({"States": {}}, "/States"),
        (machine({"A": {"Type": "Pass", "End": True}}, "Nope"), "/StartAt"),
        (machine({"A": {"Type": "Sleep", "End": True}}), "/States/A/Type"),
        (machine({"A": {"Type": "Pass"}}), "/States/A"),  # neither Next nor End
        (machine({"A": {"Type": "Pass", "Next": "B"}}), "/States/A/Next"),
        (machine({"A": {"Type": "Pass", "End": True, "Seconds": 3}}), "/States/A/Seconds"),
        (
            machine({"A": {"Type": "Task", "Resource": "arn:aws:states:::glue:startJobRun", "End": True}}),
            "/States/A/Resource",
        ),
        (machine({"A": {"Type": "Choice", "Choices": []}}), "/States/A/Choices"),
        (
            machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "A"}]}}),
            "/States/A/Choices/0",
        ),
        (
            machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "Z"}]}}),
            "/States/A/Choices/0/Next",
        ),
        (machine({"A": {"Type": "Wait", "End": True}}), "/States/A"),
        (machine({"A": {"Type": "Pass", "End": True, "InputPath": "x.y"}}), "/States/A/InputPath"),
        (machine({"A": {"Type": "Pass", "End": True, "ResultPath": "$.a[*]"}}), "/States/A/ResultPath"),
        (
            machine(
                {
                    "A": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                        "End": True,
                        "Retry": [{"ErrorEquals": []}],
                    }
                }
            ),
            "/States/A/Retry/0/ErrorEquals",
        ),
        (
            machine(
                {
                    "A": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                        "End": True,
                        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Q"}],
                    }
                }
            ),
            "/States/A/Catch/0/Next",
        ),
        (
            machine({"A": {"Type": "Parallel", "End": True, "Branches": [machine({"B": {"Type": "Pass"}})]}}),
            "/States/A/Branches/0/States/B",
        ),
        (
            machine(
                {
                    "A": {
                        "Type": "Map",
                        "End": True,
                        "ItemProcessor": {"StartAt": "X", "States": {"Y": {"Type": "Succeed"}}},
                    }
                }
            ),
            "/States/A/ItemProcessor/StartAt",
        ),
    ],
)
def test_invalid_definitions_name_the_fault(definition: Any, where: str) -> None:
    with pytest.raises(InvalidDefinition) as raised:
        check_definition(definition)
    assert str(raised.value).startswith(where + ":"), str(raised.value)


def test_paths_select_write_and_fill_templates() -> None:
    assert select("$.order.items[1].sku", DOC) == "b"
    assert select("$.order.items[*].n", DOC) == [2, 3]
    assert select("$$.Execution.Name", DOC, {"Execution": {"Name": "run-1"}}) == "run-1"
    with pytest.raises(PathError):
        select("$.missing", DOC)
    placed = with_result(DOC, "$.result.fee", 3)
    assert placed["result"] == {"fee": 3} and "result" not in DOC  # the input is not changed
    assert with_result(DOC, "$", 3) == 3 and with_result(DOC, None, 3) == DOC
    template = {
        "id.$": "$.order.id",
        "fixed": {"n": 1},
        "message.$": "States.Format('order {} costs {}', $.order.id, $.total)",
        "parsed.$": "States.StringToJson('{\"a\": 1}')",
        "both.$": "States.Array($.vip, 'x')",
    }
    assert fill_template(template, DOC) == {
        "id": "o-1",
        "fixed": {"n": 1},
        "message": "order o-1 costs 12.5",
        "parsed": {"a": 1},
        "both": [True, "x"],
    }


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.total", "NumericGreaterThan": 10}, True),
        ({"Variable": "$.total", "NumericLessThanEquals": 12}, False),
        ({"Variable": "$.order.id", "StringEquals": "o-1"}, True),
        ({"Variable": "$.order.id", "StringMatches": "o-*"}, True),
        ({"Variable": "$.order.id", "NumericEquals": 1}, False),  # the wrong type is false
        ({"Variable": "$.vip", "BooleanEquals": True}, True),
        ({"Variable": "$.total", "NumericGreaterThanPath": "$.order.items[0].n"}, True),
        ({"Variable": "$.nothing", "IsPresent": False}, True),
        ({"Variable": "$.nothing", "StringEquals": "x"}, False),
        ({"Variable": "$.order", "IsString": False}, True),
        (
            {
                "And": [
                    {"Variable": "$.vip", "BooleanEquals": True},
                    {"Not": {"Variable": "$.total", "NumericEquals": 1}},
                ]
            },
            True,
        ),
        ({"Or": [{"Variable": "$.vip", "BooleanEquals": False}, {"Variable": "$.total", "NumericLessThan": 1}]}, False),
    ],
)
def test_choice_rules(rule: dict[str, Any], expected: bool) -> None:
    assert evaluate(rule, DOC) is expected


class Answers:
    """Tasks answered in-process: each resource's scripted outcomes, in order."""

    def __init__(self, outcomes: dict[str, list[Any]]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, Any]] = []

    def target(self, resource: str, parameters: Any) -> tuple[str, str]:
        return "AWS::Lambda::Function", resource.rsplit(":", 1)[-1]

    def run(self, resource: str, parameters: Any, trace_header: str | None) -> Any:
        self.calls.append((resource, parameters))
        outcome = self.outcomes[resource].pop(0)
        if isinstance(outcome, StatesError):
            raise outcome
        return outcome(parameters) if callable(outcome) else outcome


def run(definition: dict[str, Any], document: Any, answers: Answers) -> tuple[Any, list[str]]:
    events: list[str] = []
    interpreter = Interpreter(
        answers, TracerProvider().get_tracer("test"), lambda kind, _: events.append(kind), RunLimits(time_scale=0.0)
    )
    check_definition(definition)
    return interpreter.run(definition, document, {}), events


FN = "arn:aws:lambda:us-east-1:123456789012:function:"


def test_data_flows_through_input_parameters_result_selector_result_and_output_paths() -> None:
    definition = machine(
        {
            "Price": {
                "Type": "Task",
                "Resource": FN + "price",
                "InputPath": "$.order",
                "Parameters": {"sku.$": "$.items[0].sku", "source": "shop"},
                "ResultSelector": {"cents.$": "$.amount"},
                "ResultPath": "$.priced",
                "OutputPath": "$.priced",
                "End": True,
            }
        }
    )
    answers = Answers({FN + "price": [{"amount": 250, "noise": True}]})
    output, _ = run(definition, DOC, answers)
    assert answers.calls == [(FN + "price", {"sku": "a", "source": "shop"})]
    assert output == {"cents": 250}


def test_retry_backs_off_then_catch_routes_the_error() -> None:
    definition = machine(
        {
            "Charge": {
                "Type": "Task",
                "Resource": FN + "charge",
                "Retry": [{"ErrorEquals": ["Busy"], "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
            "Failed": {"Type": "Pass", "End": True},
        }
    )
    busy = StatesError("Busy", "try later")
    succeeded, events = run(definition, {"a": 1}, Answers({FN + "charge": [busy, busy, {"ok": True}]}))
    assert succeeded == {"ok": True} and events.count("TaskFailed") == 2
    caught, _ = run(definition, {"a": 1}, Answers({FN + "charge": [busy, busy, busy]}))
    assert caught == {"a": 1, "error": {"Error": "Busy", "Cause": "try later"}}  # out of retries, then caught
    with pytest.raises(StatesError, match=r"States\.Runtime"):  # States.ALL never catches a runtime error
        run(definition, {"a": 1}, Answers({FN + "charge": [StatesError("States.Runtime", "bad path")]}))


def test_parallel_and_map_keep_order_and_a_failing_branch_fails_the_state() -> None:
    definition = machine(
        {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    machine(
                        {
                            "Each": {
                                "Type": "Map",
                                "ItemsPath": "$.xs",
                                "MaxConcurrency": 2,
                                "ItemSelector": {"x.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                                "ItemProcessor": machine(
                                    {"Double": {"Type": "Task", "Resource": FN + "double", "End": True}}
                                ),
                                "End": True,
                            }
                        }
                    ),
                    machine({"Fixed": {"Type": "Pass", "Result": "done", "End": True}}),
                ],
                "End": True,
            }
        }
    )
    doubling = [lambda p: p["x"] * 2 + p["i"] * 0] * 4
    output, events = run(definition, {"xs": [1, 2, 3, 4]}, Answers({FN + "double": list(doubling)}))
    assert output == [[2, 4, 6, 8], "done"]
    assert events.count("MapStateStarted") == 1 and events.count("ParallelStateSucceeded") == 1
    failing = [*doubling[:3], StatesError("Boom", "item 3")]
    with pytest.raises(StatesError, match="Boom"):
        run(definition, {"xs": [1, 2, 3, 4]}, Answers({FN + "double": failing}))


def test_choice_wait_and_fail() -> None:
    definition = machine(
        {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThan": 5, "Next": "TooBig"}],
                "Default": "Pause",
            },
            "Pause": {"Type": "Wait", "SecondsPath": "$.n", "Next": "Fine"},
            "Fine": {"Type": "Succeed"},
            "TooBig": {"Type": "Fail", "Error": "Overdraft", "Cause": "too big"},
        }
    )
    assert run(definition, {"n": 1}, Answers({}))[0] == {"n": 1}
    with pytest.raises(StatesError, match="Overdraft"):
        run(definition, {"n": 9}, Answers({}))
    no_default = machine(
        {
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 0, "Next": "End"}]},
            "End": {"Type": "Succeed"},
        }
    )
    with pytest.raises(StatesError, match=r"States\.NoChoiceMatched"):
        run(no_default, {"n": 1}, Answers({}))
