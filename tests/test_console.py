"""The web console in a real browser (the system's Chromium, driven by Playwright), and
its guards over plain HTTP: sign-in, sessions, CSRF, escaping."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import requests

from jobs_helpers import SKLEARN_IMAGE, sdk_session
from server_process import ACCESS_KEY, SECRET_KEY
from test_pipelines import build, tickets_jsonl

CHROMIUM = "/usr/bin/chromium"
SCRIPT = "<script>alert(1)</script>"
PAGES = ["/console/", "/console/pipelines", "/console/pipelines/any",
         "/console/pipelines/any/execution?arn=x", "/console/jobs",
         "/console/jobs?type=processing", "/console/jobs/training/any", "/console/models",
         "/console/models/any", "/console/models/package?arn=x", "/console/endpoints",
         "/console/endpoints/any", "/console/objects", "/console/objects/any",
         "/console/objects/any/object?key=k", "/console/objects/any/download?key=k",
         "/console/tuning", "/console/tuning/any"]
ACTIONS = ["/console/pipelines/any/start", "/console/pipelines/executions/stop",
           "/console/pipelines/executions/retry", "/console/jobs/training/any/stop",
           "/console/models/approval", "/console/tuning/any/stop", "/console/signout"]


def signed_in(server) -> requests.Session:
    """A plain HTTP client with a console session (the sign-in form's way)."""
    session = requests.Session()
    form = session.get(f"{server.endpoint_url}/console/signin").text
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)
    answer = session.post(f"{server.endpoint_url}/console/signin", allow_redirects=False,
                          data={"token": token, "access_key_id": ACCESS_KEY,
                                "secret_access_key": SECRET_KEY})
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    return session


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def registered_package(server, name: str) -> str:
    client = server.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=name,
                                      ModelPackageGroupDescription=SCRIPT)
    return client.create_model_package(
        ModelPackageGroupName=name, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": SKLEARN_IMAGE}],
                                "SupportedContentTypes": ["text/csv"],
                                "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]


# --- plain HTTP --------------------------------------------------------------------------


def check_no_session(server, pages, actions) -> None:
    """Without a session, ``pages`` redirect to sign-in and ``actions`` answer 401."""
    for path in pages:
        answer = requests.get(server.endpoint_url + path, allow_redirects=False)
        assert answer.status_code == 302, path
        assert answer.headers["location"].startswith("/console/signin?next="), path
    for path in actions:
        answer = requests.post(server.endpoint_url + path, data={"csrf": "x"},
                               allow_redirects=False)
        assert answer.status_code == 401, path


def test_without_a_session_pages_redirect_to_sign_in_and_actions_answer_401(server):
    check_no_session(server, PAGES, ACTIONS)
    forged = requests.get(server.endpoint_url + "/console/", allow_redirects=False,
                          cookies={"modelyard_console": "eyJrIjoiQUtJQSJ9.bm90LXNpZ25lZA"})
    assert forged.status_code == 302
    browser_root = requests.get(server.endpoint_url + "/", headers={"Accept": "text/html"},
                                allow_redirects=False)
    assert browser_root.status_code == 302 and browser_root.headers["location"] == "/console/"


def test_sign_in_needs_the_api_credentials(server):
    session = requests.Session()
    form = session.get(f"{server.endpoint_url}/console/signin").text
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)
    wrong = session.post(f"{server.endpoint_url}/console/signin", allow_redirects=False,
                         data={"token": token, "access_key_id": ACCESS_KEY,
                               "secret_access_key": SECRET_KEY + "x"})
    assert wrong.status_code == 401 and "modelyard_console=" not in \
        wrong.headers.get("set-cookie", "").replace("modelyard_console_signin", "")
    no_token = requests.post(f"{server.endpoint_url}/console/signin", allow_redirects=False,
                             data={"access_key_id": ACCESS_KEY,
                                   "secret_access_key": SECRET_KEY})
    assert no_token.status_code == 403


