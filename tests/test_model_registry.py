"""The model registry and models: versions, approval, listing, models made from packages.

Driven through boto3 and the SageMaker SDK against the real server; every error path also
checks that what was stored before is still there, unchanged.
"""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import SKLEARN_IMAGE, sdk_session

MODEL_DATA = "s3://registry-models/tickets/model.tar.gz"


def error_of(call) -> dict:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]


def inference_specification(model_data: str = MODEL_DATA, image: str = SKLEARN_IMAGE) -> dict:
    return {
        "Containers": [{"Image": image, "ModelDataUrl": model_data,
                        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
    }


def register(client, group: str, **extra) -> str:
    return client.create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=inference_specification(),
        **extra)["ModelPackageArn"]


def versions_in(client, group: str) -> list[int]:
    paginator = client.get_paginator("list_model_packages")
    return sorted(item["ModelPackageVersion"]
                  for page in paginator.paginate(ModelPackageGroupName=group)
                  for item in page["ModelPackageSummaryList"])


def test_versions_are_numbered_per_group_and_described(sagemaker_client, unique_name):
    client = sagemaker_client
    group = unique_name
    client.create_model_package_group(ModelPackageGroupName=group)
    metrics = {"ModelQuality": {"Statistics": {
        "ContentType": "application/json", "S3Uri": "s3://registry-models/evaluation.json"}}}
    arns = [register(client, group, ModelPackageDescription=f"run {index}",
                     ModelMetrics=metrics, CustomerMetadataProperties={"run": str(index)},
                     Domain="NATURAL_LANGUAGE_PROCESSING", Task="CLASSIFICATION",
                     SamplePayloadUrl="s3://registry-models/payload.tar.gz",
                     MetadataProperties={"CommitId": "abc123"},
                     DriftCheckBaselines={"ModelQuality": {"Constraints": {
                         "ContentType": "application/json",
                         "S3Uri": "s3://registry-models/constraints.json"}}})
            for index in range(3)]
    assert [arn.rsplit(":", 1)[1] for arn in arns] == [
        f"model-package/{group}/{version}" for version in (1, 2, 3)]

    described = client.describe_model_package(ModelPackageName=arns[1])
    assert described["ModelPackageGroupName"] == group
    assert described["ModelPackageName"] == group
    assert described["ModelPackageVersion"] == 2
    assert described["ModelPackageStatus"] == "Completed"
    assert described["ModelPackageStatusDetails"]["ValidationStatuses"] == []
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["CreatedBy"]["IamIdentity"]["Arn"].endswith("/ModelyardExecutionRole/modelyard")
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == MODEL_DATA
    assert described["ModelMetrics"] == metrics
    assert described["CustomerMetadataProperties"] == {"run": "1"}
    assert (described["Domain"], described["Task"]) == ("NATURAL_LANGUAGE_PROCESSING",
                                                        "CLASSIFICATION")
    assert described["MetadataProperties"] == {"CommitId": "abc123"}
    assert "ModelQuality" in described["DriftCheckBaselines"]
    assert "LastModifiedTime" not in described  # nothing changed it yet
    # "<group>/<version>" addresses a version too, as the API's name pattern allows.
    assert client.describe_model_package(
        ModelPackageName=f"{group}/3")["ModelPackageArn"] == arns[2]


def test_concurrent_creates_get_distinct_versions_without_gaps(server, unique_name):
    group = unique_name
    server.client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
    results, errors = [], []

    def create() -> None:
        try:
            results.append(register(server.client("sagemaker"), group))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(int(arn.rsplit("/", 1)[1]) for arn in results) == [1, 2, 3, 4, 5]
    assert versions_in(server.client("sagemaker"), group) == [1, 2, 3, 4, 5]


def test_client_token_makes_create_idempotent(sagemaker_client, unique_name):
    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    first = register(client, unique_name, ClientToken="retry-token-1")
    again = register(client, unique_name, ClientToken="retry-token-1")
    other = register(client, unique_name, ClientToken="retry-token-2")
    assert first == again
    assert other.endswith("/2")
    assert versions_in(client, unique_name) == [1, 2]


def test_approval_is_recorded_with_who_when_and_why(sagemaker_client, unique_name):
    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    arn = register(client, unique_name,
                   CustomerMetadataProperties={"dataset": "tickets-v1", "owner": "support"})
    created = client.describe_model_package(ModelPackageName=arn)["CreationTime"]
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                ApprovalDescription="accuracy 0.91 on holdout",
                                CustomerMetadataProperties={"dataset": "tickets-v2"},
                                CustomerMetadataPropertiesToRemove=["owner"])
    described = client.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "accuracy 0.91 on holdout"
    assert described["LastModifiedTime"] >= created
    assert described["LastModifiedBy"]["IamIdentity"]["Arn"].endswith(
        ":assumed-role/ModelyardExecutionRole/modelyard")
    assert described["CustomerMetadataProperties"] == {"dataset": "tickets-v2"}

    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    rejected = client.describe_model_package(ModelPackageName=arn)
    assert rejected["ModelApprovalStatus"] == "Rejected"
    assert "ApprovalDescription" not in rejected  # it explained the previous decision


