"""The deployment files say what the READMEs say, and fit cairnflow's key layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import keys

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PREFIX = "approvals"
WAKE_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:approval-wakeups"


def load_template() -> dict[str, Any]:
    """template.yaml, with CloudFormation's short tags read as {"Ref": ...}, {"Fn::Sub": ...}, ..."""
    yaml: Any = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def tag(name: str) -> Any:
        def construct(loader: Any, node: Any) -> dict[str, Any]:
            if isinstance(node, yaml.ScalarNode):
                value: Any = loader.construct_scalar(node)
                if name == "Fn::GetAtt":
                    value = value.split(".", 1)
            else:
                value = loader.construct_sequence(node)
            return {name: value}

        return construct

    for short, full in (("!Ref", "Ref"), ("!Sub", "Fn::Sub"), ("!GetAtt", "Fn::GetAtt")):
        Loader.add_constructor(short, tag(full))
    template: dict[str, Any] = yaml.load((EXAMPLES / "aws_lambda" / "template.yaml").read_text(), Loader)
    return template


def sub(template_string: str, *, bucket: str = "my-approvals-bucket") -> str:
    """Resolve the template's Fn::Sub placeholders the way CloudFormation would."""
    return (
        template_string.replace("${CheckpointBucket.Arn}", f"arn:aws:s3:::{bucket}")
        .replace("${CheckpointBucket}", bucket)
        .replace("${CheckpointPrefix}", PREFIX)
    )


def resolve(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return sub(value["Fn::Sub"])
    if isinstance(value, dict) and value == {"Fn::GetAtt": ["CheckpointBucket", "Arn"]}:
        return "arn:aws:s3:::my-approvals-bucket"
    if isinstance(value, dict) and value == {"Fn::GetAtt": ["WakeQueue", "Arn"]}:
        return WAKE_QUEUE_ARN
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def test_lambda_function_and_bucket() -> None:
    template = load_template()
    resources = template["Resources"]
    assert template["Parameters"]["CheckpointPrefix"]["Default"] == PREFIX
    function = resources["ApprovalFunction"]["Properties"]
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "handler.lambda_handler"
    assert (EXAMPLES / "aws_lambda" / "handler.py").exists()
    variables = resolve(function["Environment"]["Variables"])
    assert variables["CAIRNFLOW_URL"] == f"s3://my-approvals-bucket/{PREFIX}"
    assert variables["CAIRNFLOW_DURABILITY"] == "sync"
    # Wake-ups: the function sends them to its queue, and the queue invokes the function.
    assert variables["CAIRNFLOW_WAKE_QUEUE_URL"] == {"Ref": "WakeQueue"}
    assert float(variables["CAIRNFLOW_LEASE_SECONDS"]) > function["Timeout"]
    wakeups = function["Events"]["Wakeups"]
    assert wakeups["Type"] == "SQS"
    assert wakeups["Properties"]["Queue"] == {"Fn::GetAtt": ["WakeQueue", "Arn"]}
    assert wakeups["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert resources["WakeQueue"]["Properties"]["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert "VersioningConfiguration" not in resources["CheckpointBucket"]["Properties"]


def test_function_policy_is_policy_json() -> None:
    [inline] = load_template()["Resources"]["ApprovalFunction"]["Properties"]["Policies"]
    standalone = json.loads((EXAMPLES / "aws_lambda" / "policy.json").read_text())

    def normalise(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for st in resolve(statements):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            out.append({**st, "Action": sorted(actions)})
        return sorted(out, key=lambda st: st["Sid"])

    assert normalise(inline["Statement"]) == normalise(standalone["Statement"])
    consume, listing, objects, send = normalise(standalone["Statement"])  # sorted by Sid
    assert objects["Action"] == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert objects["Resource"] == f"arn:aws:s3:::my-approvals-bucket/{PREFIX}/*"
    assert listing["Action"] == ["s3:ListBucket"]
    assert listing["Resource"] == "arn:aws:s3:::my-approvals-bucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"{PREFIX}/*"}}
    # The wake-up queue: the driver sends; the event source mapping receives and deletes.
    assert send == {
        "Sid": "SendWakeups",
        "Effect": "Allow",
        "Action": ["sqs:SendMessage"],
        "Resource": WAKE_QUEUE_ARN,
    }
    assert consume["Action"] == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    assert consume["Resource"] == WAKE_QUEUE_ARN
    # Every key cairnflow writes or lists for this URL is inside the granted prefix.
    assert keys.threads_prefix(f"{PREFIX}/").startswith(f"{PREFIX}/")


def test_bucket_policy_requires_create_only_checkpoint_writes() -> None:
    from cairnflow.savers.s3 import PROBE_SUFFIX

    policy = load_template()["Resources"]["CheckpointBucketPolicy"]["Properties"]["PolicyDocument"]
    [deny] = [st for st in policy["Statement"] if st["Sid"] == "RequireCreateOnlyCheckpointWrites"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:PutObject"
    assert deny["Condition"] == {
        "Null": {"s3:if-none-match": "true"},
        "Bool": {"s3:ObjectCreationOperation": "true"},
    }
    resource = resolve(deny["Resource"])
    denied_prefix = resource.removeprefix("arn:aws:s3:::my-approvals-bucket/").removesuffix("*")
    # It covers every checkpoint key of the URL's prefix ...
    assert keys.checkpoint_key(f"{PREFIX}/", "approval-q3-report", 7).startswith(denied_prefix)
    assert denied_prefix == keys.threads_prefix(f"{PREFIX}/")
    # ... and not the conditional-write probe, which also writes with If-Match.
    assert not f"{PREFIX}/{PROBE_SUFFIX}".startswith(denied_prefix)


def test_cloud_run_and_azure_files() -> None:
    dockerfile = (EXAMPLES / "cloud_run" / "Dockerfile").read_text()
    assert 'CMD ["python", "main.py"]' in dockerfile
    assert "COPY approval_flow.py main.py" in dockerfile
    assert "cairnflow[gcs,gcp-tasks]" in (EXAMPLES / "cloud_run" / "requirements.txt").read_text()
    host = json.loads((EXAMPLES / "azure_functions" / "host.json").read_text())
    assert host["version"] == "2.0"
    # The driver sends plain JSON: the queue trigger must not expect base64.
    assert host["extensions"]["queues"]["messageEncoding"] == "none"
    requirements = (EXAMPLES / "azure_functions" / "requirements.txt").read_text()
    assert "azure-functions" in requirements and "cairnflow[azure,azure-queue]" in requirements
