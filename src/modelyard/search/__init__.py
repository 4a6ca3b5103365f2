"""SageMaker Search: expressions compiled against botocore's record shapes, evaluated in Python."""
