"""Code that runs inside an endpoint instance (and, later, a batch transform), behind
SageMaker's hosting container contract; ``runtimes.model_server`` is the process.

- ``http``               a minimal asyncio HTTP/1.1 server (keep-alive, inline handlers)
- ``base``               the handler interface, HTTP errors, media-type helpers
- ``blazingtext``        BlazingText supervised models (fastText ``model.bin``)
- ``xgboost_algorithm``  the built-in XGBoost algorithm's server
- ``xgboost_selectable`` its ``SAGEMAKER_INFERENCE_OUTPUT`` per-record fields
- ``script_mode``        the scikit-learn / XGBoost framework containers' user-module server
"""