def test_an_action_without_the_csrf_token_is_refused(server, unique_name):
    arn = registered_package(server, unique_name)
    session = signed_in(server)
    page = session.get(f"{server.endpoint_url}/console/models/package", params={"arn": arn})
    assert page.status_code == 200
    for data in ({"arn": arn, "status": "Approved"},
                 {"arn": arn, "status": "Approved", "csrf": "forged"}):
        answer = session.post(f"{server.endpoint_url}/console/models/approval", data=data,
                              allow_redirects=False)
        assert answer.status_code == 403
    cross_site = session.post(f"{server.endpoint_url}/console/models/approval",
                              data={"arn": arn, "status": "Approved",
                                    "csrf": csrf_of(page.text)},
                              headers={"Origin": "https://evil.example"},
                              allow_redirects=False)
    assert cross_site.status_code == 403
    client = server.client("sagemaker")
    assert client.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == \
        "PendingManualApproval"
    # With the token, the same action goes through UpdateModelPackage (and its validation).
    refused = session.post(f"{server.endpoint_url}/console/models/approval",
                           data={"arn": arn, "status": "Approved", "csrf": csrf_of(page.text),
                                 "comment": "x" * 1100, "back": "/console/"},
                           allow_redirects=False)
    assert refused.status_code == 303 and "ValidationException" in \
        requests.utils.unquote(refused.headers["location"]).replace("+", " ")
    assert client.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == \
        "PendingManualApproval"


def test_user_text_with_html_renders_as_text(server, unique_name):
    registered_package(server, unique_name)
    session = signed_in(server)
    html = session.get(f"{server.endpoint_url}/console/models").text
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "script-src 'self'" in session.get(
        f"{server.endpoint_url}/console/models").headers["content-security-policy"]


def test_tuning_pages_list_a_job_and_show_its_trials_and_best(server, tmp_path):
    from sagemaker.tuner import CategoricalParameter
    from tuning_helpers import estimator, fresh_name, trials, tuner, wait_tuning

    client = server.client("sagemaker")
    job = tuner(estimator(sdk_session(), tmp_path), {"kind": CategoricalParameter(["a", "c"])},
                strategy="Grid", max_jobs=2, max_parallel_jobs=2)
    name = fresh_name("console-tune")
    job.fit(wait=False, job_name=name)
    description = wait_tuning(client, name)
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    best = description["BestTrainingJob"]["TrainingJobName"]
    summaries = trials(client, name)
    assert len(summaries) == 2
    session = signed_in(server)
    listing = session.get(f"{server.endpoint_url}/console/tuning",
                          params={"status": "Completed", "name": name})
    assert listing.status_code == 200 and f'href="/console/tuning/{name}"' in listing.text
    assert "Tuning jobs" in session.get(f"{server.endpoint_url}/console/jobs").text
    html = session.get(f"{server.endpoint_url}/console/tuning/{name}").text
    trials_table = html.split('id="trials"', 1)[1].split("</table>", 1)[0]
    for item in summaries:
        value = item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert f'href="/console/jobs/training/{item["TrainingJobName"]}"' in trials_table
        assert f"{value:.4g}" in trials_table
    # Sorted by the objective, best (Maximize) first; the best job is linked on its own.
    assert trials_table.index(best) == min(trials_table.index(item["TrainingJobName"])
                                           for item in summaries)
    assert f'href="/console/jobs/training/{best}"' in html.split('id="best"', 1)[1][:400]
    assert 'class="chart"' in html and "<polyline" in html and "Stop tuning job" not in html
    # A running job refreshes itself and offers Stop, which goes through the API.
    running = tuner(estimator(sdk_session(), tmp_path, epochs=200, pause=0.2),
                    {"kind": CategoricalParameter(["a"])}, strategy="Grid", max_jobs=1,
                    max_parallel_jobs=1)
    stoppable = fresh_name("console-stop")
    running.fit(wait=False, job_name=stoppable)
    html = session.get(f"{server.endpoint_url}/console/tuning/{stoppable}").text
    assert 'id="tuning-live" data-live="1"' in html and "Stop tuning job" in html
    answer = session.post(f"{server.endpoint_url}/console/tuning/{stoppable}/stop",
                          data={"csrf": csrf_of(html)}, allow_redirects=False)
    assert answer.status_code == 303
    assert client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=stoppable)[
        "HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")


