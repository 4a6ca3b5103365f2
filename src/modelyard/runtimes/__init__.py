"""Code that runs inside a training job, behind SageMaker's container contract.

Each runtime is a module the executor starts as ``python -m modelyard.runtimes.<name>``
inside a directory laid out like a SageMaker container's ``/opt/ml``:

- ``blazingtext``        the built-in BlazingText algorithm (supervised mode, on fastText)
- ``xgboost_algorithm``  the built-in XGBoost algorithm (sagemaker-xgboost 1.7-1, algorithm mode)
- ``script_mode``        the sagemaker-training toolkit: runs a user's entry point
                         (scikit-learn and XGBoost framework containers)

``container`` holds what they share: paths, config files, the failure file.
This package deliberately imports nothing heavy, so a runtime pays only for what it uses.
"""
