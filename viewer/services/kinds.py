"""The registry of job kinds (Redash's query-runner registry is the model).

Use-cases never import the Celery module: they enqueue through this registry, which
``viewer.tasks`` fills with its tasks when the app is built (``tasks.register_kinds``). A kind
names the task that runs a whole job, or, for chunked kinds, the task per chunk and the
finaliser; and the hook that runs once when a job of the kind ends (done, error or cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from kombu.exceptions import OperationalError

# Fail fast when the broker is down, so a request answers 503 in about a second instead of hanging.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


class Sender(Protocol):
    """What a kind needs of a task: Celery's ``apply_async``."""

    def apply_async(self, args: list[Any] | None = ..., **options: Any) -> Any: ...


class BrokerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Sender | None = None        # single-task kinds: one message runs the whole job
    chunk: Sender | None = None      # chunked kinds: one message per chunk ...
    finalize: Sender | None = None   # ... and one for the finaliser once every chunk is done
    on_end: Callable[[str, str], None] | None = None  # (job id, final state), after the state is written

    @property
    def chunked(self) -> bool:
        return self.chunk is not None


_kinds: dict[str, JobKind] = {}


def register(kind: JobKind) -> None:
    """Add or replace a kind (registering the same kind again is harmless)."""
    if (kind.run is None) == (kind.chunk is None) or (kind.chunk is not None and kind.finalize is None):
        raise ValueError(f"job kind {kind.name!r} needs either run, or chunk and finalize")
    _kinds[kind.name] = kind


def get(name: str) -> JobKind:
    try:
        return _kinds[name]
    except KeyError:
        raise LookupError(f"no job kind {name!r} is registered (viewer.tasks.register_kinds fills them)") from None


def names(*, chunked: bool | None = None) -> tuple[str, ...]:
    return tuple(k for k, v in _kinds.items() if chunked is None or v.chunked == chunked)


def send(sender: Sender, *args: Any, countdown: float | None = None) -> None:
    """Publish one message, or raise BrokerUnavailable quickly."""
    options: dict[str, Any] = {"retry": True, "retry_policy": PUBLISH_RETRY}
    if countdown:
        options["countdown"] = countdown
    try:
        sender.apply_async(args=list(args), **options)
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable("The job queue is not reachable; try again shortly.") from exc


def enqueue_run(kind: str, job_id: str) -> None:
    send(get(kind).run, job_id)


def enqueue_chunk(kind: str, job_id: str, index: int, countdown: float | None = None) -> None:
    send(get(kind).chunk, job_id, index, countdown=countdown)


def enqueue_finalize(kind: str, job_id: str) -> None:
    send(get(kind).finalize, job_id)


def ended(kind: str, job_id: str, state: str) -> None:
    """Run the kind's end hook (if it has one) for a job that just ended in ``state``."""
    hook = _kinds.get(kind)
    if hook is not None and hook.on_end is not None:
        hook.on_end(job_id, state)
