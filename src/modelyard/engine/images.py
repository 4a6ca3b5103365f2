"""Which runtime runs a container image: the URIs ``sagemaker.image_uris`` returns, any region.

SageMaker images live at ``<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repo>:<tag>``;
the repository name says what the container is, whatever the account or region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..api.errors import validation_error

_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repo>[a-z0-9._/-]+)(?::(?P<tag>[\w.-]+))?(?:@sha256:[0-9a-f]{64})?$"
)

# image_uris.retrieve's tags: "<framework_version>[-<processor>-<py_version>]".
_FRAMEWORK_VERSION_TAG = re.compile(r"^(?P<version>\d+\.\d+(?:\.\d+)?(?:-\d+)?)(?:-(?:cpu|gpu)(?:-py\d+)?)?$")


@dataclass(frozen=True)
class Image:
    uri: str
    repository: str
    tag: str
    framework: str  # "sklearn", "xgboost", "blazingtext"

    @property
    def framework_version(self) -> str | None:
        """The SDK's ``framework_version`` the tag names: ``1.2-1`` for ``1.2-1-cpu-py3``,
        ``1.7-1`` for ``1.7-1``; None for tags without one (``latest``, ``1``)."""
        match = _FRAMEWORK_VERSION_TAG.match(self.tag)
        return match["version"] if match else None


_FRAMEWORKS = {
    "sagemaker-scikit-learn": "sklearn",
    "sagemaker-xgboost": "xgboost",
    "xgboost": "xgboost",  # the legacy 0.72 algorithm image
    "blazingtext": "blazingtext",
}

SUPPORTED = (
    "scikit-learn (sagemaker-scikit-learn), XGBoost (sagemaker-xgboost) and BlazingText "
    "(blazingtext), as sagemaker.image_uris.retrieve returns them for any region"
)


def parse_image(uri: str) -> Image | None:
    match = _ECR_IMAGE.match(uri.strip())
    if not match:
        return None
    repository = match["repo"]
    framework = _FRAMEWORKS.get(repository)
    if framework is None:
        return None
    return Image(uri=uri, repository=repository, tag=match["tag"] or "latest", framework=framework)


# The Model Monitor analyzer (image_uris.retrieve("model-monitor", region)): processing jobs
# with it run modelyard's analyzer, ``python -m modelyard.monitor.analyzer``.
MODEL_MONITOR_REPOSITORY = "sagemaker-model-monitor-analyzer"
MODEL_MONITOR = "model-monitor"


def processing_image(uri: str, member: str) -> Image:
    """The image of a processing job: a framework image, or the Model Monitor analyzer
    (framework ``model-monitor``), which needs no ContainerEntrypoint."""
    match = _ECR_IMAGE.match(uri.strip())
    if match and match["repo"] == MODEL_MONITOR_REPOSITORY:
        return Image(uri=uri, repository=MODEL_MONITOR_REPOSITORY, tag=match["tag"] or "latest",
                     framework=MODEL_MONITOR)
    return require_image(uri, member)


def require_image(uri: str, member: str) -> Image:
    image = parse_image(uri)
    if image is None:
        raise validation_error(
            f"{member} {uri!r} is not an image modelyard can run. modelyard runs "
            f"{SUPPORTED}; custom containers need Docker, which modelyard does not use."
        )
    return image


def training_runtime(image: Image, hyperparameters: dict[str, str]) -> tuple[str, str]:
    """(runtime module, working directory inside /opt/ml) for a training image."""
    script = "sagemaker_program" in hyperparameters
    if image.framework == "blazingtext":
        return "modelyard.runtimes.blazingtext", "/opt/ml"
    if image.framework == "xgboost" and not script:
        return "modelyard.runtimes.xgboost_algorithm", "/opt/ml"
    if not script:
        raise validation_error(
            f"The {image.repository} image runs training scripts (script mode): pass "
            "entry_point to the estimator, i.e. the sagemaker_program and "
            "sagemaker_submit_directory hyperparameters."
        )
    return "modelyard.runtimes.script_mode", "/opt/ml/code"
