"""Helpers of the workflow scripts (not part of the library): logging to the rule's log file, atomic copies.

Each script is run by Snakemake's ``script:`` directive with a ``snakemake`` object in its globals; it calls
``main(snakemake)`` inside :func:`logged`, which sends stdout, stderr and the ``logging`` root logger to
``snakemake.log[0]``, imports the config's ``plugins`` (so the job resolves the experiment names of methods
registered outside the registry, as the Snakefile did) and writes the traceback to the log when the script fails
(the exception still propagates, so the job fails and Snakemake deletes its declared outputs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def import_plugins(snakemake) -> None:
    """Import the modules of the config's ``plugins`` from the working directory first, as the Snakefile does."""
    plugins = snakemake.config.get("plugins", [])
    if plugins:  # the registry imports torch, which a job without plugins may not need
        from tedsnet.experiments import load_plugins

        load_plugins(plugins, search_path=os.getcwd())


@contextlib.contextmanager
def logged(snakemake) -> Iterator[logging.Logger]:
    """Redirect output and logging of the block to the rule's log file, import the config's plugins first (see
    :func:`import_plugins`), and log the traceback of a failure."""
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"workflow.{snakemake.rule}")
    with open(log_path, "w", buffering=1, encoding="utf-8") as handle:
        old_out, old_err = sys.stdout, sys.stderr
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        sys.stdout = sys.stderr = handle
        start = time.perf_counter()
        logger.info(
            "rule %s, wildcards %s, threads %s", snakemake.rule, dict(snakemake.wildcards), snakemake.threads
        )
        try:
            import_plugins(snakemake)
            yield logger
            logger.info("done in %.1f s", time.perf_counter() - start)
        except BaseException:
            traceback.print_exc(file=handle)
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            root.removeHandler(handler)


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` through the suite's atomic writer (a temporary file renamed into place)."""
    from tedsnet.io import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def set_threads(n: int) -> None:
    """Torch intra-op threads of this job (Snakemake's ``threads``)."""
    import torch

    torch.set_num_threads(max(1, int(n)))
