"""The metadata store's schema versions: old data directories open, newer ones are refused.

``fixtures/previous_schema_data.tar.gz`` is a data directory written by modelyard before it
had schema versions (``fixtures/make_previous_schema_data.py`` says how it was made). With
MODELYARD_TEST_POSTGRES_URL set, its rows are loaded into a PostgreSQL database shaped by
the previous schema instead, so both backends are opened the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy
from sqlalchemy import MetaData, create_engine, text

from fixtures.make_previous_schema_data import (
    BINARY_BODY, BUCKET, JOB, LOG_GROUP, MODEL, PACKAGE_GROUP, PIPELINE, TRAINING_JOB,
    UNICODE_KEY)
from jobs_helpers import SKLEARN_IMAGE, wait_for_status
from modelyard.store.db import Database
from modelyard.store.migrations import (
    SchemaUpgrade, alembic_config, pending_changes, scripts, upgrade)
from server_process import ACCESS_KEY, SECRET_KEY, ServerProcess, free_port, postgres_database_for

FIXTURE = Path(__file__).parent / "fixtures" / "previous_schema_data.tar.gz"
ACCOUNT = "210987654321"  # the account id in the fixture's identity.json
HEAD = scripts().get_current_head()
# tarfile's extraction filters exist from Python 3.10.12 / 3.11.4 on.
SAFE_EXTRACT = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def database_url(data_dir: Path) -> str:
    """The metadata database a server on ``data_dir`` uses in this test run."""
    return postgres_database_for(data_dir) or f"sqlite:///{data_dir / 'metadata.sqlite3'}"


def schema_versions(data_dir: Path) -> list[str]:
    engine = create_engine(database_url(data_dir))
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text(
                "SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def previous_schema_data_dir(tmp_path: Path) -> Path:
    """A copy of the fixture data directory; on PostgreSQL, its rows in a fresh database."""
    data_dir = tmp_path / "data"
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(data_dir, **SAFE_EXTRACT)
    postgres_url = postgres_database_for(data_dir)
    if postgres_url:
        sqlite_path = data_dir / "metadata.sqlite3"
        _load_into_postgres(sqlite_path, postgres_url)
        sqlite_path.unlink()
    return data_dir


def _load_into_postgres(sqlite_path: Path, url: str) -> None:
    """Tables of the previous schema (revision 0001, no version table), then the rows."""
    from alembic import command

    target = Database(url)
    with target.schema_change() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.exec_driver_sql("DROP TABLE alembic_version")
    tables = MetaData()
    tables.reflect(target.engine)
    source = create_engine(f"sqlite:///{sqlite_path}")
    with source.connect() as reader, target.write() as writer:
        for table in tables.sorted_tables:
            rows = [dict(row._mapping) for row in reader.execute(text(
                f"SELECT * FROM {table.name}"))]
            if rows:
                writer.execute(table.insert(), rows)
            if "id" in table.columns:  # as if the rows had been inserted one by one
                writer.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)"))
    source.dispose()
    target.close()


def test_a_data_directory_from_the_previous_schema_keeps_every_resource(tmp_path):
    data_dir = previous_schema_data_dir(tmp_path)
    engine = create_engine(database_url(data_dir))
    assert not sqlalchemy.inspect(engine).has_table("alembic_version")  # before versions
    engine.dispose()
    server = ServerProcess.start(data_dir)
    try:
        assert "metadata store from before schema versions adopted as version 0001" in (
            server.log_path.read_text())
        assert schema_versions(data_dir) == [HEAD]
        check_objects(server.client("s3"))
        check_logs(server.client("logs"))
        check_sagemaker(server.client("sagemaker"))
        check_still_writable(server)
    finally:
        server.stop()


def check_objects(s3) -> None:
    assert BUCKET in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == sorted([
        "code/sourcedir.tar.gz", "hello.txt", "job-output/out.txt", "multipart.bin",
        UNICODE_KEY, f"training-output/{TRAINING_JOB}/output/model.tar.gz"])
    hello = s3.get_object(Bucket=BUCKET, Key="hello.txt")
    assert hello["Body"].read() == b"hello from the previous schema\n"
    assert hello["ContentType"] == "text/plain"
    assert hello["Metadata"] == {"owner": "support-team"}
    assert s3.get_object(Bucket=BUCKET, Key=UNICODE_KEY)["Body"].read() == BINARY_BODY
    multipart = s3.get_object(Bucket=BUCKET, Key="multipart.bin")
    assert multipart["Body"].read() == b"m" * 1000
    assert multipart["ETag"].endswith('-1"')
    assert s3.get_object(Bucket=BUCKET, Key="job-output/out.txt")["Body"].read() == b"processed"
    uploads = s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert [upload["Key"] for upload in uploads] == ["pending.bin"]
    parts = s3.list_parts(Bucket=BUCKET, Key="pending.bin", UploadId=uploads[0]["UploadId"])
    assert [(part["PartNumber"], part["Size"]) for part in parts["Parts"]] == [(1, 700)]


def check_logs(logs) -> None:
    groups = [group["logGroupName"] for group in logs.describe_log_groups()["logGroups"]]
    assert {LOG_GROUP, "/aws/sagemaker/ProcessingJobs",
            "/aws/sagemaker/TrainingJobs"} <= set(groups)
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="main",
                                 startFromHead=True)["events"]
    assert [event["message"] for event in events] == ["event 0", "event 1", "event 2"]
    found = logs.filter_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                   logStreamNamePrefix=f"{JOB}/")["events"]
    assert "legacy job ran" in [event["message"] for event in found]


def check_sagemaker(sagemaker) -> None:
    group = sagemaker.describe_model_package_group(ModelPackageGroupName=PACKAGE_GROUP)
    assert group["ModelPackageGroupDescription"] == "churn models"
    assert f":{ACCOUNT}:" in group["ModelPackageGroupArn"]
    packages = sagemaker.list_model_packages(
        ModelPackageGroupName=PACKAGE_GROUP)["ModelPackageSummaryList"]
    assert [(item["ModelPackageVersion"], item["ModelApprovalStatus"])
            for item in packages] == [(1, "Approved")]
    package = sagemaker.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == SKLEARN_IMAGE

    model = sagemaker.describe_model(ModelName=MODEL)
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/model.tar.gz"

    job = sagemaker.describe_processing_job(ProcessingJobName=JOB)
    assert job["ProcessingJobStatus"] == "Completed"
    training = sagemaker.describe_training_job(TrainingJobName=TRAINING_JOB)
    assert training["TrainingJobStatus"] == "Completed"
    assert training["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://{BUCKET}/training-output/{TRAINING_JOB}/output/model.tar.gz")
    assert training["FinalMetricDataList"][0]["MetricName"] == "loss"
    assert training["FinalMetricDataList"][0]["Value"] == 0.25

    assert sagemaker.describe_pipeline(PipelineName=PIPELINE)["PipelineStatus"] == "Active"
    executions = sagemaker.list_pipeline_executions(
        PipelineName=PIPELINE)["PipelineExecutionSummaries"]
    assert [item["PipelineExecutionStatus"] for item in executions] == ["Succeeded"]
    first = executions[0]["PipelineExecutionArn"]
    steps = sagemaker.list_pipeline_execution_steps(
        PipelineExecutionArn=first)["PipelineExecutionSteps"]
    assert [(step["StepName"], step["StepStatus"]) for step in steps] == [
        ("Prepare", "Succeeded")]
    step_job = steps[0]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    assert sagemaker.describe_processing_job(
        ProcessingJobName=step_job)["ProcessingJobStatus"] == "Completed"
    # The step cache survived too: a new execution reuses the old step's result.
    second = sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE, ClientRequestToken=uuid.uuid4().hex)["PipelineExecutionArn"]
    wait_for_status(lambda: sagemaker.describe_pipeline_execution(
        PipelineExecutionArn=second), "PipelineExecutionStatus",
        {"Succeeded", "Failed", "Stopped"}, timeout=120)
    step = sagemaker.list_pipeline_execution_steps(
        PipelineExecutionArn=second)["PipelineExecutionSteps"][0]
    assert step["CacheHitResult"]["SourcePipelineExecutionArn"] == first


def check_still_writable(server: ServerProcess) -> None:
    """New rows after the old ones: ids and sequences carry on where the old server left."""
    s3, logs = server.client("s3"), server.client("logs")
    s3.put_object(Bucket=BUCKET, Key="after-upgrade.txt", Body=b"new")
    assert s3.get_object(Bucket=BUCKET, Key="after-upgrade.txt")["Body"].read() == b"new"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="after-upgrade")
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName="main", logEvents=[
        {"timestamp": int(time.time() * 1000), "message": "event 3"}])
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="main",
                                 startFromHead=True)["events"]
    assert [event["message"] for event in events][-1] == "event 3"


def test_a_new_data_directory_starts_at_the_newest_version_and_restarts_change_nothing(
        tmp_path):
    first = ServerProcess.start(tmp_path)
    first.client("s3").create_bucket(Bucket="kept")
    first.stop()
    assert "metadata store created at schema version " + HEAD in first.log_path.read_text()
    first.log_path.unlink()  # the second server may get the same port, hence log file
    assert schema_versions(tmp_path) == [HEAD]

    second = ServerProcess.start(tmp_path)
    try:
        log = second.log_path.read_text()
        assert f"metadata store at schema version {HEAD}" in log
        assert "metadata store created" not in log and "metadata store upgraded" not in log
        assert schema_versions(tmp_path) == [HEAD]
        assert [b["Name"] for b in second.client("s3").list_buckets()["Buckets"]] == ["kept"]
    finally:
        second.stop()


def test_a_data_directory_from_a_newer_modelyard_is_refused(tmp_path):
    server = ServerProcess.start(tmp_path)
    server.client("s3").create_bucket(Bucket="from-the-future")
    server.stop()
    engine = create_engine(database_url(tmp_path))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    env = {**os.environ, "MODELYARD_ACCESS_KEY_ID": ACCESS_KEY,
           "MODELYARD_SECRET_ACCESS_KEY": SECRET_KEY}
    if (tmp_path / "test-database-url").exists():
        env["MODELYARD_DATABASE_URL"] = database_url(tmp_path)
    refused = subprocess.run(
        [sys.executable, "-m", "modelyard", "server", "--port", str(free_port()),
         "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stderr
    assert "is at schema version 9999" in refused.stderr
    assert f"its newest schema version is {HEAD}" in refused.stderr
    assert "does not downgrade" in refused.stderr
    assert "Upgrade modelyard" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "modelyard-ci" not in refused.stderr  # the URL is shown without its password
    # Nothing was touched: the version and the data are still the newer modelyard's.
    assert schema_versions(tmp_path) == ["9999"]
    engine = create_engine(database_url(tmp_path))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM s3_buckets")).scalars().all() == [
            "from-the-future"]
    engine.dispose()


def test_servers_starting_together_upgrade_the_database_once(tmp_path):
    url = database_url(tmp_path)
    databases = [Database(url) for _ in range(4)]
    ready = threading.Barrier(len(databases))
    results, errors = [], []

    def start(database: Database) -> None:
        ready.wait()
        try:
            results.append(upgrade(database))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=start, args=(database,), daemon=True)
               for database in databases]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "upgrades still waiting"
    for database in databases:
        database.close()
    assert errors == []
    assert sorted((result.previous or "", result.current) for result in results) == [
        ("", HEAD), (HEAD, HEAD), (HEAD, HEAD), (HEAD, HEAD)]
    assert schema_versions(tmp_path) == [HEAD]


def test_the_tables_match_the_newest_revision(tmp_path):
    """A table or column added without a revision fails here: add one (see migrations)."""
    database = Database(database_url(tmp_path))
    try:
        upgrade(database)
        assert pending_changes(database) == []
    finally:
        database.close()


RECREATING_REVISION = '''
from alembic import op

revision = "{revision}"
down_revision = "{head}"


def upgrade() -> None:
    # What autogenerate writes for SQLite when a column changes: copy, drop, rename.
    for table in ("log_groups", "log_streams", "s3_buckets", "s3_uploads"):
        with op.batch_alter_table(table, recreate="always"):
            pass
'''


def test_a_revision_that_recreates_tables_on_sqlite_keeps_the_rows_that_refer_to_them(
        tmp_path):
    """SQLite drops a copied table's old self; that must not cascade into its children."""
    location = tmp_path / "migrations"
    shutil.copytree(scripts().dir, location, ignore=shutil.ignore_patterns("__pycache__"))
    revision = f"{int(HEAD) + 1:04d}"
    (location / "versions" / f"{revision}_recreate.py").write_text(
        RECREATING_REVISION.format(revision=revision, head=HEAD))
    with tarfile.open(FIXTURE) as archive:
        archive.extract("metadata.sqlite3", tmp_path, **SAFE_EXTRACT)
    database = Database(f"sqlite:///{tmp_path / 'metadata.sqlite3'}")
    counts_before = row_counts(database)
    try:
        assert upgrade(database, location) == SchemaUpgrade(None, revision, adopted=True)
        assert row_counts(database) == counts_before
    finally:
        database.close()
    assert counts_before["log_events"] > 0 and counts_before["s3_parts"] > 0


def row_counts(database: Database) -> dict[str, int]:
    tables = ("log_groups", "log_streams", "log_events", "s3_buckets", "s3_objects",
              "s3_uploads", "s3_parts")
    with database.read() as connection:
        return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in tables}
