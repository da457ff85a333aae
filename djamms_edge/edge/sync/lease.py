"""The master lease as a pure state machine.

One box per venue may play. The hub's player registry decides who (``register``
answers registered / reconnected / conflict, each with an epoch), and every new
master gets a strictly higher epoch, the fencing token its writes carry. This
module decides what the edge does with those answers; it does no I/O and takes
the time as an argument, so every transition is tested table-driven.

Rules that are the point of it:
- a master that *learns* it lost the lease (heartbeat not_found, a higher epoch
  in the feed, a fenced write, a register conflict) halts at once: two TVs a
  second apart are worse than silence;
- a master that merely *cannot reach* the hub keeps playing (venue first) and
  says so; when the hub answers again it re-registers and yields if someone
  else took the lease meanwhile;
- a standby retries ``register`` every heartbeat interval, so it takes over at
  most one interval after the hub declares the master stale, and at once when
  the feed says the master released;
- a box restarted while the hub is unreachable resumes playing only if it was
  the master when it went down (single-box venues keep playing through an
  outage; a former standby never starts a second TV).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    STARTING = "starting"
    MASTER = "master"
    MASTER_OFFLINE = "master-offline"  # playing on our last lease; the hub is unreachable
    STANDBY = "standby"
    STOPPED = "stopped"


PLAYING_ROLES = frozenset({Role.MASTER, Role.MASTER_OFFLINE})


class Request(StrEnum):
    REGISTER = "register"
    HEARTBEAT = "heartbeat"
    RELEASE = "release"


@dataclass(frozen=True)
class LeaseTiming:
    heartbeat_interval: float = 5.0
    retry_min: float = 1.0  # first retry after the hub failed to answer
    retry_max: float = 10.0  # backoff cap; also how late an offline master learns the hub is back


# --- events (inputs) ---------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """Time passed; a due request is sent."""


@dataclass(frozen=True)
class Granted:
    """``register`` answered registered or reconnected: we hold the lease with ``epoch``."""

    status: Literal["registered", "reconnected"]
    epoch: int


@dataclass(frozen=True)
class Conflict:
    """``register`` answered conflict: ``device`` holds a fresh lease."""

    device: str
    epoch: int | None = None


@dataclass(frozen=True)
class HeartbeatOk:
    pass


@dataclass(frozen=True)
class HeartbeatLost:
    """``heartbeat`` answered not_found: the hub no longer lists us as master."""


@dataclass(frozen=True)
class Unreachable:
    """The request in flight failed (connection error, timeout, 5xx). ``jitter`` in [0, 1)."""

    jitter: float = 0.0


@dataclass(frozen=True)
class Refused:
    """The hub answered the request with a refusal (a token for another box or venue, a revoked token): it is
    reachable, so this is never "unreachable", and a box starting up never resumes playing on it."""

    reason: str
    jitter: float = 0.0


@dataclass(frozen=True)
class HubBack:
    """Something else (the change feed) reached the hub again: retry now instead of after backoff."""


@dataclass(frozen=True)
class MasterChanged:
    """The change feed names the master and its epoch."""

    device: str
    epoch: int


@dataclass(frozen=True)
class LeaseReleased:
    """The change feed says the master with ``epoch`` released the lease (graceful stop)."""

    epoch: int


@dataclass(frozen=True)
class Fenced:
    """A master-only write was refused: our epoch is stale."""

    current_epoch: int | None = None


@dataclass(frozen=True)
class Released:
    """Our ``release`` got an answer (or gave up); nothing more to send."""


@dataclass(frozen=True)
class Shutdown:
    """Graceful stop requested."""


Event = (
    Tick
    | Granted
    | Conflict
    | HeartbeatOk
    | HeartbeatLost
    | Unreachable
    | Refused
    | HubBack
    | MasterChanged
    | LeaseReleased
    | Fenced
    | Released
    | Shutdown
)

# --- actions (outputs) -------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    """Be playing, fencing master-only writes with ``epoch`` (idempotent: may repeat with a new epoch)."""

    epoch: int


@dataclass(frozen=True)
class Halt:
    """Stop playing now."""

    reason: str


@dataclass(frozen=True)
class Send:
    request: Request
    epoch: int | None = None


@dataclass(frozen=True)
class Note:
    """One log line: the state changed in a way a person on call cares about."""

    message: str


Action = Play | Halt | Send | Note


# --- state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseState:
    device: str
    role: Role = Role.STARTING
    epoch: int | None = None  # ours, while master or master-offline
    seen_epoch: int = 0  # highest epoch seen anywhere: never play on a lower one
    master_device: str | None = None
    hub_ok: bool = True  # last request got an answer
    failures: int = 0  # consecutive unanswered requests (for backoff)
    next_at: float = 0.0  # when the next request is due
    pending: Request | None = None
    since: float = 0.0  # when the role last changed
    unreachable_since: float | None = None
    resume_epoch: int | None = None  # at start: the epoch we played on before a restart
    wake_early: bool = False  # release seen while a register was in flight

    @property
    def playing(self) -> bool:
        return self.role in PLAYING_ROLES


def initial(device: str, now: float, resume_epoch: int | None = None) -> LeaseState:
    """A starting edge. ``resume_epoch``: it was master on that epoch when it last ran."""
    return LeaseState(device=device, next_at=now, since=now, resume_epoch=resume_epoch, seen_epoch=resume_epoch or 0)


def next_wakeup(state: LeaseState) -> float | None:
    """When the driver should feed the next Tick (None: only events can move it)."""
    if state.role is Role.STOPPED or state.pending is not None:
        return None
    return state.next_at


def backoff(timing: LeaseTiming, failures: int, jitter: float) -> float:
    """Exponential backoff with 'equal jitter': between half and all of the capped delay."""
    ceiling = min(timing.retry_max, timing.retry_min * 2 ** max(failures - 1, 0))
    return ceiling / 2 + ceiling / 2 * jitter


Step = tuple[LeaseState, list[Action]]


def step(state: LeaseState, event: Event, now: float, timing: LeaseTiming) -> Step:
    """The next state and what to do, given one event at time ``now``."""
    if state.role is Role.STOPPED:
        return _stopped(state, event)
    match event:
        case Tick():
            return _tick(state, now)
        case Shutdown():
            return _shutdown(state, now)
        case Granted():
            return _granted(state, event, now, timing)
        case Conflict():
            return _conflict(state, event, now, timing)
        case HeartbeatOk():
            return _answered(replace(state, next_at=now + timing.heartbeat_interval)), []
        case HeartbeatLost():
            return _lose(state, now, "the hub no longer lists this box as master", retry_at=now)
        case Unreachable():
            return _unreachable(state, event, now, timing)
        case Refused():
            return _refused(state, event, now, timing)
        case HubBack():
            if state.hub_ok or state.pending is not None:
                return state, []
            return replace(state, next_at=min(state.next_at, now)), []
        case MasterChanged():
            return _master_changed(state, event, now, timing)
        case LeaseReleased():
            return _lease_released(state, event, now)
        case Fenced():
            seen = max(state.seen_epoch, event.current_epoch or 0)
            return _lose(replace(state, seen_epoch=seen), now, "the hub refused our epoch", retry_at=now)
        case Released():
            return replace(state, pending=None), []
    raise AssertionError(f"unhandled event {event!r}")


def _tick(state: LeaseState, now: float) -> Step:
    if state.pending is not None or now < state.next_at:
        return state, []
    request = Request.HEARTBEAT if state.role is Role.MASTER else Request.REGISTER
    epoch = state.epoch if request is Request.HEARTBEAT else None
    return replace(state, pending=request), [Send(request, epoch)]


def _answered(new: LeaseState) -> LeaseState:
    """Common bookkeeping for any answer from the hub."""
    return replace(new, pending=None, hub_ok=True, failures=0, unreachable_since=None)


def _recovery_note(state: LeaseState, now: float) -> list[Action]:
    if state.hub_ok or state.unreachable_since is None:
        return []
    return [Note(f"hub reachable again after {now - state.unreachable_since:.0f}s")]


def _granted(state: LeaseState, event: Granted, now: float, timing: LeaseTiming) -> Step:
    notes = _recovery_note(state, now)
    if event.epoch < state.seen_epoch:
        # A later master already exists (we saw its epoch in the feed): this answer is stale.
        answered = _answered(state)
        return _lose(answered, now, f"granted epoch {event.epoch} is older than {state.seen_epoch}", retry_at=now)
    new = _answered(
        replace(
            state,
            role=Role.MASTER,
            epoch=event.epoch,
            seen_epoch=event.epoch,
            master_device=state.device,
            next_at=now + timing.heartbeat_interval,
            since=now if state.role is not Role.MASTER_OFFLINE else state.since,
            resume_epoch=None,
            wake_early=False,
        ),
    )
    actions: list[Action] = list(notes)
    if state.role is Role.MASTER_OFFLINE:
        if event.epoch != state.epoch:
            actions.append(Note(f"still master, new epoch {event.epoch} ({event.status})"))
            actions.append(Play(event.epoch))
        else:
            actions.append(Note(f"still master on epoch {event.epoch}"))
        return new, actions
    actions.append(Note(f"became master (epoch {event.epoch}, {event.status})"))
    actions.append(Play(event.epoch))
    return new, actions


def _conflict(state: LeaseState, event: Conflict, now: float, timing: LeaseTiming) -> Step:
    seen = max(state.seen_epoch, event.epoch or 0)
    retry = now if state.wake_early else now + timing.heartbeat_interval
    answered = _answered(replace(state, seen_epoch=seen, master_device=event.device, wake_early=False))
    notes = _recovery_note(state, now)
    if state.playing:
        halted, actions = _lose(answered, now, f"{event.device} holds the lease", retry_at=retry)
        return halted, notes + actions
    new = replace(
        answered, role=Role.STANDBY, next_at=retry, since=now if state.role is not Role.STANDBY else state.since
    )
    if state.role is not Role.STANDBY or state.master_device != event.device:
        notes.append(Note(f"standby: {event.device} is master"))
    return new, [*_starting_halt(state), *notes]


def _starting_halt(state: LeaseState) -> list[Action]:
    # A box that starts as a standby must not later resume a play it was interrupted in before the restart.
    return [Halt("standby at start")] if state.role is Role.STARTING else []


def _lose(state: LeaseState, now: float, reason: str, *, retry_at: float) -> Step:
    """We learned the lease is not ours: halt if playing, become a standby that retries at ``retry_at``."""
    new = replace(state, role=Role.STANDBY, epoch=None, pending=None, next_at=retry_at, resume_epoch=None)
    if not state.playing:
        return replace(new, since=state.since if state.role is Role.STANDBY else now), []
    return replace(new, since=now), [Halt(reason), Note(f"lost the lease, stopped playing: {reason}")]


def _backing_off(state: LeaseState, jitter: float, now: float, timing: LeaseTiming) -> LeaseState:
    """No usable answer: retry after a backoff that grows with each failure in a row."""
    failures = state.failures + 1
    return replace(
        state,
        pending=None,
        hub_ok=False,
        failures=failures,
        next_at=now + backoff(timing, failures, jitter),
        unreachable_since=state.unreachable_since if state.unreachable_since is not None else now,
    )


def _refused(state: LeaseState, event: Refused, now: float, timing: LeaseTiming) -> Step:
    new, why = _backing_off(state, event.jitter, now, timing), f"the hub refuses this box ({event.reason})"
    if state.role is Role.MASTER:
        return replace(new, role=Role.MASTER_OFFLINE), [Note(f"{why}: keep playing as master (offline)")]
    if state.role is Role.STARTING:
        note = Note(f"{why}: standby until it accepts this box")
        return replace(new, role=Role.STANDBY, since=now, resume_epoch=None), [*_starting_halt(state), note]
    return new, [Note(why)] if state.hub_ok else []


def _unreachable(state: LeaseState, event: Unreachable, now: float, timing: LeaseTiming) -> Step:
    new = _backing_off(state, event.jitter, now, timing)
    first = state.hub_ok
    if state.role is Role.MASTER:
        return replace(new, role=Role.MASTER_OFFLINE), [Note("hub unreachable: keep playing as master (offline)")]
    if state.role is Role.STARTING and state.resume_epoch is not None:
        epoch = state.resume_epoch
        offline = replace(new, role=Role.MASTER_OFFLINE, epoch=epoch, master_device=state.device, since=now)
        return offline, [Note(f"hub unreachable at start: resume playing on epoch {epoch} (offline)"), Play(epoch)]
    if state.role is Role.STARTING:
        note = Note("hub unreachable at start: standby until it answers")
        return replace(new, role=Role.STANDBY, since=now), [*_starting_halt(state), note]
    return new, [Note(f"hub unreachable ({state.role})")] if first else []


def _master_changed(state: LeaseState, event: MasterChanged, now: float, timing: LeaseTiming) -> Step:
    if event.device == state.device:
        # Our own registration echoed by the feed: the register answer itself moves us.
        return replace(state, seen_epoch=max(state.seen_epoch, event.epoch)) if not state.playing else state, []
    if event.epoch < state.seen_epoch:
        return state, []  # an old event replayed after a newer one
    seen = replace(state, seen_epoch=event.epoch, master_device=event.device)
    if state.playing:
        return _lose(
            seen,
            now,
            f"{event.device} became master with epoch {event.epoch}",
            retry_at=now + timing.heartbeat_interval,
        )
    if state.master_device != event.device and state.role is Role.STANDBY:
        return seen, [Note(f"standby: {event.device} is master (epoch {event.epoch})")]
    return seen, []


def _lease_released(state: LeaseState, event: LeaseReleased, now: float) -> Step:
    if state.playing or event.epoch < state.seen_epoch:
        return state, []  # our own release echoed back, or an old one
    if state.pending is Request.REGISTER:
        return replace(state, wake_early=True), []
    return replace(state, next_at=now), []


def _shutdown(state: LeaseState, now: float) -> Step:
    stopped = replace(state, role=Role.STOPPED, since=now, pending=None)
    if not state.playing:
        return stopped, [Note("stopped (was not playing)")]
    actions: list[Action] = [
        Halt("shutting down"),
        Send(Request.RELEASE, state.epoch),
        Note("stopped, releasing the lease"),
    ]
    return replace(stopped, pending=Request.RELEASE), actions


def _stopped(state: LeaseState, event: Event) -> Step:
    if isinstance(event, Granted):
        # A register answered after we decided to stop: give the lease straight back.
        return replace(state, pending=Request.RELEASE), [Send(Request.RELEASE, event.epoch)]
    if isinstance(event, (Released, Unreachable, Refused, HeartbeatOk, HeartbeatLost, Conflict)):
        return replace(state, pending=None), []
    return state, []
