"""Django signals for lifecycle events (events/): the Django adapter subscribes to its
middleware's feed and sends one signal, ``lifecycle_event``, for every kind.

::

    from django.dispatch import receiver
    from webwork_sso_middleware.integrations.django_signals import lifecycle_event

    @receiver(lifecycle_event)
    def on_sso_event(sender, event, kind, **kwargs):
        if kind == "member.deactivated":
            ...  # event.identity is the member's REMOTE_USER, event.workspace its slug

One signal with the kind as an argument, not one per kind: receivers filter on a string they
can read, kinds added later need no new signal, and a receiver that wants every event (an
activity log) connects once. ``sender`` is ``SSOMiddleware`` (the class), as Django's own
signals send the model class. Sent after the change commits, in the process that made it;
a receiver that raises is logged and never fails the SCIM request or the sign-in. Another
process (a worker, a cron job) reads the durable feed: ``middleware.events.since(cursor)``.
"""

from __future__ import annotations

from django.dispatch import Signal

from ..events import Event
from ..logs import package_logger
from ..middleware import SSOMiddleware

log = package_logger(__name__)

# Arguments: event (events.Event), kind (event.kind).
lifecycle_event = Signal()


def connect(middleware: SSOMiddleware) -> None:
    """Send ``lifecycle_event`` for each event of ``middleware``'s feed."""
    # Asked at each commit: with no receiver connected, a commit reads and builds nothing.
    middleware.events.subscribe(_send, listening=_has_receivers)


def _has_receivers() -> bool:
    return lifecycle_event.has_listeners(SSOMiddleware)


def _send(event: Event) -> None:
    # send_robust: one receiver's error must not keep the others from hearing the event.
    for receiver, outcome in lifecycle_event.send_robust(
        sender=SSOMiddleware, event=event, kind=event.kind
    ):
        if isinstance(outcome, Exception):
            log.error(
                "lifecycle_event receiver %r failed on %s", receiver, event.kind, exc_info=outcome
            )
