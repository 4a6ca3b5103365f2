"""Endpoints: the control plane (configs, endpoints, updates, deletes) and the controller
that runs their model servers, checked through boto3, the SageMaker SDK, CloudWatch Logs
and the processes themselves."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, WaiterError

from jobs_helpers import fasttext_lines, sdk_session, wait_for_status
from server_process import ServerProcess

REGION = "us-east-1"
BLAZINGTEXT_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1"
# No framework version in the tag: served on modelyard's own scikit-learn.
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:latest"
READY = "modelyard model server ready on "


@pytest.fixture(scope="module")
def blazingtext_model(server) -> str:
    """The S3 URI of a small BlazingText classifier trained by a real training job."""
    client = server.client("sagemaker")
    s3 = server.client("s3")
    bucket = "endpoint-tests"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="bt/train/train.txt", Body=fasttext_lines(300, 1).encode())
    name = f"endpoints-bt-{int(time.time())}"
    client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": BLAZINGTEXT_IMAGE, "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{server_account(server)}:role/SageMakerRole",
        HyperParameters={"mode": "supervised", "epochs": "10", "learning_rate": "0.5",
                         "buckets": "10000"},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/bt/train"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/bt/models"},
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    job = wait_for_status(lambda: client.describe_training_job(TrainingJobName=name),
                          "TrainingJobStatus", {"Completed", "Failed", "Stopped"}, timeout=300)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job["ModelArtifacts"]["S3ModelArtifacts"]


def server_account(server) -> str:
    return server.client("sts").get_caller_identity()["Account"]


def tarball(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_model(client, name: str, image: str, data_url: str | None, **environment: str) -> None:
    container = {"Image": image, "Environment": environment}
    if data_url:
        container["ModelDataUrl"] = data_url
    client.create_model(ModelName=name, PrimaryContainer=container,
                        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole")


def make_config(client, name: str, *variants: tuple[str, str, float, int], **extra) -> None:
    client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": variant, "ModelName": model, "InitialVariantWeight": weight,
         "InitialInstanceCount": count, "InstanceType": "ml.m5.large"}
        for variant, model, weight, count in variants], **extra)


def wait_in_service(client, name: str) -> dict:
    description = wait_for_status(lambda: client.describe_endpoint(EndpointName=name),
                                  "EndpointStatus", {"InService", "Failed"}, timeout=180)
    assert description["EndpointStatus"] == "InService", description.get("FailureReason")
    return description


def error_of(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def log_lines(server, endpoint: str) -> dict[str, list[str]]:
    logs = server.client("logs")
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    return {stream["logStreamName"]: [event["message"] for event in logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)["events"]]
        for stream in streams}


def instance_urls(server, endpoint: str) -> dict[str, str]:
    """Stream name -> the URL its model server printed in its ready line."""
    urls = {}
    for stream, lines in log_lines(server, endpoint).items():
        ready = [line for line in lines if line.startswith(READY)]
        if ready:
            urls[stream] = ready[-1][len(READY):].strip()
    return urls


def classify(url: str, text: str) -> str:
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps({"instances": [text]}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())[0]["label"][0]


def model_server_pids(data_dir: Path, endpoint: str) -> set[int]:
    """The sandbox launchers of the endpoint's instances and every process under them."""
    marker = f"{data_dir}/endpoints/{endpoint.lower()}/".encode()
    parents: dict[int, int] = {}
    roots = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if marker in cmdline:
            roots.add(int(entry.name))
    found, added = set(roots), True
    while added:
        added = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                added = True
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- configs and errors ----------------------------------------------------------------------


