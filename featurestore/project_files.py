"""Loading a project's definitions from the Python files its ``featurestore.yaml`` names."""

from __future__ import annotations

import importlib.util
import sys
import traceback

from featurestore.config import ProjectConfig
from featurestore.definitions import Entity, FeatureService, FeatureView, FileSource, SqlSource
from featurestore.errors import ConfigError, DefinitionError

DEFINITION_TYPES = (Entity, FileSource, SqlSource, FeatureView, FeatureService)


def load_definitions(config: ProjectConfig) -> list[object]:
    """Import each definition file and return its module-level definitions, in file order."""
    objects: list[object] = []
    for i, name in enumerate(config.definitions):
        path = config.resolve(name)
        if not path.exists():
            raise ConfigError(
                f"definition file '{path}' does not exist", file=str(config.file or ""), key="definitions"
            )
        module_name = f"_featurestore_defs_{config.project}_{i}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import '{path}' as Python", file=str(config.file or ""), key="definitions")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        root = str(config.root)
        added = root not in sys.path
        if added:
            sys.path.insert(0, root)  # definition files may import helpers next to them
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            # Name the line of the definition file that failed (the last of its frames).
            frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == str(path)]
            where = f"{path.name}:{frames[-1].lineno}" if frames else path.name
            if isinstance(err, DefinitionError):
                raise DefinitionError([f"{where}: {p}" for p in err.problems]) from err
            raise DefinitionError([f"{where}: {type(err).__name__}: {err}"]) from err
        finally:
            if added:
                sys.path.remove(root)
        objects.extend(v for v in vars(module).values() if isinstance(v, DEFINITION_TYPES))
    return objects
