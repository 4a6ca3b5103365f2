"""Follow-ups on events and scaling, against one real server:

- a tuning job's status changes reach EventBridge as "SageMaker HyperParameter Tuning Job
  State Change" with DescribeHyperParameterTuningJob's detail, and its trials' training
  jobs carry TuningJobArn from their creation (their first state-change event has it),
  which no client request can set;
- Application Auto Scaling and endpoints: UpdateEndpoint may not retype or remove a scaled
  variant (it may change its model), and DeleteEndpoint deregisters the endpoint's scalable
  targets with their policies and managed alarms.
"""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from endpoint_helpers import create_endpoint, create_model, variant, wait_in_service
from server_process import ServerProcess
from sns_subscriber import Subscriber
from tuning_helpers import METRIC, ROLE, SCRIPT, definition, wait_tuning

BUCKET = "followups"
NAMESPACE, DIMENSION = "sagemaker", "sagemaker:variant:DesiredInstanceCount"
TUNING_EVENT = "SageMaker HyperParameter Tuning Job State Change"
TRAINING_EVENT = "SageMaker Training Job State Change"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess.start(tmp_path_factory.mktemp("followups"))
    process.client("s3").create_bucket(Bucket=BUCKET)
    yield process
    process.stop()


def wait_until(what: str, check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def source_dir(s3, key: str) -> str:
    """The tuning helpers' trainer as a sourcedir.tar.gz in S3; its URI."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    return f"s3://{BUCKET}/{key}"


def subscribed_topic(server, name: str, endpoint: Subscriber) -> str:
    sns = server.client("sns")
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint.url)
    (confirmation,) = endpoint.wait_for("SubscriptionConfirmation")
    sns.confirm_subscription(TopicArn=topic, Token=confirmation.json["Token"])
    return topic


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


# --- tuning job events and TuningJobArn -------------------------------------------------------


def test_tuning_job_events_and_trials_carry_their_tuning_job_from_creation(server, unique_name):
    sagemaker, events, s3 = (server.client(name) for name in ("sagemaker", "events", "s3"))
    code = source_dir(s3, f"{unique_name}/sourcedir.tar.gz")
    name = unique_name[-32:].strip("-")
    tuning_arn = f"arn:aws:sagemaker:us-east-1:{_account(server)}:" \
                 f"hyper-parameter-tuning-job/{name}"
    with Subscriber() as endpoint:
        topic = subscribed_topic(server, unique_name, endpoint)
        events.put_rule(Name=f"{unique_name}-tuning", EventPattern=json.dumps({
            "source": ["aws.sagemaker"], "detail-type": [TUNING_EVENT],
            "detail": {"HyperParameterTuningJobName": [name]}}))
        events.put_targets(Rule=f"{unique_name}-tuning", Targets=[{"Id": "t", "Arn": topic}])
        # Matches only if the training job's creation event already names its tuning job.
        events.put_rule(Name=f"{unique_name}-trial", EventPattern=json.dumps({
            "source": ["aws.sagemaker"], "detail-type": [TRAINING_EVENT],
            "detail": {"TuningJobArn": [tuning_arn], "TrainingJobStatus": ["InProgress"]}}))
        events.put_targets(Rule=f"{unique_name}-trial", Targets=[{"Id": "t", "Arn": topic}])

        created = sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name,
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "score"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
                "ParameterRanges": {"ContinuousParameterRanges": [
                    {"Name": "quality", "MinValue": "0.1", "MaxValue": "0.9"}]}},
            TrainingJobDefinition=definition(
                StaticHyperParameters={"sagemaker_program": '"train.py"',
                                       "sagemaker_submit_directory": f'"{code}"'},
                OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/out"}),
            Tags=[{"Key": "team", "Value": "ml"}])
        assert created["HyperParameterTuningJobArn"] == tuning_arn
        described = wait_tuning(sagemaker, name)
        assert described["HyperParameterTuningJobStatus"] == "Completed", described

        def delivered(kind: str) -> list[dict]:
            found = [json.loads(item.json["Message"]) for item in endpoint.of_type("Notification")]
            return [event for event in found if event["detail-type"] == kind]

        def statuses() -> list[str]:
            return [event["detail"]["HyperParameterTuningJobStatus"]
                    for event in delivered(TUNING_EVENT)]

        # Deliveries run on a pool and may arrive out of order: wait for both.
        wait_until("the tuning job's InProgress and Completed events",
                   lambda: {"InProgress", "Completed"} <= set(statuses()))
        (completed,) = [event for event in delivered(TUNING_EVENT)
                        if event["detail"]["HyperParameterTuningJobStatus"] == "Completed"]
        assert completed["source"] == "aws.sagemaker" and completed["resources"] == [tuning_arn]
        detail = completed["detail"]
        assert (detail["HyperParameterTuningJobName"], detail["HyperParameterTuningJobArn"]) \
            == (name, tuning_arn)
        assert detail["TrainingJobStatusCounters"]["Completed"] == 1
        assert detail["ObjectiveStatusCounters"]["Succeeded"] == 1
        assert detail["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"] \
            == METRIC
        assert detail["HyperParameterTuningJobConfig"]["Strategy"] == "Random"
        assert detail["Tags"] == {"team": "ml"}
        assert detail["BestTrainingJob"]["TrainingJobName"] == \
            described["BestTrainingJob"]["TrainingJobName"]
        assert isinstance(detail["CreationTime"], int) and detail["CreationTime"] > 1e12  # ms
        assert not any(key.startswith("_") for key in detail)

        trial = described["BestTrainingJob"]["TrainingJobName"]
        (first,) = wait_until("the trial's creation event", lambda: delivered(TRAINING_EVENT))
        assert first["detail"]["TrainingJobName"] == trial
        assert first["detail"]["TuningJobArn"] == tuning_arn
    assert sagemaker.describe_training_job(TrainingJobName=trial)["TuningJobArn"] == tuning_arn

    # A client cannot claim a tuning job for its own training job, even past the SDK's checks.
    own = f"{unique_name}-own"[-63:]

    def smuggle(request, **_) -> None:
        body = json.loads(request.body)
        body["TuningJobArn"] = tuning_arn
        request.data = json.dumps(body).encode()

    sagemaker.meta.events.register("before-sign.sagemaker.CreateTrainingJob", smuggle)
    sagemaker.create_training_job(
        TrainingJobName=own, RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": definition()["AlgorithmSpecification"][
            "TrainingImage"], "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": '"train.py"',
                         "sagemaker_submit_directory": f'"{code}"'},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    sagemaker.meta.events.unregister("before-sign.sagemaker.CreateTrainingJob", smuggle)
    assert "TuningJobArn" not in sagemaker.describe_training_job(TrainingJobName=own)
    sagemaker.stop_training_job(TrainingJobName=own)


def _account(server) -> str:
    return server.client("sts").get_caller_identity()["Account"]


# --- Application Auto Scaling and endpoint updates / deletion ---------------------------------


def test_scaled_variants_refuse_retyping_and_removal_and_deletion_deregisters(server,
                                                                              unique_name):
    sagemaker, s3, aas, cloudwatch = (server.client(name) for name in (
        "sagemaker", "s3", "application-autoscaling", "cloudwatch"))
    first = create_model(sagemaker, s3, BUCKET, f"{unique_name}-m1", 2)
    second = create_model(sagemaker, s3, BUCKET, f"{unique_name}-m2", 3)
    endpoint = unique_name
    create_endpoint(sagemaker, endpoint, [variant("AllTraffic", first, 1.0)])
    resource_id = f"endpoint/{endpoint}/variant/AllTraffic"
    target = {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id,
              "ScalableDimension": DIMENSION}
    aas.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    policy = aas.put_scaling_policy(
        PolicyName="per-instance", PolicyType="TargetTrackingScaling", **target,
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 100.0, "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    alarm_names = [item["AlarmName"] for item in policy["Alarms"]]
    assert alarm_names and len(cloudwatch.describe_alarms(AlarmNames=alarm_names)[
        "MetricAlarms"]) == len(alarm_names)

    def config(name: str, **changes) -> str:
        item = {**variant("AllTraffic", first, 1.0), **changes}
        sagemaker.create_endpoint_config(EndpointConfigName=f"{endpoint}-{name}",
                                         ProductionVariants=[item])
        return f"{endpoint}-{name}"

    code, message = error_of(sagemaker.update_endpoint, EndpointName=endpoint,
                             EndpointConfigName=config("bigger", InstanceType="ml.m5.xlarge"))
    assert code == "ValidationException"
    assert "ml.m5.large -> ml.m5.xlarge" in message and "DeregisterScalableTarget" in message
    assert resource_id in message
    code, message = error_of(sagemaker.update_endpoint, EndpointName=endpoint,
                             EndpointConfigName=config("renamed", VariantName="Other"))
    assert code == "ValidationException" and "removes the variant(s) ['AllTraffic']" in message
    assert sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"

    # A new model for the scaled variant is allowed.
    sagemaker.update_endpoint(EndpointName=endpoint,
                              EndpointConfigName=config("new-model", ModelName=second))
    assert wait_in_service(sagemaker, endpoint)["EndpointConfigName"] == f"{endpoint}-new-model"
    assert aas.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[resource_id])[
        "ScalableTargets"]

    # Deleting the endpoint deregisters its variants, their policies and managed alarms.
    sagemaker.delete_endpoint(EndpointName=endpoint)
    assert aas.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[resource_id])[
        "ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace=NAMESPACE, ResourceId=resource_id)[
        "ScalingPolicies"] == []
    assert cloudwatch.describe_alarms(AlarmNames=alarm_names)["MetricAlarms"] == []
    code, _ = error_of(aas.deregister_scalable_target, **target)
    assert code == "ObjectNotFoundException"
