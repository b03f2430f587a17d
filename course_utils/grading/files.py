"""Small file helpers of the grading tools: safe zip extraction and a parallel map."""

from __future__ import annotations

import concurrent.futures as cf
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from tqdm.auto import tqdm

from .kernel import STOP

J = TypeVar("J")
R = TypeVar("R")


def extract_zip(archive: os.PathLike | str, dest: os.PathLike | str) -> Path:
    """Extract a zip of submissions (e.g. uploaded to Colab), refusing paths that leave ``dest``."""
    dest = Path(dest).resolve()
    with zipfile.ZipFile(archive) as z:
        for member in z.namelist():
            target = (dest / member).resolve()
            if dest != target and dest not in target.parents:
                raise ValueError(f"{archive}: member {member!r} would be written outside {dest}")
        z.extractall(dest)
    return dest


def parallel_map(
    fn: Callable[[J], R],
    jobs: Iterable[J],
    workers: int = 1,
    desc: str = "",
    label: Optional[Callable[[J], str]] = None,
) -> Iterator[tuple[J, Any]]:
    """Yield ``(job, fn(job))`` as jobs finish, with a progress bar, ``workers`` at a time.

    Threads are enough: each job's real work happens in its kernel's own process, and
    threads work the same from a script, a shell or a Jupyter/Colab cell. An exception
    in a job is yielded in place of its result, so one bad job never stops the others.
    Ctrl-C (or a Jupyter interrupt) sets :data:`~course_utils.grading.kernel.STOP`, which
    makes every running kernel call return at once, then re-raises.
    """
    jobs = list(jobs)
    STOP.clear()
    bar = tqdm(total=len(jobs), desc=desc, unit="job")
    pool = cf.ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(_call, fn, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            job = futures[fut]
            yield job, fut.result()
            if label:
                bar.set_postfix_str(label(job), refresh=False)
            bar.update(1)
    except BaseException:
        STOP.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _call(fn: Callable[[J], R], job: J) -> Any:
    try:
        return fn(job)
    except Exception as err:
        return err


def default_workers() -> int:
    """How many kernels to run side by side: the CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