# --- in the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    given = os.environ.get("MODELYARD_CONSOLE_SCREENSHOTS")
    directory = Path(given) if given else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser_page(server, screenshots):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install the system's Chromium package to run "
                    "the console's browser tests (Playwright's own download is not used)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(90_000)  # a loaded machine runs the jobs slowly
        page = context.new_page()
        page.alerts = []  # type: ignore[attr-defined]

        def on_dialog(dialog) -> None:
            if dialog.type == "confirm":
                dialog.accept()
            else:
                page.alerts.append(dialog.message)  # type: ignore[attr-defined]
                dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(f"{server.endpoint_url}/")
        assert "/console/signin" in page.url
        page.get_by_label("Access key id").fill(ACCESS_KEY)
        page.get_by_label("Secret access key").fill(SECRET_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/console/$"))
        yield page
        assert page.alerts == []  # type: ignore[attr-defined] # no injected script ever ran
        context.close()
        browser.close()


def shot(page, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"))


def test_pipeline_run_approval_and_stop_in_the_browser(server, browser_page, screenshots,
                                                       unique_name):
    page = browser_page
    base = server.endpoint_url
    session = sdk_session()
    bucket = session.default_bucket()
    s3 = server.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/raw/tickets.jsonl",
                  Body=tickets_jsonl().encode(), Metadata={"note": SCRIPT})
    pipeline = build(unique_name, bucket, unique_name, group=f"{unique_name}-group")
    pipeline.upsert(role_arn=session.get_caller_identity_arn(), description=SCRIPT)
    execution = pipeline.start(parameters={"AccuracyThreshold": 0.6, "LearningRate": 0.5})
    # A job that runs until stopped, for the end of the test.
    job = f"{unique_name}-sleeper"
    server.client("sagemaker").create_processing_job(
        ProcessingJobName=job, RoleArn="arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": [
            "python3", "-c", f"import time; print({SCRIPT!r}, flush=True); time.sleep(600)"]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1,
                                               "InstanceType": "ml.m5.large",
                                               "VolumeSizeInGB": 1}})

    page.goto(f"{base}/console/pipelines/{unique_name}")
    assert page.locator("svg.dag [data-step='Train']").count() == 1
    assert SCRIPT in page.inner_text("main")  # the description, shown as text
    page.locator("#executions a").first.click()
    # The execution page updates itself: every step turns green on the DAG, no reload.
    page.wait_for_selector("#execution-live[data-status='Executing'], "
                           "#execution-live[data-status='Succeeded']")
    page.evaluate("window.__same_document = true")
    page.wait_for_selector("#execution-live[data-status='Succeeded']", timeout=150_000)
    assert page.evaluate("window.__same_document") is True
    nodes = page.locator("svg.dag .dag-node")
    statuses = {nodes.nth(i).get_attribute("data-step"): nodes.nth(i).get_attribute(
        "data-status") for i in range(nodes.count())}
    assert statuses["Train"] == statuses["Preprocess"] == statuses["Evaluate"] == "Succeeded"
    assert statuses["AccuracyTooLow"] == "NotStarted"
    fill = page.eval_on_selector("svg.dag [data-step='Train'] rect",
                                 "node => getComputedStyle(node).fill")
    assert fill == "rgb(187, 247, 208)"  # green
    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded"
    shot(page, screenshots, "pipeline-execution")

    # The training job: its accuracy chart and its log.
    page.click("svg.dag a:has([data-step='Train'])")
    page.wait_for_selector("#metrics figure[data-metric='validation:accuracy'] circle")
    assert "#validation_accuracy:" in page.inner_text("#log")  # the line the chart came from
    assert page.locator("#hyperparameters").inner_text().count("learning_rate") == 1
    shot(page, screenshots, "training-job")

    # Approve the registered version with a comment.
    page.go_back()
    page.click("svg.dag a:has([data-step='Register-RegisterModel'])")
    page.wait_for_selector("#evaluation")
    assert "accuracy" in page.inner_text("#evaluation")
    assert "-Train-" in page.inner_text("#lineage")  # the training job it came from
    shot(page, screenshots, "model-version")
    page.get_by_label("Comment (ApprovalDescription)").fill(f"Looks good {SCRIPT}")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_selector(".notice.ok")
    package_arn = {step["StepName"]: step for step in execution.list_steps()}[
        "Register-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    described = server.client("sagemaker").describe_model_package(ModelPackageName=package_arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == f"Looks good {SCRIPT}"

    # Stop a running job from its page (started with the pipeline, to overlap the waits);
    # its log line with HTML is shown as text.
    page.goto(f"{base}/console/jobs/processing/{job}")
    page.locator("#log", has_text=SCRIPT).wait_for(timeout=120_000)
    shot(page, screenshots, "processing-job-running")
    page.get_by_role("button", name="Stop job").click()
    page.wait_for_selector("#job-live[data-status='Stopped']", timeout=120_000)
    assert server.client("sagemaker").describe_processing_job(
        ProcessingJobName=job)["ProcessingJobStatus"] == "Stopped"

    # A screenshot of every page, and nothing injected ran on any of them.
    group = f"{unique_name}-group"
    for name, path in [("home", "/console/"), ("pipelines", "/console/pipelines"),
                       ("pipeline", f"/console/pipelines/{unique_name}"),
                       ("jobs", "/console/jobs"),
                       ("processing-jobs", "/console/jobs?type=processing"),
                       ("models", "/console/models"), ("model-group", f"/console/models/{group}"),
                       ("endpoints", "/console/endpoints"), ("buckets", "/console/objects"),
                       ("objects", f"/console/objects/{bucket}?prefix={unique_name}/raw/"),
                       ("object", f"/console/objects/{bucket}/object?key={unique_name}"
                                  "/raw/tickets.jsonl")]:
        page.goto(base + path)
        assert page.locator("main h1").count() == 1, path
        shot(page, screenshots, name)
    assert SCRIPT in page.inner_text("main")  # the object's metadata, as text
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/console/pipelines/{unique_name}")
    shot(page, screenshots, "pipeline-phone")
    page.set_viewport_size({"width": 1280, "height": 800})


def test_endpoint_page_shows_variants_and_traffic(server, browser_page, screenshots,
                                                  unique_name):
    from endpoint_helpers import create_endpoint, create_model, delete_endpoint, variant

    page = browser_page
    sagemaker = server.client("sagemaker")
    bucket = sdk_session().default_bucket()
    model = create_model(sagemaker, server.client("s3"), bucket, unique_name, 2.0)
    try:
        create_endpoint(sagemaker, unique_name, [variant("AllTraffic", model, 1.0)])
        runtime = server.client("sagemaker-runtime")
        for value in (1, 2, 3):
            runtime.invoke_endpoint(EndpointName=unique_name, ContentType="application/json",
                                    Body=json.dumps([value]))
        chart = "figure[data-metric='AllTraffic: invocations per minute'] circle"
        deadline = time.monotonic() + 60  # invocation metrics reach the store every 10 s
        while True:
            page.goto(f"{server.endpoint_url}/console/endpoints/{unique_name}")
            if page.locator(chart).count() or time.monotonic() > deadline:
                break
            page.wait_for_timeout(1000)
        assert page.locator(chart).count() >= 1
        assert "AllTraffic" in page.inner_text("#variants")
        assert page.locator("#endpoint-live .badge").first.inner_text() == "InService"
        shot(page, screenshots, "endpoint")
    finally:
        delete_endpoint(sagemaker, unique_name)


def test_sign_out_ends_the_session_and_needs_the_token(server):
    session = signed_in(server)
    home = session.get(f"{server.endpoint_url}/console/", allow_redirects=False)
    assert home.status_code == 200
    refused = session.post(f"{server.endpoint_url}/console/signout", allow_redirects=False)
    assert refused.status_code == 403
    answer = session.post(f"{server.endpoint_url}/console/signout", allow_redirects=False,
                          data={"csrf": csrf_of(home.text)})
    assert answer.status_code == 303 and "Max-Age=0" in answer.headers["set-cookie"]
    assert session.get(f"{server.endpoint_url}/console/",
                       allow_redirects=False).status_code == 302
