"""Serving: endpoint fleets of model servers, routing between variants, data capture."""