def test_list_filters_sort_and_paginate(sagemaker_client, unique_name):
    client = sagemaker_client
    group, other = unique_name, f"{unique_name}-other"
    for name in (group, other):
        client.create_model_package_group(ModelPackageGroupName=name)
    before = time.time() - 1
    arns = [register(client, group) for _ in range(4)]
    register(client, other)
    loose = client.create_model_package(
        ModelPackageName=f"{unique_name}-loose",
        InferenceSpecification=inference_specification())["ModelPackageArn"]
    for arn in (arns[0], arns[2]):
        client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")

    def listed(**kwargs) -> list[str]:
        pages = client.get_paginator("list_model_packages").paginate(**kwargs)
        return [item["ModelPackageArn"] for page in pages
                for item in page["ModelPackageSummaryList"]]

    assert listed(ModelPackageGroupName=group) == arns  # ascending by default
    assert listed(ModelPackageGroupName=group, SortOrder="Descending") == arns[::-1]
    latest_approved = client.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved",
        SortBy="CreationTime", SortOrder="Descending")["ModelPackageSummaryList"][0]
    assert latest_approved["ModelPackageArn"] == arns[2]
    assert latest_approved["ModelPackageVersion"] == 3
    page = client.list_model_packages(ModelPackageGroupName=group, MaxResults=3)
    assert len(page["ModelPackageSummaryList"]) == 3 and page["NextToken"]
    assert listed(ModelPackageGroupName=group, PaginationConfig={"PageSize": 1}) == arns
    assert listed(ModelPackageGroupName=group, CreationTimeBefore=before) == []
    assert listed(ModelPackageGroupName=f"{group}-missing") == []

    # Without a group, SageMaker lists unversioned packages unless told otherwise.
    assert listed(NameContains=unique_name) == [loose]
    versioned = listed(NameContains=unique_name, ModelPackageType="Versioned")
    assert len(versioned) == 5 and loose not in versioned
    assert len(listed(NameContains=unique_name, ModelPackageType="Both")) == 6
    assert len(listed(NameContains=f"{unique_name}-other", ModelPackageType="Both")) == 1
    by_name = listed(NameContains=unique_name, ModelPackageType="Both", SortBy="Name")
    other_arn = f"{arns[0].rsplit('/', 2)[0]}/{unique_name}-other/1"
    assert by_name.index(loose) < by_name.index(other_arn)  # "...-loose" < "...-other"
    assert [arn for arn in by_name if arn in arns] == arns


