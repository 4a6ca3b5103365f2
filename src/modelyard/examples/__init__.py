"""Runnable user code for modelyard's demos: plain SageMaker SDK scripts, nothing private."""
