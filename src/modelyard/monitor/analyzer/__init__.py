"""modelyard's stand-in for the SageMaker Model Monitor analyzer container.

A processing job whose image is ``sagemaker-model-monitor-analyzer`` runs
``python -m modelyard.monitor.analyzer`` with SageMaker's container environment
(``dataset_format``, ``dataset_source``, ``output_path``, ``baseline_statistics``, ...).
"""
