"""The datamart: the feature store over HTTP. ``datamart.app`` is the FastAPI app (run by
``featurestore serve``), ``datamart.client.DatamartClient`` its Python client."""
