"""callaudit: audit every recorded debt-collection call.

The library is free of Prefect imports; orchestration lives in ``flows/``.
"""

import os

__version__ = "0.1.0"

# Whisper's arithmetic (CTranslate2 with OpenMP) follows OpenMP's team size on some CPUs:
# on an AMD EPYC, 26 of the 55 sample utterances came out differently with the default
# team (one thread per core) than with one thread, which is what Dask gives its workers
# (OMP_NUM_THREADS=1).  Pinned the same way here, a call is heard the same in one
# process, in --workers threads or on a --processes cluster; parallelism comes from
# those, one Whisper thread each.  libgomp reads this when ctranslate2 loads, so it is
# set on the first import of the package, before any module imports faster-whisper.
# A value the user set is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")
