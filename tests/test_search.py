"""SageMaker Search against the real server: every answer is checked against what a Python
filter over the Describe* documents returns, plus AWS-shaped errors and Estimator.register().
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import SKLEARN_IMAGE, sdk_session

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
OTHER_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def error_of(call) -> dict:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]


def containers(index: int) -> list[dict]:
    found = [{"Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://search-models/m{index}/model.tar.gz"}]
    if index == 0:  # two containers: nested filters must match within one of them
        found.append({"Image": OTHER_IMAGE, "ModelDataUrl": "s3://search-models/xgb/model.tar.gz"})
    return found


@pytest.fixture(scope="module")
def packages(server):
    """A group of six versions with varied members; returns (group, {arn: Describe doc})."""
    client = server.client("sagemaker")
    group = "search-registry-group"
    client.create_model_package_group(ModelPackageGroupName=group,
                                      Tags=[{"Key": "team", "Value": "fraud"}])
    for index in range(6):
        extra = {"ModelPackageDescription": f"candidate {index} {'big' if index % 2 else 'small'}"}
        if index == 5:
            extra = {}  # no description: Exists / NotExists
        arn = client.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus=("Approved", "Rejected", "PendingManualApproval")[index % 3],
            CustomerMetadataProperties={"score": str([7, 12, 3.5, 100, 12, 40][index])},
            InferenceSpecification={"Containers": containers(index),
                                    "SupportedContentTypes": ["text/csv"],
                                    "SupportedResponseMIMETypes": ["text/csv"]},
            **extra)["ModelPackageArn"]
        client.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": f"s{index % 2}"}])
    documents = {}
    for page in client.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        for summary in page["ModelPackageSummaryList"]:
            arn = summary["ModelPackageArn"]
            document = client.describe_model_package(ModelPackageName=arn)
            document["Tags"] = client.list_tags(ResourceArn=arn)["Tags"]
            documents[arn] = document
    assert len(documents) == 6
    return group, documents


def search_all(client, resource: str, expression: dict | None = None, **extra) -> list[dict]:
    """Every result, following NextToken."""
    request = {"Resource": resource, **extra}
    if expression is not None:
        request["SearchExpression"] = expression
    results, token = [], None
    while True:
        page = client.search(**request, **({"NextToken": token} if token else {}))
        results += [item[resource] for item in page["Results"]]
        token = page.get("NextToken")
        if not token:
            return results


def in_group(group: str, *filters: dict, **more) -> dict:
    return {"Filters": [{"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": group},
                        *filters], **more}


def arns(results: list[dict]) -> set[str]:
    return {item["ModelPackageArn"] for item in results}


def score(document: dict) -> float:
    return float(document["CustomerMetadataProperties"]["score"])


SCORE = "CustomerMetadataProperties.score"
OPERATOR_CASES = [
    ("Equals", "12", lambda d: score(d) == 12),
    ("NotEquals", "12", lambda d: score(d) != 12),
    ("GreaterThan", "12", lambda d: score(d) > 12),  # numeric: "100" > "12" though "100" < "12" as text
    ("GreaterThanOrEqualTo", "12", lambda d: score(d) >= 12),
    ("LessThan", "12", lambda d: score(d) < 12),
    ("LessThanOrEqualTo", "7", lambda d: score(d) <= 7),
    ("In", "3.5,100", lambda d: score(d) in (3.5, 100)),
]


@pytest.mark.parametrize("operator,value,expected", OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES])
def test_each_comparison_operator_matches_a_python_filter(server, packages, operator, value, expected):
    group, documents = packages
    found = search_all(server.client("sagemaker"), "ModelPackage", in_group(
        group, {"Name": SCORE, "Operator": operator, "Value": value}))
    wanted = {arn for arn, document in documents.items() if expected(document)}
    assert wanted and arns(found) == wanted


def test_contains_exists_not_exists_tags_and_times(server, packages):
    group, documents = packages
    client = server.client("sagemaker")
    cases = [
        ({"Name": "ModelPackageDescription", "Operator": "Contains", "Value": "big"},
         lambda d: "big" in d.get("ModelPackageDescription", "")),
        ({"Name": "ModelPackageDescription", "Operator": "Exists"},
         lambda d: "ModelPackageDescription" in d),
        ({"Name": "ModelPackageDescription", "Operator": "NotExists"},
         lambda d: "ModelPackageDescription" not in d),
        ({"Name": "Tags.stage", "Operator": "Equals", "Value": "s1"},
         lambda d: {"Key": "stage", "Value": "s1"} in d["Tags"]),
        ({"Name": "ModelApprovalStatus", "Operator": "In", "Value": "Approved,Rejected"},
         lambda d: d["ModelApprovalStatus"] in ("Approved", "Rejected")),
    ]
    ordered = sorted(documents.values(), key=lambda d: d["CreationTime"])
    # between two creations: a boundary equal to a stored time depends on wire precision
    middle = ordered[2]["CreationTime"] + (ordered[3]["CreationTime"] - ordered[2]["CreationTime"]) / 2
    cases.append(({"Name": "CreationTime", "Operator": "GreaterThanOrEqualTo",
                   "Value": middle.astimezone(timezone.utc).isoformat()},
                  lambda d: d["CreationTime"] >= middle))
    for spec, expected in cases:
        wanted = {arn for arn, document in documents.items() if expected(document)}
        assert wanted and arns(search_all(client, "ModelPackage", in_group(group, spec))) == wanted, spec
    # the records are the full Describe documents, tags included
    record = search_all(client, "ModelPackage", in_group(
        group, {"Name": "ModelPackageVersion", "Operator": "Equals", "Value": "2"}))[0]
    described = documents[record["ModelPackageArn"]]
    assert record["Tags"] == described["Tags"]
    assert record["InferenceSpecification"] == described["InferenceSpecification"]
    assert record["CustomerMetadataProperties"] == {"score": "12"}


def test_nested_filters_match_within_one_list_element(server, packages):
    group, documents = packages
    client = server.client("sagemaker")
    prefix = "InferenceSpecification.Containers"
    mixed = [{"Name": f"{prefix}.Image", "Operator": "Equals", "Value": SKLEARN_IMAGE},
             {"Name": f"{prefix}.ModelDataUrl", "Operator": "Contains", "Value": "xgb"}]
    # Flat filters match the two-container package (each condition holds for some container);
    assert len(search_all(client, "ModelPackage", in_group(group, *mixed))) == 1
    # nested, both must hold for the same container: none does.
    assert search_all(client, "ModelPackage", in_group(
        group, NestedFilters=[{"NestedPropertyName": prefix, "Filters": mixed}])) == []
    same = [mixed[0], {"Name": f"{prefix}.ModelDataUrl", "Operator": "Contains", "Value": "/m3/"}]
    found = search_all(client, "ModelPackage", in_group(
        group, NestedFilters=[{"NestedPropertyName": prefix, "Filters": same}]))
    wanted = {arn for arn, d in documents.items()
              if any(c["Image"] == SKLEARN_IMAGE and "/m3/" in c["ModelDataUrl"]
                     for c in d["InferenceSpecification"]["Containers"])}
    assert arns(found) == wanted and len(wanted) == 1


def test_sub_expressions_with_or_and_and(server, packages):
    group, documents = packages
    either = {"Operator": "Or", "Filters": [
        {"Name": "ModelApprovalStatus", "Operator": "Equals", "Value": "Rejected"},
        {"Name": SCORE, "Operator": "GreaterThan", "Value": "50"}]}
    found = search_all(server.client("sagemaker"), "ModelPackage",
                       in_group(group, SubExpressions=[either]))
    wanted = {arn for arn, d in documents.items()
              if d["ModelApprovalStatus"] == "Rejected" or score(d) > 50}
    assert wanted and arns(found) == wanted


def test_sort_and_pagination_follow_the_sort_path(server, packages):
    group, documents = packages
    client = server.client("sagemaker")
    for order in ("Ascending", "Descending"):
        pages, token = [], None
        while True:
            page = client.search(Resource="ModelPackage", SearchExpression=in_group(group),
                                 SortBy=SCORE, SortOrder=order, MaxResults=4,
                                 CrossAccountFilterOption="SameAccount",
                                 **({"NextToken": token} if token else {}))
            pages.append([item["ModelPackage"]["ModelPackageArn"] for item in page["Results"]])
            token = page.get("NextToken")
            if not token:
                break
        assert [len(p) for p in pages] == [4, 2]
        scores = [score(documents[arn]) for p in pages for arn in p]
        assert scores == sorted((score(d) for d in documents.values()),
                                reverse=order == "Descending")
    # default order: newest first by CreationTime
    default = [item["ModelPackageArn"] for item in search_all(client, "ModelPackage", in_group(group))]
    assert default == [d["ModelPackageArn"] for d in sorted(
        documents.values(), key=lambda d: d["CreationTime"], reverse=True)]
    first = client.search(Resource="ModelPackage", SearchExpression=in_group(group), MaxResults=2)
    changed = error_of(lambda: client.search(
        Resource="ModelPackage", SearchExpression=in_group(group), SortBy=SCORE,
        NextToken=first["NextToken"]))
    assert changed["Code"] == "ValidationException" and "NextToken" in changed["Message"]


def test_groups_models_and_pipelines_are_searchable_with_tags(server, packages, unique_name):
    group, _ = packages
    client = server.client("sagemaker")
    found = search_all(client, "ModelPackageGroup", {"Filters": [
        {"Name": "Tags.team", "Operator": "Equals", "Value": "fraud"},
        {"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": group}]})
    assert [item["ModelPackageGroupName"] for item in found] == [group]
    assert found[0]["Tags"] == [{"Key": "team", "Value": "fraud"}]

    client.create_model(ModelName=unique_name, ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": SKLEARN_IMAGE,
                                          "ModelDataUrl": "s3://search-models/m0/model.tar.gz"},
                        Tags=[{"Key": "owner", "Value": unique_name}])
    models = client.search(Resource="Model", SearchExpression={"Filters": [
        {"Name": "Tags.owner", "Operator": "Equals", "Value": unique_name}]})["Results"]
    assert [item["Model"]["Model"]["ModelName"] for item in models] == [unique_name]
    assert models[0]["Model"]["Model"]["PrimaryContainer"]["Image"] == SKLEARN_IMAGE

    client.create_pipeline(
        PipelineName=unique_name, RoleArn=ROLE, Tags=[{"Key": "owner", "Value": unique_name}],
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": [],
                                       "Steps": [{"Name": "Stop", "Type": "Fail",
                                                  "Arguments": {"ErrorMessage": "x"}}]}))
    pipelines = search_all(client, "Pipeline", {"Filters": [
        {"Name": "Tags.owner", "Operator": "Equals", "Value": unique_name}]})
    assert [item["PipelineName"] for item in pipelines] == [unique_name]
    # changes show at once: a new tag, then a deleted model
    model_arn = client.describe_model(ModelName=unique_name)["ModelArn"]
    client.add_tags(ResourceArn=model_arn, Tags=[{"Key": "stage", "Value": "prod"}])
    tagged = client.search(Resource="Model", SearchExpression={"Filters": [
        {"Name": "Tags.owner", "Operator": "Equals", "Value": unique_name},
        {"Name": "Tags.stage", "Operator": "Equals", "Value": "prod"}]})["Results"]
    assert [item["Model"]["Model"]["ModelName"] for item in tagged] == [unique_name]
    client.delete_model(ModelName=unique_name)
    assert client.search(Resource="Model", SearchExpression={"Filters": [
        {"Name": "Tags.owner", "Operator": "Equals", "Value": unique_name}]})["Results"] == []
    assert search_all(client, "HyperParameterTuningJob") == []
    assert search_all(client, "ModelCard", {"Filters": [
        {"Name": "ModelId", "Operator": "Equals", "Value": "nothing"}]}) == []
    assert isinstance(search_all(client, "ModelCard"), list)


def test_bad_names_operators_resources_and_expressions_get_aws_errors(server):
    client = server.client("sagemaker")
    bad_name = error_of(lambda: client.search(Resource="TrainingJob", SearchExpression={
        "Filters": [{"Name": "TrainingJobNam", "Operator": "Equals", "Value": "x"}]}))
    assert bad_name["Code"] == "ValidationException" and "TrainingJobNam" in bad_name["Message"]
    bad_operator = error_of(lambda: client.search(Resource="TrainingJob", SearchExpression={
        "Filters": [{"Name": "TrainingJobName", "Operator": "Like", "Value": "x"}]}))
    assert bad_operator["Code"] == "ValidationException" and "Like" in bad_operator["Message"]
    unsupported = error_of(lambda: client.search(Resource="Project"))
    assert unsupported["Code"] == "ValidationException"
    assert "Project" in unsupported["Message"] and "TrainingJob" in unsupported["Message"]
    empty = error_of(lambda: client.search(Resource="TrainingJob", SearchExpression={}))
    assert empty["Code"] == "ValidationException" and "Filters" in empty["Message"]
    no_value = error_of(lambda: client.search(Resource="TrainingJob", SearchExpression={
        "Filters": [{"Name": "TrainingJobName", "Operator": "Equals"}]}))
    assert no_value["Code"] == "ValidationException" and "Value" in no_value["Message"]
    not_a_list = error_of(lambda: client.search(Resource="TrainingJob", SearchExpression={
        "NestedFilters": [{"NestedPropertyName": "OutputDataConfig", "Filters": [
            {"Name": "OutputDataConfig.S3OutputPath", "Operator": "Exists"}]}]}))
    assert not_a_list["Code"] == "ValidationException" and "OutputDataConfig" in not_a_list["Message"]
    bad_sort = error_of(lambda: client.search(Resource="TrainingJob", SortBy="Nope"))
    assert bad_sort["Code"] == "ValidationException" and "Nope" in bad_sort["Message"]


SCRIPT = """
import os
print("epoch 1 loss: 0.25", flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("ok")
"""


def test_estimator_register_and_training_job_search(server, unique_name, tmp_path):
    from sagemaker import get_execution_role
    from sagemaker.sklearn.estimator import SKLearn

    session = sdk_session()
    (tmp_path / "train.py").write_text(SCRIPT)
    bucket = session.default_bucket()
    estimator = SKLearn(
        entry_point="train.py", source_dir=str(tmp_path), framework_version="1.2-1",
        role=get_execution_role(session), instance_count=1, instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/{unique_name}/models", sagemaker_session=session,
        code_location=f"s3://{bucket}/{unique_name}/code", hyperparameters={"epochs": 7},
        metric_definitions=[{"Name": "train:loss", "Regex": "loss: ([0-9.]+)"}],
        tags=[{"Key": "search-test", "Value": unique_name}])
    estimator.fit(logs=False)
    job = estimator.latest_training_job.describe()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

    package = estimator.register(
        content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=unique_name, approval_status="Approved")
    client = session.sagemaker_client
    described = client.describe_model_package(ModelPackageName=package.model_package_arn)
    assert described["ModelPackageArn"].endswith(f"{unique_name}/1")
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == \
        job["ModelArtifacts"]["S3ModelArtifacts"]

    mine = {"Name": "Tags.search-test", "Operator": "Equals", "Value": unique_name}
    for spec, hit in (({"Name": "Metrics.train:loss", "Operator": "LessThan", "Value": "0.3"}, True),
                      ({"Name": "Metrics.train:loss", "Operator": "GreaterThan", "Value": "0.3"}, False),
                      ({"Name": "HyperParameters.epochs", "Operator": "GreaterThan", "Value": "5"}, True),
                      ({"Name": "OutputDataConfig.S3OutputPath", "Operator": "Contains",
                        "Value": unique_name}, True)):
        found = search_all(client, "TrainingJob", {"Filters": [mine, spec]}, SortBy="TrainingEndTime")
        assert [item["TrainingJobName"] for item in found] == ([job["TrainingJobName"]] if hit else []), spec
    record = search_all(client, "TrainingJob", {"Filters": [mine]})[0]
    assert record["FinalMetricDataList"][0]["Value"] == pytest.approx(0.25)
    assert record["ModelArtifacts"] == job["ModelArtifacts"]
    assert {"Key": "search-test", "Value": unique_name} in record["Tags"]
    assert isinstance(record["CreationTime"], datetime)


def test_model_register_with_a_model_card_is_found_by_search(server, unique_name):
    from sagemaker import get_execution_role
    from sagemaker.model import Model
    from sagemaker.model_card import ModelPackageModelCard

    session = sdk_session()
    model = Model(image_uri=SKLEARN_IMAGE, model_data="s3://search-models/m0/model.tar.gz",
                  role=get_execution_role(session), sagemaker_session=session)
    card = ModelPackageModelCard(model_card_content={"model_overview": {
        "model_creator": unique_name}}, model_card_status="Draft")
    package = model.register(  # the SDK first Searches for the group, then creates it
        content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=unique_name, model_card=card)
    client = session.sagemaker_client
    found = search_all(client, "ModelPackage", in_group(unique_name, {
        "Name": "ModelCard.ModelCardStatus", "Operator": "Equals", "Value": "Draft"}))
    assert [item["ModelPackageArn"] for item in found] == [package.model_package_arn]
    assert unique_name in found[0]["ModelCard"]["ModelCardContent"]
    groups = search_all(client, "ModelPackageGroup", {"Filters": [
        {"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": unique_name}]})
    assert [group["ModelPackageGroupName"] for group in groups] == [unique_name]
