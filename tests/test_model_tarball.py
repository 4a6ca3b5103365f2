"""Large models: model.tar.gz is packed in one pass straight into the object store, and is
still a standard gzip tar whose ETag is its MD5 (engine/model_tarball.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile

from jobs_helpers import wait_for_status
from server_process import ServerProcess
from test_training_jobs import fasttext_lines

BLAZINGTEXT_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"


def start_blazingtext(server: ServerProcess, bucket: str, name: str, buckets: int) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="train/train.txt", Body=fasttext_lines(300, 1).encode())
    server.client("sagemaker").create_training_job(
        TrainingJobName=name, RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": BLAZINGTEXT_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"mode": "supervised", "epochs": "5", "learning_rate": "0.5",
                         "word_ngrams": "2", "buckets": str(buckets), "min_count": "1"},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models"},
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 1800})


def check_tarball(s3, bucket: str, key: str) -> bytes:
    """The stored object is a whole gzip tar whose ETag is its MD5."""
    response = s3.get_object(Bucket=bucket, Key=key)
    data = response["Body"].read()
    assert response["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    gzip.decompress(data)  # checks the gzip trailer: CRC-32 and length of the whole tar
    listing = subprocess.run(["tar", "-tzf", "-"], input=data, capture_output=True, check=True)
    assert listing.stdout.decode().split() == ["model.bin"]
    return data


def test_a_large_model_tarball_is_a_standard_gzip_tar_with_its_md5_as_etag(
        server, s3, sagemaker_client, unique_name, tmp_path):
    import fasttext

    bucket = unique_name
    # 200k buckets x 100 dimensions: an 80 MB model.bin, past the size that is stored
    # uncompressed (deflate stored blocks framed by modelyard, not zlib).
    start_blazingtext(server, bucket, unique_name, 200_000)
    job = wait_for_status(
        lambda: sagemaker_client.describe_training_job(TrainingJobName=unique_name),
        "TrainingJobStatus", {"Completed", "Failed", "Stopped"}, timeout=600)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

    data = check_tarball(s3, bucket, f"models/{unique_name}/output/model.tar.gz")
    assert len(data) > 64 * 1024 * 1024
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(tmp_path, filter="data")
    model = fasttext.load_model(str(tmp_path / "model.bin"))
    assert model.predict("router dhcp lease not working")[0][0] == "__label__network"
    # Nothing of the packing is left behind in the store's temporary directory.
    assert not list((server.data_dir / "objects" / "tmp").glob("tarball-*"))


def test_a_server_killed_while_packing_leaves_no_half_tarball(tmp_path):
    """SIGKILL during "Uploading": after a restart the key holds a whole tarball or none,
    the partial file is gone, and the re-run job stores a whole one."""
    server = ServerProcess.start(tmp_path / "data")
    name, bucket = "killed-while-packing", "killed-while-packing"
    try:
        start_blazingtext(server, bucket, name, 1_000_000)  # a 400 MB model.bin
        client = server.client("sagemaker")
        wait_for_status(lambda: client.describe_training_job(TrainingJobName=name),
                        "SecondaryStatus", {"Uploading", "Completed", "Failed"}, timeout=600)
    finally:
        server.kill()
    spool = tmp_path / "data" / "objects" / "tmp"
    left_by_the_kill = set(spool.glob("tarball-*"))
    restarted = ServerProcess.start(tmp_path / "data", port=server.port)
    try:
        s3 = restarted.client("s3")
        key = f"models/{name}/output/model.tar.gz"
        # Recovery ran before the server answered: what the killed server was writing is
        # gone (the re-run job may already be packing a new one of its own).
        assert not left_by_the_kill & set(spool.glob("tarball-*"))
        if s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"]:
            check_tarball(s3, bucket, key)
        client = restarted.client("sagemaker")
        job = wait_for_status(lambda: client.describe_training_job(TrainingJobName=name),
                              "TrainingJobStatus", {"Completed", "Failed", "Stopped"}, timeout=600)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        check_tarball(s3, bucket, key)
    finally:
        restarted.stop()
