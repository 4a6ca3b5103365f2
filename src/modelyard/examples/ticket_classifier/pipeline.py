"""The ticket-classifier pipeline of DESIGN.md §2, written with the SageMaker SDK only.

preprocess -> train BlazingText -> evaluate -> condition (accuracy >= threshold)
-> register the model version, else fail with the measured accuracy.
"""

from __future__ import annotations

from pathlib import Path

from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.retry import SageMakerJobExceptionTypeEnum, SageMakerJobStepRetryPolicy
from sagemaker.workflow.step_collections import RegisterModel
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

SCRIPTS = Path(__file__).parent


def build_pipeline(
    name: str, role: str, bucket: str, prefix: str, *, group: str,
    session: PipelineSession | None = None, caching: bool = True,
) -> Pipeline:
    session = session or PipelineSession(default_bucket=bucket)
    region = session.boto_region_name
    input_uri = ParameterString("InputDataUrl", default_value=f"s3://{bucket}/{prefix}/raw")
    min_tokens = ParameterInteger("MinTokens", default_value=10)
    learning_rate = ParameterFloat("LearningRate", default_value=0.05)
    epochs = ParameterInteger("Epochs", default_value=10)
    threshold = ParameterFloat("AccuracyThreshold", default_value=0.8)
    approval = ParameterString("ApprovalStatus", default_value="PendingManualApproval")
    cache = CacheConfig(enable_caching=caching, expire_after="P30D")
    retry = [SageMakerJobStepRetryPolicy(
        exception_types=[SageMakerJobExceptionTypeEnum.INTERNAL_ERROR], max_attempts=2,
        interval_seconds=1)]

    processor = SKLearnProcessor(framework_version="1.2-1", role=role, instance_count=1,
                                 instance_type="ml.m5.xlarge", sagemaker_session=session)
    preprocess = ProcessingStep("Preprocess", cache_config=cache, retry_policies=retry, step_args=processor.run(
        code=str(SCRIPTS / "preprocessing.py"),
        inputs=[ProcessingInput(source=input_uri, destination="/opt/ml/processing/input/tickets")],
        outputs=[ProcessingOutput(output_name=split, source=f"/opt/ml/processing/{split}")
                 for split in ("train", "validation", "test")],
        arguments=["--min-tokens", min_tokens.to_string()],
    ))
    outputs = preprocess.properties.ProcessingOutputConfig.Outputs

    estimator = Estimator(
        image_uri=image_uris.retrieve("blazingtext", region, "latest"), role=role,
        instance_count=1, instance_type="ml.c5.xlarge", sagemaker_session=session,
        output_path=f"s3://{bucket}/{prefix}/models",
        hyperparameters={"mode": "supervised", "epochs": epochs, "learning_rate": learning_rate,
                         "word_ngrams": 2, "vector_dim": 100, "buckets": 200000},
        metric_definitions=[{"Name": "validation:accuracy",
                             "Regex": "#validation_accuracy: ([0-9.]+)"}],
    )
    train = TrainingStep("Train", cache_config=cache, step_args=estimator.fit({
        "train": TrainingInput(outputs["train"].S3Output.S3Uri),
        "validation": TrainingInput(outputs["validation"].S3Output.S3Uri),
    }))

    report = PropertyFile(name="Evaluation", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep("Evaluate", property_files=[report], step_args=processor.run(
        code=str(SCRIPTS / "evaluation.py"),
        inputs=[ProcessingInput(source=train.properties.ModelArtifacts.S3ModelArtifacts,
                                destination="/opt/ml/processing/model"),
                ProcessingInput(source=outputs["test"].S3Output.S3Uri,
                                destination="/opt/ml/processing/test")],
        outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
    ))
    evaluation_uri = Join(on="/", values=[
        evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
        "evaluation.json"])

    register = RegisterModel(
        "Register", estimator=estimator, model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        content_types=["application/json"], response_types=["application/json"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=group, approval_status=approval,
        model_metrics=ModelMetrics(model_statistics=MetricsSource(
            s3_uri=evaluation_uri, content_type="application/json")),
    )
    accuracy = JsonGet(step_name=evaluate.name, property_file=report, json_path="metrics.accuracy")
    fail = FailStep("AccuracyTooLow", error_message=Join(on=" ", values=[
        "Accuracy", accuracy, "is below the threshold", threshold]))
    check = ConditionStep(
        "CheckAccuracy", conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=threshold)],
        if_steps=[register], else_steps=[fail])
    return Pipeline(
        name=name,
        parameters=[input_uri, min_tokens, learning_rate, epochs, threshold, approval],
        steps=[preprocess, train, evaluate, check],
        sagemaker_session=session,
    )
