"""callaudit: audit every recorded debt-collection call.

The library is free of Prefect imports; orchestration lives in ``flows/``.
"""

__version__ = "0.1.0"
