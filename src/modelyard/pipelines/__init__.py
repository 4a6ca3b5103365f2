"""SageMaker Pipelines: the definition interpreter and the execution engine."""
