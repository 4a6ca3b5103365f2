"""S3 through boto3, the AWS CLI and raw signed HTTP, against a real server."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import subprocess
import sys
import zlib
from pathlib import Path

import boto3.s3.transfer
import botocore.exceptions
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from server_process import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess

MiB = 1024 * 1024


@pytest.fixture()
def bucket(s3, unique_name):
    s3.create_bucket(Bucket=unique_name)
    return unique_name


def error_code(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def signed_request(server, method: str, path: str, body: bytes = b"", *,
                   headers: dict | None = None, signed_body: bytes | None = None,
                   s3_signer: bool = True) -> tuple[int, bytes]:
    """Send exactly ``path`` (no client-side normalization), signed with SigV4.

    The signature covers ``signed_body``'s hash (default: ``body``), so a test can claim
    one body and send another. With ``s3_signer=False`` a preset x-amz-content-sha256
    header (e.g. STREAMING-...) is signed as is.
    """
    request = AWSRequest(method=method, url=server.endpoint_url + path,
                         data=body if signed_body is None else signed_body,
                         headers=dict(headers or {}))
    signer = S3SigV4Auth if s3_signer else SigV4Auth
    signer(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- objects ----------------------------------------------------------------------------


def test_small_object_round_trip_keeps_metadata_and_etag_is_md5(s3, bucket):
    body = b"ticket_id,content\n1,router not responding\n"
    put = s3.put_object(Bucket=bucket, Key="data/tickets.csv", Body=body,
                        ContentType="text/csv", Metadata={"source": "helpdesk", "Rows": "1"},
                        CacheControl="no-cache", ContentDisposition="attachment")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'

    got = s3.get_object(Bucket=bucket, Key="data/tickets.csv")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/csv"
    assert got["Metadata"] == {"source": "helpdesk", "rows": "1"}  # S3 lower-cases names
    assert got["CacheControl"] == "no-cache"
    assert got["ContentDisposition"] == "attachment"
    assert got["ETag"] == put["ETag"]

    head = s3.head_object(Bucket=bucket, Key="data/tickets.csv")
    assert head["ContentLength"] == len(body)
    assert head["LastModified"] == got["LastModified"]

    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""
    assert s3.head_object(Bucket=bucket, Key="empty")["ContentType"] == "binary/octet-stream"


def test_50_mib_object_round_trips_through_multipart_and_ranged_download(s3, bucket, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(50 * MiB))
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MiB,
                                              multipart_chunksize=8 * MiB, max_concurrency=4)
    s3.upload_file(str(source), bucket, "models/model.bin", Config=config)

    head = s3.head_object(Bucket=bucket, Key="models/model.bin")
    assert head["ContentLength"] == 50 * MiB
    assert head["ETag"].endswith('-7"')  # ceil(50 / 8) parts, S3's multipart ETag form

    target = tmp_path / "downloaded.bin"
    s3.download_file(bucket, "models/model.bin", str(target), Config=config)
    assert _sha256(target) == _sha256(source)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def test_ranged_gets(s3, bucket):
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="bytes", Body=data)

    def ranged(spec: str):
        response = s3.get_object(Bucket=bucket, Key="bytes", Range=spec)
        return response["Body"].read(), response.get("ContentRange"), \
            response["ResponseMetadata"]["HTTPStatusCode"]

    assert ranged("bytes=10-19") == (data[10:20], "bytes 10-19/1024", 206)
    assert ranged("bytes=-5") == (data[-5:], "bytes 1019-1023/1024", 206)
    assert ranged("bytes=1000-") == (data[1000:], "bytes 1000-1023/1024", 206)
    assert ranged("bytes=1020-5000") == (data[1020:], "bytes 1020-1023/1024", 206)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="bytes", Range="bytes=1024-2000")
    assert error_code(excinfo) == "InvalidRange"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditional_get_and_put(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", IfMatch='"0000"')
    assert error_code(excinfo) == "PreconditionFailed"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", IfNoneMatch=etag)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfNoneMatch="*")
    assert error_code(excinfo) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"


# --- listing ----------------------------------------------------------------------------

KEYS = ["a", "a/b", "a/c/d", "a/c/e", "b.txt", "logs/2024/01.log", "logs/2024/02.log",
        "logs/2025/01.log", "z space+plus%.txt", "ü-unicode"]


@pytest.fixture()
def listing_bucket(s3, bucket):
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return bucket


def test_keys_a_and_a_slash_b_coexist(s3, listing_bucket):
    assert s3.get_object(Bucket=listing_bucket, Key="a")["Body"].read() == b"a"
    assert s3.get_object(Bucket=listing_bucket, Key="a/b")["Body"].read() == b"a/b"
    s3.delete_object(Bucket=listing_bucket, Key="a")
    assert s3.get_object(Bucket=listing_bucket, Key="a/b")["Body"].read() == b"a/b"


def test_list_objects_v2_prefix_delimiter_and_byte_order(s3, listing_bucket):
    everything = s3.list_objects_v2(Bucket=listing_bucket)
    assert [item["Key"] for item in everything["Contents"]] == sorted(
        KEYS, key=lambda key: key.encode())
    assert everything["KeyCount"] == len(KEYS)

    top = s3.list_objects_v2(Bucket=listing_bucket, Delimiter="/")
    assert [item["Key"] for item in top["Contents"]] == ["a", "b.txt", "z space+plus%.txt",
                                                         "ü-unicode"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "logs/"]

    logs = s3.list_objects_v2(Bucket=listing_bucket, Prefix="logs/", Delimiter="/")
    assert "Contents" not in logs
    assert [p["Prefix"] for p in logs["CommonPrefixes"]] == ["logs/2024/", "logs/2025/"]

    after = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="logs/2024/01.log")
    assert [item["Key"] for item in after["Contents"]][:2] == ["logs/2024/02.log",
                                                               "logs/2025/01.log"]


def test_list_objects_v2_pagination_counts_prefixes_and_keys(s3, listing_bucket):
    seen, pages, token = [], 0, None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=listing_bucket, Delimiter="/", MaxKeys=2, **kwargs)
        pages += 1
        seen += [item["Key"] for item in page.get("Contents", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] <= 2
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == sorted(["a", "a/", "b.txt", "logs/", "z space+plus%.txt",
                                   "ü-unicode"])
    assert pages == 3

    paginator = s3.get_paginator("list_objects_v2")
    keys = [item["Key"] for page in paginator.paginate(Bucket=listing_bucket,
                                                       PaginationConfig={"PageSize": 3})
            for item in page["Contents"]]
    assert keys == sorted(KEYS, key=lambda key: key.encode())

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.list_objects_v2(Bucket=listing_bucket, ContinuationToken="bogus")
    assert error_code(excinfo) == "InvalidArgument"


def test_list_objects_v1_markers(s3, listing_bucket):
    page = s3.list_objects(Bucket=listing_bucket, Delimiter="/", MaxKeys=2)
    assert page["IsTruncated"] and page["NextMarker"] == "a/"
    rest = s3.list_objects(Bucket=listing_bucket, Delimiter="/", Marker=page["NextMarker"])
    assert [item["Key"] for item in rest["Contents"]][0] == "b.txt"


# --- copy and delete --------------------------------------------------------------------


def test_copy_object_copies_or_replaces_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/plain",
                  Metadata={"stage": "raw"})
    copied = s3.copy_object(Bucket=bucket, Key="dst-copy", CopySource=f"{bucket}/src")
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"payload").hexdigest()}"'
    head = s3.head_object(Bucket=bucket, Key="dst-copy")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"stage": "raw"})

    s3.copy_object(Bucket=bucket, Key="dst-replace", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"stage": "clean"},
                   ContentType="application/json")
    head = s3.head_object(Bucket=bucket, Key="dst-replace")
    assert (head["ContentType"], head["Metadata"]) == ("application/json", {"stage": "clean"})
    assert s3.get_object(Bucket=bucket, Key="dst-replace")["Body"].read() == b"payload"

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert error_code(excinfo) == "InvalidRequest"
    s3.delete_object(Bucket=bucket, Key="src")
    assert s3.get_object(Bucket=bucket, Key="dst-copy")["Body"].read() == b"payload"


def test_delete_and_multi_delete(s3, bucket):
    for key in ("one", "two", "three"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.delete_object(Bucket=bucket, Key="one")
    s3.delete_object(Bucket=bucket, Key="one")  # deleting a missing key succeeds, as in S3
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "two"}, {"Key": "missing"}, {"Key": "../bad"}]})
    assert sorted(item["Key"] for item in result["Deleted"]) == ["missing", "two"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("../bad", "InvalidArgument")]
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["three"]


# --- multipart details ------------------------------------------------------------------


def test_multipart_errors_copy_part_and_abort(s3, bucket):
    s3.put_object(Bucket=bucket, Key="source", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="assembled",
                                        Metadata={"kind": "mp"})["UploadId"]
    first = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=upload, PartNumber=1,
                           Body=b"x" * (5 * MiB))["ETag"]
    second = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload, PartNumber=2,
                                 CopySource=f"{bucket}/source",
                                 CopySourceRange="bytes=2-5")["CopyPartResult"]["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="assembled", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 4)]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": second}]})
    assert error_code(excinfo) == "InvalidPart"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload,
                                     MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": second},
                                                                {"PartNumber": 1, "ETag": first}]})
    assert error_code(excinfo) == "InvalidPartOrder"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(excinfo) == "BucketNotEmpty"

    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": first},
                                                            {"PartNumber": 2, "ETag": second}]})
    got = s3.get_object(Bucket=bucket, Key="assembled")
    assert got["Body"].read() == b"x" * (5 * MiB) + b"2345"
    assert got["Metadata"] == {"kind": "mp"}

    aborted = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=aborted, PartNumber=1, Body=b"tiny")
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=aborted)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.list_parts(Bucket=bucket, Key="gone", UploadId=aborted)
    assert error_code(excinfo) == "NoSuchUpload"


# --- errors -----------------------------------------------------------------------------


def test_error_codes_name_the_resource(s3, bucket, unique_name):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_code(excinfo) == "NoSuchKey"
    assert "nope" in excinfo.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.list_objects_v2(Bucket=f"{unique_name}-missing")
    assert error_code(excinfo) == "NoSuchBucket"
    assert excinfo.value.response["Error"]["BucketName"] == f"{unique_name}-missing"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="nope")
    assert error_code(excinfo) == "404"  # HEAD responses carry no body
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.create_bucket(Bucket="Invalid_Name")
    assert error_code(excinfo) == "InvalidBucketName"

    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(excinfo) == "BucketNotEmpty"
    s3.create_bucket(Bucket=bucket)  # us-east-1: re-creating your own bucket answers 200
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"

    owner = s3.list_buckets()["Owner"]["ID"]
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner="111122223333")
    assert error_code(excinfo) == "403"

    s3.delete_object(Bucket=bucket, Key="keep")
    s3.delete_bucket(Bucket=bucket)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.get_bucket_policy(Bucket=unique_name)
    assert error_code(excinfo) == "NotImplemented"
    assert "GetBucketPolicy" in excinfo.value.response["Error"]["Message"]


@pytest.mark.parametrize("raw_key", ["../escaped.txt", "a/../../escaped.txt", "..",
                                     "%2E%2E/escaped.txt", "a/..%2F..%2Fescaped.txt"])
def test_path_traversal_keys_are_refused(server, s3, bucket, raw_key):
    before = _files_near(server.data_dir)
    status, body = signed_request(server, "PUT", f"/{bucket}/{raw_key}", b"attack")
    assert status == 400, body
    assert b"<Code>InvalidArgument</Code>" in body and b"'..' path segment" in body
    assert _files_near(server.data_dir) == before
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    status, _ = signed_request(server, "GET", f"/{bucket}/{raw_key}")
    assert status == 400


def _files_near(data_dir: Path) -> set[str]:
    """Files beside and above the data dir, and blob names inside it."""
    names = {str(p) for p in data_dir.parent.rglob("escaped*")}
    names |= {str(p) for p in (data_dir / "objects").rglob("*") if "escaped" in p.name}
    return names


def test_doomed_upload_is_refused_before_its_body_and_the_client_carries_on(server, bucket):
    s3 = server.client("s3", read_timeout=10)
    body = b"z" * (2 * MiB)  # large enough that botocore sends Expect: 100-continue
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            s3.put_object(Bucket=f"{bucket}-absent", Key="k", Body=body)
        assert error_code(excinfo) == "NoSuchBucket"
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            s3.upload_part(Bucket=bucket, Key="k", UploadId="no-such-upload", PartNumber=1,
                           Body=body)
        assert error_code(excinfo) == "NoSuchUpload"
        s3.put_object(Bucket=bucket, Key="k", Body=body)  # the next call is not stuck
    assert not list((server.data_dir / "objects" / "tmp").iterdir())


def test_wrong_payload_hash_or_md5_stores_nothing(server, s3, bucket):
    status, body = signed_request(server, "PUT", f"/{bucket}/tampered", b"evil bytes",
                                  signed_body=b"good bytes")
    assert status == 400 and b"XAmzContentSHA256Mismatch" in body
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="tampered")
    assert error_code(excinfo) == "404"

    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="tampered", Body=b"data", ContentMD5=wrong_md5)
    assert error_code(excinfo) == "BadDigest"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert not list((server.data_dir / "objects" / "tmp").iterdir())


def test_aws_chunked_upload_with_trailing_checksum(server, s3, bucket):
    payload = b"hello, chunked world"

    def chunked(checksum: str) -> bytes:
        return (f"{8:x}\r\n".encode() + payload[:8] + b"\r\n"
                + f"{len(payload) - 8:x}\r\n".encode() + payload[8:] + b"\r\n"
                + b"0\r\nx-amz-checksum-crc32:" + checksum.encode() + b"\r\n\r\n")

    good = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
               "Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
               "x-amz-decoded-content-length": str(len(payload))}
    status, body = signed_request(server, "PUT", f"/{bucket}/chunked", chunked(good),
                                  headers=headers, s3_signer=False)
    assert status == 200, body
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == payload
    assert "ContentEncoding" not in got  # aws-chunked is transport framing, not stored

    status, body = signed_request(server, "PUT", f"/{bucket}/chunked", chunked("AAAAAA=="),
                                  headers=headers, s3_signer=False)
    assert status == 400 and b"BadDigest" in body
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == payload

    too_big = {**headers, "x-amz-decoded-content-length": str(6 * 1024**3)}
    status, body = signed_request(server, "PUT", f"/{bucket}/huge", chunked(good),
                                  headers=too_big, s3_signer=False)
    assert status == 400 and b"<Code>EntityTooLarge</Code>" in body


def test_malformed_xml_body_is_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    status, body = signed_request(server, "POST", f"/{bucket}?delete",
                                  b"<Delete><Object><Key>kept</Key></Object>")
    assert status == 400 and b"<Code>MalformedXML</Code>" in body
    status, body = signed_request(server, "POST", f"/{bucket}?delete", b"")
    assert status == 400 and b"<Code>MalformedXML</Code>" in body
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"x"


# --- the AWS CLI ------------------------------------------------------------------------


def test_aws_cli_cp_ls_and_rm(server, bucket, tmp_path):
    source = tmp_path / "report.txt"
    source.write_text("accuracy 0.88\n")
    env = {**os.environ, **server.client_env()}

    def aws(*args: str, expected_status: int = 0) -> str:
        result = subprocess.run([sys.executable, "-m", "awscli", "s3", *args], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == expected_status, result.stderr
        return result.stdout

    aws("cp", str(source), f"s3://{bucket}/reports/report.txt")
    listing = aws("ls", f"s3://{bucket}/reports/")
    assert "report.txt" in listing and str(len("accuracy 0.88\n")) in listing
    assert "PRE reports/" in aws("ls", f"s3://{bucket}/")
    aws("cp", f"s3://{bucket}/reports/report.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "accuracy 0.88\n"
    aws("rm", f"s3://{bucket}/reports/report.txt")
    # The CLI exits 1 when a listing matches nothing, as against AWS.
    assert aws("ls", f"s3://{bucket}/reports/", expected_status=1) == ""


# --- restart ----------------------------------------------------------------------------


def test_restart_after_sigkill_removes_leftovers_and_keeps_objects(tmp_path):
    server = ServerProcess.start(tmp_path)
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="survivor")
        s3.put_object(Bucket="survivor", Key="kept", Body=b"acknowledged")
        server.kill()
        # What a kill mid-upload leaves: a temp file and a blob no key points at yet.
        objects = tmp_path / "objects"
        (objects / "tmp" / "upload-half.part").write_bytes(b"half")
        orphan = objects / "blobs" / "ff" / ("ff" * 16)
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"never committed")
        server = ServerProcess.start(tmp_path)
        s3 = server.client("s3")
        assert s3.get_object(Bucket="survivor", Key="kept")["Body"].read() == b"acknowledged"
        assert not orphan.exists()
        assert not list((objects / "tmp").iterdir())
    finally:
        server.stop()


# --- server-side encryption headers -----------------------------------------------------


def test_every_object_reports_sse_s3_and_kms_requests_keep_their_key(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert put["ServerSideEncryption"] == "AES256"
    for read in (s3.head_object, s3.get_object):
        answer = read(Bucket=bucket, Key="plain")
        assert answer["ServerSideEncryption"] == "AES256"
        assert "SSEKMSKeyId" not in answer

    key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    put = s3.put_object(Bucket=bucket, Key="kms", Body=b"y", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=key_arn, BucketKeyEnabled=True)
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"], put["BucketKeyEnabled"]) \
        == ("aws:kms", key_arn, True)
    for read in (s3.head_object, s3.get_object):
        answer = read(Bucket=bucket, Key="kms")
        assert (answer["ServerSideEncryption"], answer["SSEKMSKeyId"],
                answer["BucketKeyEnabled"]) == ("aws:kms", key_arn, True)

    # Without a key id S3 uses the account's AWS managed key, and says so.
    put = s3.put_object(Bucket=bucket, Key="dsse", Body=b"z",
                        ServerSideEncryption="aws:kms:dsse")
    assert put["ServerSideEncryption"] == "aws:kms:dsse"
    assert put["SSEKMSKeyId"].endswith(":alias/aws/s3")

    # A copy is encrypted as the copy request says, not as its source was.
    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource=f"{bucket}/kms")
    assert copied["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in copied
    assert s3.head_object(Bucket=bucket, Key="copy")["ServerSideEncryption"] == "AES256"
    copied = s3.copy_object(Bucket=bucket, Key="copy-kms", CopySource=f"{bucket}/plain",
                            ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/team")
    assert (copied["ServerSideEncryption"], copied["SSEKMSKeyId"]) == ("aws:kms", "alias/team")
    head = s3.head_object(Bucket=bucket, Key="copy-kms")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", "alias/team")

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"x", SSEKMSKeyId=key_arn)
    assert error_code(excinfo) == "InvalidArgument"
    assert "x-amz-server-side-encryption-aws-kms-key-id" in str(excinfo.value)


def test_multipart_uploads_report_their_encryption_on_every_step(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big", ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId="alias/models")
    assert (upload["ServerSideEncryption"], upload["SSEKMSKeyId"]) == ("aws:kms", "alias/models")
    part = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload["UploadId"], PartNumber=1,
                          Body=b"part")
    assert (part["ServerSideEncryption"], part["SSEKMSKeyId"]) == ("aws:kms", "alias/models")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert (done["ServerSideEncryption"], done["SSEKMSKeyId"]) == ("aws:kms", "alias/models")
    head = s3.head_object(Bucket=bucket, Key="big")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", "alias/models")

    plain = s3.create_multipart_upload(Bucket=bucket, Key="plain")
    assert plain["ServerSideEncryption"] == "AES256"
    part = s3.upload_part(Bucket=bucket, Key="plain", UploadId=plain["UploadId"], PartNumber=1,
                          Body=b"part")
    assert part["ServerSideEncryption"] == "AES256"
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="plain", UploadId=plain["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in done


def test_customer_provided_keys_are_refused_naming_the_header(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="existing", Body=b"x")
    customer_key = b"k" * 32
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": customer_key}
    calls = [
        lambda: s3.put_object(Bucket=bucket, Key="sse-c", Body=b"secret", **sse_c),
        lambda: s3.get_object(Bucket=bucket, Key="existing", **sse_c),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="sse-c", **sse_c),
        lambda: s3.copy_object(Bucket=bucket, Key="sse-c", CopySource=f"{bucket}/existing",
                               CopySourceSSECustomerAlgorithm="AES256",
                               CopySourceSSECustomerKey=customer_key),
    ]
    for call in calls:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            call()
        error = excinfo.value.response["Error"]
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error["Code"] == "InvalidArgument"
        assert "SSE-C" in error["Message"]
        assert "-server-side-encryption-customer-algorithm" in error["Message"]
        assert error["ArgumentName"].endswith("server-side-encryption-customer-algorithm")
        assert base64.b64encode(customer_key).decode() not in error["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="sse-c")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # A HEAD error has no body; its status still says "bad request", not "not found".
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="existing", **sse_c)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
