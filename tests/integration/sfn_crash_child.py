"""An emulator to crash: Step Functions over a store file, a Lambda service of its own, one
execution started whose Task takes a while. Run as a process and killed with SIGKILL mid-task.

    python -m tests.integration.sfn_crash_child STORE RECORDS OTLP_ENDPOINT
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings
from demo_apps.cloud.stepfunctions.sfn_tasks import CloudTasks
from demo_apps.cloud.stepfunctions.stepfunctions import StepFunctions, StepFunctionsSettings

CODE = Path(__file__).parent / "lambda_code"
IN_FLIGHT = {
    "StartAt": "Slow",
    "States": {
        "Slow": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:slow-record",
            "Parameters": {"step": "slow", "sleep_s": 30},
            "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.lost", "Next": "Recovered"}],
            "End": True,
        },
        "Recovered": {"Type": "Pass", "End": True},
    },
}


def main() -> None:
    store, records, endpoint = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=endpoint))
    lambdas.deploy(
        FunctionConfig(
            name="slow-record",
            handler="workflow.slow_record",
            code_dir=CODE,
            timeout_s=60,
            environment=(("RECORD_DIR", records),),
        )
    )
    service = StepFunctions(CloudTasks(lambdas, None, None), StepFunctionsSettings(store_path=store))
    service.create_state_machine("in-flight", IN_FLIGHT)
    print(service.start_execution("in-flight", {"run": 1}), flush=True)
    time.sleep(600)  # killed long before


if __name__ == "__main__":
    main()
