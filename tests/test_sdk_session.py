"""The SageMaker Python SDK's session helpers work unchanged against modelyard."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


@pytest.fixture()
def session(server):
    import sagemaker

    return sagemaker.Session()


def test_get_execution_role_resolves_the_modelyard_role(server, session):
    import sagemaker

    role = sagemaker.get_execution_role(sagemaker_session=session)
    account = server.client("sts").get_caller_identity()["Account"]
    assert role == f"arn:aws:iam::{account}:role/ModelyardExecutionRole"


def test_default_bucket_is_created_once_and_reused(server, session):
    import sagemaker

    account = server.client("sts").get_caller_identity()["Account"]
    bucket = session.default_bucket()
    assert bucket == f"sagemaker-us-east-1-{account}"
    server.client("s3").head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    # A second session finds the bucket and checks its owner instead of creating it.
    assert sagemaker.Session().default_bucket() == bucket


def test_upload_and_download_data_round_trip(server, session, tmp_path, unique_name):
    source = tmp_path / "source"
    (source / "nested").mkdir(parents=True)
    (source / "train.csv").write_text("1,0.5,0.25\n0,0.1,0.9\n")
    (source / "nested" / "notes.txt").write_bytes(os.urandom(300_000))
    bucket = session.default_bucket()
    uri = session.upload_data(str(source), bucket=bucket, key_prefix=unique_name)
    assert uri == f"s3://{bucket}/{unique_name}"

    target = tmp_path / "target"
    downloaded = session.download_data(str(target), bucket=bucket, key_prefix=unique_name)
    assert sorted(os.path.relpath(path, target) for path in downloaded) == [
        "nested/notes.txt", "train.csv"]
    assert (target / "train.csv").read_text() == (source / "train.csv").read_text()
    assert (target / "nested" / "notes.txt").read_bytes() == \
        (source / "nested" / "notes.txt").read_bytes()


def test_s3_uploader_and_downloader(server, session, unique_name):
    from sagemaker.s3 import S3Downloader, S3Uploader

    bucket = session.default_bucket()
    uri = S3Uploader.upload_string_as_file_body(
        "hello from the SDK", f"s3://{bucket}/{unique_name}/hello.txt", sagemaker_session=session)
    assert S3Downloader.read_file(uri, sagemaker_session=session) == "hello from the SDK"
    assert S3Downloader.list(f"s3://{bucket}/{unique_name}", sagemaker_session=session) == [uri]