def test_endpoint_config_round_trip_and_refusals(server, sagemaker_client, unique_name):
    client = sagemaker_client
    model = f"{unique_name}-m"
    make_model(client, model, BLAZINGTEXT_IMAGE, "s3://nowhere/model.tar.gz")
    config = f"{unique_name}-c"
    make_config(client, config, ("AllTraffic", model, 1.0, 1),
                DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 50,
                                   "DestinationS3Uri": "s3://b/capture",
                                   "CaptureOptions": [{"CaptureMode": "Input"}]})
    described = client.describe_endpoint_config(EndpointConfigName=config)
    assert described["EndpointConfigArn"].endswith(f":endpoint-config/{config.lower()}")
    assert described["ProductionVariants"][0]["ModelName"] == model
    assert described["ProductionVariants"][0]["InitialVariantWeight"] == 1.0
    assert described["DataCaptureConfig"]["InitialSamplingPercentage"] == 50
    listed = client.list_endpoint_configs(NameContains=unique_name)["EndpointConfigs"]
    assert [item["EndpointConfigName"] for item in listed] == [config]

    code, message = error_of(make_config, client, config, ("AllTraffic", model, 1.0, 1))
    assert code == "ValidationException" and "already existing" in message
    code, message = error_of(make_config, client, f"{unique_name}-x", ("A", "no-such-model", 1.0, 1))
    assert code == "ValidationException" and "Could not find model" in message
    code, message = error_of(client.create_endpoint_config, EndpointConfigName=f"{unique_name}-s",
                             ProductionVariants=[{"VariantName": "A", "ModelName": model,
                                                  "ServerlessConfig": {"MemorySizeInMB": 2048,
                                                                       "MaxConcurrency": 1}}])
    assert code == "ValidationException" and "ServerlessConfig" in message
    code, message = error_of(client.create_endpoint_config, EndpointConfigName=f"{unique_name}-t",
                             ProductionVariants=[{"VariantName": "A", "ModelName": model,
                                                  "InitialInstanceCount": 1,
                                                  "InstanceType": "ml.nonsense.large"}])
    assert code == "ValidationException" and "ml.nonsense.large" in message
    client.create_model(ModelName=f"{unique_name}-pipe", Containers=[
        {"Image": BLAZINGTEXT_IMAGE, "ModelDataUrl": "s3://nowhere/a.tar.gz"},
        {"Image": BLAZINGTEXT_IMAGE, "ModelDataUrl": "s3://nowhere/b.tar.gz"}])
    code, message = error_of(make_config, client, f"{unique_name}-p",
                             ("A", f"{unique_name}-pipe", 1.0, 1))
    assert code == "ValidationException" and "inference pipeline" in message
    code, message = error_of(make_config, client, f"{unique_name}-a", ("A", model, 1.0, 1),
                             AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://b/o"}})
    assert code == "ValidationException" and "AsyncInferenceConfig" in message
    make_model(client, f"{unique_name}-custom", "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1",
               "s3://nowhere/model.tar.gz")
    code, message = error_of(make_config, client, f"{unique_name}-y",
                             ("A", f"{unique_name}-custom", 1.0, 1))
    assert code == "ValidationException" and "mine:1" in message and "Docker" in message

    code, message = error_of(client.create_endpoint, EndpointName=f"{unique_name}-e",
                             EndpointConfigName="no-such-config")
    assert code == "ValidationException" and "Could not find endpoint configuration" in message
    code, message = error_of(client.describe_endpoint, EndpointName="no-such-endpoint")
    assert code == "ValidationException" and "Could not find endpoint" in message
    code, _ = error_of(client.delete_endpoint, EndpointName="no-such-endpoint")
    assert code == "ValidationException"
    # The waiter treats "not found" as deleted.
    client.get_waiter("endpoint_deleted").wait(EndpointName="no-such-endpoint",
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 2})

    client.delete_endpoint_config(EndpointConfigName=config)
    code, message = error_of(client.describe_endpoint_config, EndpointConfigName=config)
    assert code == "ValidationException" and "Could not find endpoint configuration" in message


# --- failures --------------------------------------------------------------------------------


