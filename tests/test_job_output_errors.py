"""A job whose output location cannot be written fails with a ClientError naming it.

It used to stay InProgress for ever: the runner's upload raised, the executor logged it.
"""

from __future__ import annotations

from jobs_helpers import wait_for_status
from test_cloudwatch_metrics_sources import script_training_request
from test_processing_jobs import create_job

TERMINAL = {"Completed", "Failed", "Stopped"}


def test_training_job_with_a_missing_output_bucket_fails_naming_it(server, unique_name):
    sagemaker = server.client("sagemaker")
    server.client("s3").create_bucket(Bucket=unique_name)
    request = script_training_request(server, unique_name, unique_name, 'print("trained")\n')
    request["OutputDataConfig"] = {"S3OutputPath": f"s3://{unique_name}-missing/models"}
    sagemaker.create_training_job(**request)
    job = wait_for_status(lambda: sagemaker.describe_training_job(TrainingJobName=unique_name),
                          "TrainingJobStatus", TERMINAL, timeout=300)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Cannot write s3://")
    assert f"'{unique_name}-missing' does not exist" in job["FailureReason"]


def test_processing_job_with_a_missing_output_bucket_fails_naming_it(server, unique_name):
    sagemaker = server.client("sagemaker")
    command = "open('/opt/ml/processing/output/result.txt', 'w').write('done')"
    create_job(sagemaker, unique_name, f"{unique_name}-missing", command)
    job = wait_for_status(lambda: sagemaker.describe_processing_job(ProcessingJobName=unique_name),
                          "ProcessingJobStatus", TERMINAL, timeout=300)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Cannot write s3://")
    assert f"'{unique_name}-missing' does not exist" in job["FailureReason"]
