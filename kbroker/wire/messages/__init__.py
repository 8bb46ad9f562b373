"""Every API kbroker can decode, by key. Each module here declares one API as data (`api(...)`);
`APIS` collects them, so a new module is all it takes to declare an API."""
import importlib
import pkgutil

from kbroker.wire.schema import Api


def _declared() -> dict[int, Api]:
    found: dict[int, Api] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, Api):
                if value.key in found and found[value.key] is not value:
                    raise ImportError(f"API key {value.key} declared twice: {found[value.key].name}, {value.name}")
                found[value.key] = value
    return dict(sorted(found.items()))


APIS: dict[int, Api] = _declared()