def test_model_from_a_package_resolves_its_containers(sagemaker_client, unique_name):
    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    arn = register(client, unique_name)
    role = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
    client.create_model(ModelName=unique_name, ExecutionRoleArn=role,
                        Containers=[{"ModelPackageName": arn,
                                     "Environment": {"LOG_LEVEL": "debug"}}],
                        Tags=[{"Key": "team", "Value": "support"}])
    described = client.describe_model(ModelName=unique_name)
    container = described["PrimaryContainer"]
    assert container["Image"] == SKLEARN_IMAGE
    assert container["ModelDataUrl"] == MODEL_DATA
    assert container["ModelPackageName"] == arn
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py", "LOG_LEVEL": "debug"}
    assert container["Mode"] == "SingleModel"
    assert described["ExecutionRoleArn"] == role
    assert described["EnableNetworkIsolation"] is False
    model_arn = described["ModelArn"]
    assert model_arn.endswith(f":model/{unique_name}")

    # Tags by ARN, on the model and on the group.
    assert client.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "team", "Value": "support"}]
    client.add_tags(ResourceArn=model_arn, Tags=[{"Key": "stage", "Value": "prod"},
                                                 {"Key": "team", "Value": "l2"}])
    client.delete_tags(ResourceArn=model_arn, TagKeys=["stage"])
    assert client.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "team", "Value": "l2"}]
    group_arn = client.describe_model_package_group(
        ModelPackageGroupName=unique_name)["ModelPackageGroupArn"]
    client.add_tags(ResourceArn=group_arn, Tags=[{"Key": "domain", "Value": "tickets"}])
    assert client.list_tags(ResourceArn=group_arn)["Tags"] == [{"Key": "domain", "Value": "tickets"}]

    listed = client.list_models(NameContains=unique_name)["Models"]
    assert [item["ModelName"] for item in listed] == [unique_name]
    client.delete_model(ModelName=unique_name)
    missing = error_of(lambda: client.describe_model(ModelName=unique_name))
    assert missing["Code"] == "ValidationException"
    assert f'Could not find model "{model_arn}"' in missing["Message"]


def test_models_list_sort_and_paginate(sagemaker_client, unique_name):
    client = sagemaker_client
    names = [f"{unique_name}-{index}" for index in range(3)]
    for name in names:
        client.create_model(ModelName=name, PrimaryContainer={
            "Image": "registry.example.com/custom/server:1", "ModelDataUrl": MODEL_DATA})
    newest_first = client.list_models(NameContains=unique_name)["Models"]
    assert [item["ModelName"] for item in newest_first] == names[::-1]
    pages = client.get_paginator("list_models").paginate(
        NameContains=unique_name, SortBy="Name", SortOrder="Ascending",
        PaginationConfig={"PageSize": 2})
    assert [item["ModelName"] for page in pages for item in page["Models"]] == names
    # Any image is accepted and recorded; serving it is the hosting layer's concern.
    assert client.describe_model(ModelName=names[0])["PrimaryContainer"]["Image"] == \
        "registry.example.com/custom/server:1"