def test_a_model_that_cannot_load_fails_the_endpoint_with_its_reason(server, sagemaker_client,
                                                                       s3, unique_name):
    client = sagemaker_client
    s3.create_bucket(Bucket=unique_name)
    s3.put_object(Bucket=unique_name, Key="bad/model.tar.gz",
                  Body=tarball({"model.bin": b"this is not a fastText model"}))
    make_model(client, f"{unique_name}-bad", BLAZINGTEXT_IMAGE,
               f"s3://{unique_name}/bad/model.tar.gz")
    make_model(client, f"{unique_name}-gone", BLAZINGTEXT_IMAGE,
               f"s3://{unique_name}/missing/model.tar.gz")
    for suffix in ("bad", "gone"):
        make_config(client, f"{unique_name}-{suffix}", ("AllTraffic", f"{unique_name}-{suffix}", 1, 1))
        client.create_endpoint(EndpointName=f"{unique_name}-{suffix}",
                               EndpointConfigName=f"{unique_name}-{suffix}")
    with pytest.raises(WaiterError):
        client.get_waiter("endpoint_in_service").wait(
            EndpointName=f"{unique_name}-bad", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    bad = client.describe_endpoint(EndpointName=f"{unique_name}-bad")
    assert bad["EndpointStatus"] == "Failed"
    assert "ModelError" in bad["FailureReason"], bad["FailureReason"]
    assert "AllTraffic" in bad["FailureReason"]
    streams = log_lines(server, f"{unique_name}-bad")
    assert any(any(line.startswith("ModelError") for line in lines) for lines in streams.values())
    assert all(name.startswith("AllTraffic/i-") for name in streams)

    gone = wait_for_status(lambda: client.describe_endpoint(EndpointName=f"{unique_name}-gone"),
                           "EndpointStatus", {"InService", "Failed"}, timeout=120)
    assert gone["EndpointStatus"] == "Failed"
    assert "model data" in gone["FailureReason"] and "missing/model.tar.gz" in gone["FailureReason"]
    assert not model_server_pids(server.data_dir, f"{unique_name}-bad")

    client.delete_endpoint(EndpointName=f"{unique_name}-bad")
    client.get_waiter("endpoint_deleted").wait(EndpointName=f"{unique_name}-bad",
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_a_model_that_never_passes_ping_fails_after_the_startup_timeout(
        server, sagemaker_client, s3, unique_name):
    client = sagemaker_client
    s3.create_bucket(Bucket=unique_name)
    script = "import time\n\ndef model_fn(model_dir):\n    time.sleep(100000)\n"
    s3.put_object(Bucket=unique_name, Key="slow/model.tar.gz",
                  Body=tarball({"code/inference.py": script}))
    make_model(client, unique_name, SKLEARN_IMAGE, f"s3://{unique_name}/slow/model.tar.gz",
               SAGEMAKER_PROGRAM="inference.py")
    client.create_endpoint_config(EndpointConfigName=unique_name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": unique_name, "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large", "ContainerStartupHealthCheckTimeoutInSeconds": 60}])
    started = time.monotonic()
    client.create_endpoint(EndpointName=unique_name, EndpointConfigName=unique_name)
    described = wait_for_status(lambda: client.describe_endpoint(EndpointName=unique_name),
                                "EndpointStatus", {"InService", "Failed"}, timeout=240)
    assert described["EndpointStatus"] == "Failed"
    assert time.monotonic() - started >= 59
    assert "ping health check within 60 seconds" in described["FailureReason"]
    assert not model_server_pids(server.data_dir, unique_name)


# --- serving, updates, deletes ---------------------------------------------------------------


def test_blazingtext_deploy_serves_logs_updates_and_deletes(server, sagemaker_client,
                                                            blazingtext_model, unique_name):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

    client = sagemaker_client
    session = sdk_session()
    model = Model(image_uri=BLAZINGTEXT_IMAGE, model_data=blazingtext_model,
                  role="arn:aws:iam::123456789012:role/SageMakerRole", sagemaker_session=session)
    model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                 endpoint_name=unique_name, wait=False)
    predictor = Predictor(unique_name, sagemaker_session=session,
                          serializer=JSONSerializer(), deserializer=JSONDeserializer())
    client.get_waiter("endpoint_in_service").wait(
        EndpointName=unique_name, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    described = client.describe_endpoint(EndpointName=unique_name)
    assert described["EndpointStatus"] == "InService"
    [variant] = described["ProductionVariants"]
    assert variant["CurrentWeight"] == variant["DesiredWeight"] == 1.0
    assert variant["CurrentInstanceCount"] == variant["DesiredInstanceCount"] == 1
    assert variant["DeployedImages"][0]["SpecifiedImage"] == BLAZINGTEXT_IMAGE
    assert "FailureReason" not in described
    listed = client.list_endpoints(NameContains=unique_name, StatusEquals="InService")["Endpoints"]
    assert [item["EndpointName"] for item in listed] == [unique_name]

    # Its log stream has the ready line; the model server really serves the trained model.
    [(stream, url)] = instance_urls(server, unique_name).items()
    assert stream.startswith(f"{variant['VariantName']}/i-")
    assert classify(url, "router dhcp lease wifi gateway") == "__label__network"
    pids = model_server_pids(server.data_dir, unique_name)
    assert pids and all(alive(pid) for pid in pids)
    answer = predictor.predict({"instances": ["toner paper jam in the tray"]})
    assert answer[0]["label"] == ["__label__printer"]

    # Update to two instances of a new config while a client keeps invoking: no failure.
    runtime = server.client("sagemaker-runtime")
    failures, calls, stop = [], [0], threading.Event()

    def invoke_loop() -> None:
        while not stop.is_set():
            try:
                body = runtime.invoke_endpoint(
                    EndpointName=unique_name, ContentType="application/json",
                    Body=json.dumps({"instances": ["monitor flicker hdmi"]}))["Body"].read()
                assert json.loads(body)[0]["label"] == ["__label__screen"]
                calls[0] += 1
            except Exception as error:  # noqa: BLE001 - counted, asserted below
                failures.append(repr(error))

    looper = threading.Thread(target=invoke_loop)
    looper.start()
    try:
        model_name = described["EndpointConfigName"]  # the SDK names config and model alike
        make_config(client, f"{unique_name}-v2", ("Blue", client.describe_endpoint_config(
            EndpointConfigName=model_name)["ProductionVariants"][0]["ModelName"], 1.0, 2))
        client.update_endpoint(EndpointName=unique_name, EndpointConfigName=f"{unique_name}-v2")
        assert client.describe_endpoint(EndpointName=unique_name)["EndpointStatus"] == "Updating"
        code, message = error_of(client.update_endpoint, EndpointName=unique_name,
                                 EndpointConfigName=f"{unique_name}-v2")
        assert code == "ValidationException" and "Cannot update in-progress" in message
        updated = wait_in_service(client, unique_name)
        time.sleep(1)
    finally:
        stop.set()
        looper.join()
    assert not failures, failures[:3]
    assert calls[0] > 0
    assert updated["EndpointConfigName"] == f"{unique_name}-v2"
    [blue] = updated["ProductionVariants"]
    assert (blue["VariantName"], blue["CurrentInstanceCount"]) == ("Blue", 2)
    wait_for_gone(pids)  # the old fleet was stopped
    new_pids = model_server_pids(server.data_dir, unique_name)
    assert new_pids and all(alive(pid) for pid in new_pids)

    # Capacity changes live: down to one instance.
    client.update_endpoint_weights_and_capacities(EndpointName=unique_name, DesiredWeightsAndCapacities=[
        {"VariantName": "Blue", "DesiredInstanceCount": 1, "DesiredWeight": 2.0}])
    adjusted = wait_in_service(client, unique_name)
    assert adjusted["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert adjusted["ProductionVariants"][0]["CurrentWeight"] == 2.0
    assert predictor.predict({"instances": ["router dns vpn"]})[0]["label"] == ["__label__network"]

    # Deleting a config in use is allowed (as in SageMaker); the endpoint keeps serving.
    client.delete_endpoint_config(EndpointConfigName=f"{unique_name}-v2")
    predictor.delete_endpoint(delete_endpoint_config=False)
    client.get_waiter("endpoint_deleted").wait(EndpointName=unique_name,
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    wait_for_gone(new_pids)


def test_an_update_whose_fleet_fails_keeps_the_old_fleet_serving(
        server, sagemaker_client, s3, blazingtext_model, unique_name):
    client = sagemaker_client
    s3.create_bucket(Bucket=unique_name)
    s3.put_object(Bucket=unique_name, Key="bad/model.tar.gz", Body=tarball({"model.bin": b"junk"}))
    make_model(client, f"{unique_name}-good", BLAZINGTEXT_IMAGE, blazingtext_model)
    make_model(client, f"{unique_name}-bad", BLAZINGTEXT_IMAGE, f"s3://{unique_name}/bad/model.tar.gz")
    make_config(client, f"{unique_name}-good", ("AllTraffic", f"{unique_name}-good", 1, 1))
    make_config(client, f"{unique_name}-bad", ("AllTraffic", f"{unique_name}-bad", 1, 1))
    client.create_endpoint(EndpointName=unique_name, EndpointConfigName=f"{unique_name}-good")
    wait_in_service(client, unique_name)
    client.update_endpoint(EndpointName=unique_name, EndpointConfigName=f"{unique_name}-bad")
    described = wait_for_status(lambda: client.describe_endpoint(EndpointName=unique_name),
                                "EndpointStatus", {"InService", "Failed"}, timeout=120)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == f"{unique_name}-good"
    assert "ModelError" in described["FailureReason"]
    runtime = server.client("sagemaker-runtime")
    body = runtime.invoke_endpoint(EndpointName=unique_name, ContentType="application/json",
                                   Body=json.dumps({"instances": ["paper jam toner"]}))["Body"]
    assert json.loads(body.read())[0]["label"] == ["__label__printer"]

    # RetainAllVariantProperties keeps the serving weight and count of same-named variants,
    # except what ExcludeRetainedVariantProperties names.
    make_config(client, f"{unique_name}-two", ("AllTraffic", f"{unique_name}-good", 3.0, 2))
    client.update_endpoint(EndpointName=unique_name, EndpointConfigName=f"{unique_name}-two",
                           RetainAllVariantProperties=True)
    [variant] = wait_in_service(client, unique_name)["ProductionVariants"]
    assert (variant["CurrentWeight"], variant["CurrentInstanceCount"]) == (1.0, 1)
    client.update_endpoint(EndpointName=unique_name, EndpointConfigName=f"{unique_name}-two",
                           RetainAllVariantProperties=True, ExcludeRetainedVariantProperties=[
                               {"VariantPropertyType": "DesiredInstanceCount"}])
    described = wait_in_service(client, unique_name)
    [variant] = described["ProductionVariants"]
    assert (variant["CurrentWeight"], variant["CurrentInstanceCount"]) == (1.0, 2)
    assert "FailureReason" not in described  # a successful update clears the old reason
    client.delete_endpoint(EndpointName=unique_name)


def wait_for_gone(pids: set[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.2)


# --- recovery --------------------------------------------------------------------------------


def test_kill_9_leaves_no_model_server_and_the_endpoint_serves_again(tmp_path):
    server = ServerProcess.start(tmp_path / "data")
    try:
        client, s3 = server.client("sagemaker"), server.client("s3")
        s3.create_bucket(Bucket="recovery")
        script = ("import json\n\ndef model_fn(model_dir):\n"
                  "    return open(model_dir + '/answer.txt').read()\n\n"
                  "def transform_fn(model, body, content_type, accept):\n"
                  "    return json.dumps({'answer': model}), 'application/json'\n")
        s3.put_object(Bucket="recovery", Key="m/model.tar.gz",
                      Body=tarball({"code/inference.py": script, "answer.txt": "forty-two"}))
        make_model(client, "answerer", SKLEARN_IMAGE, "s3://recovery/m/model.tar.gz",
                   SAGEMAKER_PROGRAM="inference.py")
        make_config(client, "answerer", ("AllTraffic", "answerer", 1, 1))
        client.create_endpoint(EndpointName="answerer", EndpointConfigName="answerer")
        wait_in_service(client, "answerer")
        pids = model_server_pids(server.data_dir, "answerer")
        assert pids and all(alive(pid) for pid in pids)
    finally:
        server.kill()
    wait_for_gone(pids, timeout=60)  # PR_SET_PDEATHSIG: nothing outlives the server

    restarted = ServerProcess.start(tmp_path / "data", port=server.port)
    try:
        client = restarted.client("sagemaker")
        wait_in_service(client, "answerer")
        fresh = model_server_pids(restarted.data_dir, "answerer")
        assert fresh and not fresh & pids
        body = restarted.client("sagemaker-runtime").invoke_endpoint(
            EndpointName="answerer", ContentType="application/json", Body=b"{}")["Body"].read()
        assert json.loads(body) == {"answer": "forty-two"}
        streams = log_lines(restarted, "answerer")
        assert len(streams) == 2  # one instance before the kill, one after
    finally:
        restarted.stop()
    wait_for_gone(fresh, timeout=60)
    assert os.path.exists(tmp_path / "data")


def test_a_registry_package_deploys_with_data_capture(server, sagemaker_client, blazingtext_model,
                                                      unique_name):
    from sagemaker import ModelPackage

    client = sagemaker_client
    client.create_model_package_group(ModelPackageGroupName=unique_name)
    package = client.create_model_package(
        ModelPackageGroupName=unique_name, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": BLAZINGTEXT_IMAGE,
                                                "ModelDataUrl": blazingtext_model}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
    )["ModelPackageArn"]
    model = ModelPackage(role="arn:aws:iam::123456789012:role/SageMakerRole",
                         model_package_arn=package, sagemaker_session=sdk_session())
    from sagemaker.model_monitor import DataCaptureConfig

    model.deploy(initial_instance_count=1, instance_type="ml.c5.large", endpoint_name=unique_name,
                 wait=False, data_capture_config=DataCaptureConfig(
                     True, 40, f"s3://{unique_name}-capture/data"))
    creating = client.describe_endpoint(EndpointName=unique_name)
    if creating["EndpointStatus"] == "Creating":
        [variant] = creating["ProductionVariants"]
        assert variant["DesiredInstanceCount"] == 1 and "CurrentInstanceCount" not in variant
        assert variant["VariantStatus"][0]["Status"] == "Creating"
    described = wait_in_service(client, unique_name)
    assert described["DataCaptureConfig"]["CurrentSamplingPercentage"] == 40
    assert described["DataCaptureConfig"]["CaptureStatus"] == "Started"
    assert described["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{unique_name}-capture/data"
    [url] = instance_urls(server, unique_name).values()
    assert classify(url, "printer toner cartridge spooler") == "__label__printer"
    client.delete_endpoint(EndpointName=unique_name)
    client.get_waiter("endpoint_deleted").wait(EndpointName=unique_name,
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    assert not model_server_pids(server.data_dir, unique_name)


def test_an_instance_that_dies_is_replaced(server, sagemaker_client, s3, unique_name):
    client = sagemaker_client
    s3.create_bucket(Bucket=unique_name)
    script = ("import json, os\n\ndef model_fn(model_dir):\n    return os.getpid()\n\n"
              "def transform_fn(model, body, content_type, accept):\n"
              "    return json.dumps({'pid': model}), 'application/json'\n")
    s3.put_object(Bucket=unique_name, Key="m/model.tar.gz", Body=tarball({"code/inference.py": script}))
    make_model(client, unique_name, SKLEARN_IMAGE, f"s3://{unique_name}/m/model.tar.gz",
               SAGEMAKER_PROGRAM="inference.py")
    make_config(client, unique_name, ("AllTraffic", unique_name, 1, 1))
    client.create_endpoint(EndpointName=unique_name, EndpointConfigName=unique_name)
    wait_in_service(client, unique_name)
    before = model_server_pids(server.data_dir, unique_name)
    [first_url] = instance_urls(server, unique_name).values()
    servers = [pid for pid in before
               if b"modelyard.runtimes.model_server" in Path(f"/proc/{pid}/cmdline").read_bytes()
               and b"unshare" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert servers
    for pid in servers:
        os.kill(pid, 9)
    runtime = server.client("sagemaker-runtime")
    deadline = time.monotonic() + 180  # a new model server starts: slow on a loaded machine
    while True:
        urls = instance_urls(server, unique_name)
        if len(urls) == 2:
            try:
                runtime.invoke_endpoint(EndpointName=unique_name, ContentType="application/json",
                                        Body=b"{}")
                break
            except ClientError:
                pass
        assert time.monotonic() < deadline, urls
        time.sleep(0.2)
    assert client.describe_endpoint(EndpointName=unique_name)["EndpointStatus"] == "InService"
    assert first_url in urls.values()
    client.delete_endpoint(EndpointName=unique_name)


def test_weights_and_capacities_change_live_on_a_versioned_framework(
        server, sagemaker_client, s3, unique_name):
    client = sagemaker_client
    s3.create_bucket(Bucket=unique_name)
    # Script mode on sagemaker-scikit-learn:1.2-1 runs on scikit-learn 1.2.1's environment.
    script = ("import json, sklearn\n\ndef model_fn(model_dir):\n    return sklearn.__version__\n\n"
              "def transform_fn(model, body, content_type, accept):\n"
              "    return json.dumps({'sklearn': model}), 'application/json'\n")
    s3.put_object(Bucket=unique_name, Key="m/model.tar.gz", Body=tarball({"code/inference.py": script}))
    make_model(client, unique_name, SKLEARN_IMAGE.replace(":latest", ":1.2-1-cpu-py3"),
               f"s3://{unique_name}/m/model.tar.gz", SAGEMAKER_PROGRAM="inference.py")
    make_config(client, unique_name, ("A", unique_name, 1.0, 1), ("B", unique_name, 1.0, 1))
    client.create_endpoint(EndpointName=unique_name, EndpointConfigName=unique_name)
    wait_in_service(client, unique_name)
    runtime = server.client("sagemaker-runtime")

    def invoke() -> tuple[str, dict]:
        answer = runtime.invoke_endpoint(EndpointName=unique_name, ContentType="application/json",
                                         Body=b"{}")
        return answer["InvokedProductionVariant"], json.loads(answer["Body"].read())

    assert invoke()[1] == {"sklearn": "1.2.1"}
    client.update_endpoint_weights_and_capacities(EndpointName=unique_name, DesiredWeightsAndCapacities=[
        {"VariantName": "B", "DesiredWeight": 0.0}, {"VariantName": "A", "DesiredInstanceCount": 2}])
    assert client.describe_endpoint(EndpointName=unique_name)["EndpointStatus"] == "Updating"
    described = wait_in_service(client, unique_name)
    counts = {item["VariantName"]: (item["CurrentWeight"], item["CurrentInstanceCount"])
              for item in described["ProductionVariants"]}
    assert counts == {"A": (1.0, 2), "B": (0.0, 1)}
    assert {invoke()[0] for _ in range(20)} == {"A"}
    assert sorted(stream.split("/")[0] for stream in instance_urls(server, unique_name)) == ["A", "A", "B"]
    code, message = error_of(client.update_endpoint_weights_and_capacities, EndpointName=unique_name,
                             DesiredWeightsAndCapacities=[{"VariantName": "C", "DesiredWeight": 1.0}])
    assert code == "ValidationException" and "C" in message
    client.delete_endpoint(EndpointName=unique_name)
