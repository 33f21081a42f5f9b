"""The registry UI: a web catalog of the feature store, served by ``featurestore ui``.

Server-rendered pages (FastAPI and Jinja2; charts and the lineage graph are inline SVG), so it
works from a plain ``pip install``, with no Node.js and no JavaScript needed in the browser:

* ``/`` search features, feature views, services and entities, filtered by tag, owner, kind;
* ``/views/{name}`` a feature view: schema, source, transformation, versions, freshness, runs,
  quality and statistics;
* ``/lineage`` sources → feature views → feature services → models, as a graph;
* ``/usage`` the most read features, who reads them, reads per day, and features nobody reads.

It reads the registry only; it imports the core (``featurestore``), nothing beside it.
"""

from __future__ import annotations

from registry_ui.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