def test_sdk_register_approve_and_create_model_from_package(server, unique_name):
    import sagemaker
    from sagemaker import get_execution_role
    from sagemaker.model import Model
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.session import _deployment_entity_exists

    session = sdk_session()
    role = get_execution_role(session)
    metrics = ModelMetrics(model_statistics=MetricsSource(
        s3_uri="s3://registry-models/evaluation.json", content_type="application/json"))
    model = Model(image_uri=SKLEARN_IMAGE, model_data=MODEL_DATA, role=role,
                  sagemaker_session=session)
    packages = [model.register(
        content_types=["application/json"], response_types=["application/json"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=unique_name, approval_status="PendingManualApproval",
        model_metrics=metrics, customer_metadata_properties={"run": str(index)})
        for index in range(2)]  # the first call also creates the group, as the SDK does
    client = session.sagemaker_client
    assert [package.model_package_arn.rsplit("/", 1)[1] for package in packages] == ["1", "2"]
    described = client.describe_model_package(ModelPackageName=packages[1].model_package_arn)
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == \
        "s3://registry-models/evaluation.json"
    assert described["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] == \
        ["ml.m5.large"]

    client.update_model_package(ModelPackageArn=packages[0].model_package_arn,
                                ModelApprovalStatus="Approved", ApprovalDescription="ok")
    latest = client.list_model_packages(
        ModelPackageGroupName=unique_name, ModelApprovalStatus="Approved",
        SortBy="CreationTime", SortOrder="Descending")["ModelPackageSummaryList"][0]
    assert latest["ModelPackageArn"] == packages[0].model_package_arn
    found = session.get_most_recently_created_approved_model_package(unique_name)
    assert found.model_package_arn == packages[0].model_package_arn

    from_package = sagemaker.ModelPackage(role, model_package_arn=latest["ModelPackageArn"],
                                          sagemaker_session=session)
    from_package.create()
    container = client.describe_model(ModelName=from_package.name)["PrimaryContainer"]
    assert (container["Image"], container["ModelDataUrl"]) == (SKLEARN_IMAGE, MODEL_DATA)

    plain = Model(image_uri=SKLEARN_IMAGE, model_data=MODEL_DATA, role=role,
                  sagemaker_session=session, name=f"{unique_name}-plain")
    plain.create()
    assert client.describe_model(ModelName=plain.name)["PrimaryContainer"]["ModelDataUrl"] == \
        MODEL_DATA
    plain.create()  # the SDK treats "Cannot create already existing model" as done
    for name in (from_package.name, plain.name):
        session.delete_model(name)
        assert not _deployment_entity_exists(lambda: client.describe_model(ModelName=name))


def test_error_paths_leave_stored_state_intact(server, sagemaker_client, unique_name):
    client = sagemaker_client
    group = unique_name
    missing_group = error_of(lambda: register(client, f"{group}-nowhere"))
    assert missing_group == {**missing_group, "Code": "ValidationException",
                             "Message": "Model Package Group does not exist."}
    assert error_of(lambda: client.describe_model_package_group(
        ModelPackageGroupName=f"{group}-nowhere"))["Code"] == "ValidationException"

    client.create_model_package_group(ModelPackageGroupName=group)
    arn = register(client, group)
    tagged = error_of(lambda: register(client, group, Tags=[{"Key": "k", "Value": "v"}]))
    assert "Tags cannot be set on a versioned model package" in tagged["Message"]

    not_empty = error_of(lambda: client.delete_model_package_group(ModelPackageGroupName=group))
    assert not_empty["Code"] == "ConflictException"
    assert group in not_empty["Message"] and "DeleteModelPackage" in not_empty["Message"]
    assert client.describe_model_package_group(ModelPackageGroupName=group)

    bad_status = error_of(lambda: server.client("sagemaker", parameter_validation=False)
                          .update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Maybe"))
    assert bad_status["Code"] == "ValidationException"
    assert "'Maybe' at 'modelApprovalStatus'" in bad_status["Message"]
    assert client.describe_model_package(
        ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"

    missing_package = error_of(lambda: client.describe_model_package(ModelPackageName=f"{arn}9"))
    assert missing_package["Code"] == "ValidationException"
    assert f"{arn}9 does not exist" in missing_package["Message"]
    by_group_name = error_of(lambda: client.describe_model_package(ModelPackageName=group))
    assert "address one of its versions by ARN" in by_group_name["Message"]
    assert error_of(lambda: client.delete_model_package(
        ModelPackageName=f"{arn}9"))["Code"] == "ValidationException"

    model_name = f"{unique_name}-model"
    no_package = error_of(lambda: client.create_model(
        ModelName=model_name, Containers=[{"ModelPackageName": f"{arn}9"}]))
    assert no_package["Code"] == "ValidationException"
    assert f"ModelPackage {arn}9 does not exist" in no_package["Message"]
    assert "Could not find model" in error_of(
        lambda: client.describe_model(ModelName=model_name))["Message"]
    assert "Could not find model" in error_of(
        lambda: client.delete_model(ModelName=model_name))["Message"]

    client.create_model(ModelName=model_name, PrimaryContainer={"ModelPackageName": arn})
    duplicate = error_of(lambda: client.create_model(
        ModelName=model_name, PrimaryContainer={"Image": "other:1"}))
    assert "Cannot create already existing model" in duplicate["Message"]
    assert client.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelPackageName"] == arn

    # The model keeps its resolved containers after the package goes, and the group empties.
    client.delete_model_package(ModelPackageName=arn)
    assert client.describe_model(ModelName=model_name)["PrimaryContainer"]["Image"] == SKLEARN_IMAGE
    client.delete_model_package_group(ModelPackageGroupName=group)
    client.create_model_package_group(ModelPackageGroupName=group)
    assert register(client, group).endswith(f"{group}/1")  # a new group counts from 1


# --- model cards on packages (UpdateModelPackage merges ModelCard) ----------------------------


def card_of(client, arn: str) -> dict:
    return client.describe_model_package(ModelPackageName=arn)["ModelCard"]


def test_model_card_update_merges_content_and_status(sagemaker_client, unique_name):
    import json

    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    first = json.dumps({"model_overview": {"model_creator": "support-ml"}})
    arn = register(client, unique_name,
                   ModelCard={"ModelCardContent": first, "ModelCardStatus": "Draft"})

    second = json.dumps({"model_overview": {"model_creator": "support-ml-v2"}})
    client.update_model_package(ModelPackageArn=arn, ModelCard={"ModelCardContent": second})
    assert card_of(client, arn) == {"ModelCardContent": second, "ModelCardStatus": "Draft"}

    client.update_model_package(ModelPackageArn=arn, ModelCard={"ModelCardStatus": "PendingReview"})
    assert card_of(client, arn) == {"ModelCardContent": second, "ModelCardStatus": "PendingReview"}

    # Members that are whole values still replace: ModelLifeCycle names its stage each time.
    client.update_model_package(ModelPackageArn=arn, ModelLifeCycle={
        "Stage": "Development", "StageStatus": "Approved", "StageDescription": "first"})
    client.update_model_package(ModelPackageArn=arn, ModelLifeCycle={
        "Stage": "Production", "StageStatus": "InProgress"})
    described = client.describe_model_package(ModelPackageName=arn)
    assert described["ModelLifeCycle"] == {"Stage": "Production", "StageStatus": "InProgress"}
    assert described["ModelCard"]["ModelCardStatus"] == "PendingReview"


def test_sdk_update_model_card_keeps_the_cards_status(server, unique_name):
    import sagemaker
    from sagemaker.model_card import ModelPackageModelCard

    session = sdk_session()
    client = session.sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    arn = register(client, unique_name, ModelCard={
        "ModelCardContent": '{"model_overview": {"model_creator": "a"}}',
        "ModelCardStatus": "Approved"})
    package = sagemaker.ModelPackage(role="arn:aws:iam::123456789012:role/ModelyardExecutionRole",
                                     model_package_arn=arn, sagemaker_session=session)
    # Same status, new content: the SDK sends ModelCard={"ModelCardContent": ...} only.
    package.update_model_card(ModelPackageModelCard(
        model_card_content={"model_overview": {"model_creator": "b"}},
        model_card_status="Approved"))
    card = card_of(client, arn)
    assert card["ModelCardStatus"] == "Approved"
    assert '"b"' in card["ModelCardContent"]


# --- SourceUri: packages registered from a model package or a model ---------------------------


def test_source_uri_model_package_arn_fills_the_inference_specification(
        sagemaker_client, unique_name):
    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    source = register(client, unique_name)
    copied = client.create_model_package(ModelPackageGroupName=unique_name,
                                         SourceUri=source)["ModelPackageArn"]
    described = client.describe_model_package(ModelPackageName=copied)
    assert described["SourceUri"] == source
    assert described["InferenceSpecification"] == inference_specification()
    # The copy is a package like any other: a model can be made from it.
    client.create_model(ModelName=unique_name, PrimaryContainer={"ModelPackageName": copied})
    container = client.describe_model(ModelName=unique_name)["PrimaryContainer"]
    assert (container["Image"], container["ModelDataUrl"]) == (SKLEARN_IMAGE, MODEL_DATA)


def test_source_uri_model_arn_fills_the_containers_from_the_model(sagemaker_client, unique_name):
    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    model_arn = client.create_model(
        ModelName=unique_name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": MODEL_DATA,
                          "Environment": {"SAGEMAKER_PROGRAM": "serve.py"}})["ModelArn"]
    arn = client.create_model_package(ModelPackageGroupName=unique_name,
                                      SourceUri=model_arn)["ModelPackageArn"]
    described = client.describe_model_package(ModelPackageName=arn)
    assert described["SourceUri"] == model_arn
    assert described["InferenceSpecification"] == {"Containers": [{
        "Image": SKLEARN_IMAGE, "ModelDataUrl": MODEL_DATA,
        "Environment": {"SAGEMAKER_PROGRAM": "serve.py"}}]}


def test_source_uri_elsewhere_is_stored_as_given(sagemaker_client, unique_name):
    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    uri = "s3://registry-models/exported/model.tar.gz"
    bare = client.create_model_package(ModelPackageGroupName=unique_name,
                                       SourceUri=uri)["ModelPackageArn"]
    described = client.describe_model_package(ModelPackageName=bare)
    assert described["SourceUri"] == uri
    assert "InferenceSpecification" not in described  # nothing to copy it from


def test_source_uri_errors_leave_the_group_empty(sagemaker_client, unique_name):
    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    source = register(client, unique_name)
    both = error_of(lambda: client.create_model_package(
        ModelPackageGroupName=unique_name, SourceUri=source,
        InferenceSpecification=inference_specification()))
    assert both["Code"] == "ValidationException"
    assert "InferenceSpecification" in both["Message"] and "SourceUri" in both["Message"]
    missing_model = source.replace(f"model-package/{unique_name.lower()}/1",
                                   f"model/{unique_name}-gone")
    gone = error_of(lambda: client.create_model_package(
        ModelPackageGroupName=unique_name, SourceUri=missing_model))
    assert gone["Code"] == "ValidationException"
    assert missing_model in gone["Message"] and "does not exist" in gone["Message"]
    gone_package = error_of(lambda: client.create_model_package(
        ModelPackageGroupName=unique_name, SourceUri=f"{source}9"))
    assert f"{source}9" in gone_package["Message"]
    assert versions_in(client, unique_name) == [1]


def test_sdk_register_with_source_uri(server, unique_name):
    from sagemaker import get_execution_role
    from sagemaker.model import Model

    session = sdk_session()
    client = session.sagemaker_client
    role = get_execution_role(session)
    source_model = client.create_model(
        ModelName=unique_name, ExecutionRoleArn=role,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": MODEL_DATA})["ModelArn"]
    # The SDK drops its own containers when SourceUri names a model: they come from there.
    other = Model(image_uri="registry.example.com/other/server:2",
                  model_data="s3://registry-models/other/model.tar.gz", role=role,
                  sagemaker_session=session)
    from_model = other.register(
        content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=unique_name, source_uri=source_model)
    described = client.describe_model_package(ModelPackageName=from_model.model_package_arn)
    assert described["SourceUri"] == source_model
    assert described["InferenceSpecification"]["Containers"][0]["Image"] == SKLEARN_IMAGE

    # Any other URI: the SDK creates with its containers, then sets SourceUri by update,
    # which must keep the inference specification.
    exported = "s3://registry-models/exported/model.tar.gz"
    from_s3 = other.register(
        content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=unique_name, source_uri=exported)
    described = client.describe_model_package(ModelPackageName=from_s3.model_package_arn)
    assert described["SourceUri"] == exported
    assert described["InferenceSpecification"]["Containers"][0]["Image"] == \
        "registry.example.com/other/server:2"
