"""Lifecycle events for the host app: what happened to members and groups, after it committed.

Two ways to hear them, one event shape (:class:`Event`):

- In-process: ``middleware.events.subscribe(handler, kinds=None)``; the handler is called after
  the change commits, in the process (and on the thread) that made it. A handler that raises
  is logged and never fails the request that made the change.
- Durable: ``middleware.events.since(cursor)`` reads the events kept in the database, in
  commit order, from any process, after any restart: at-least-once, each with a stable ``id``
  and the ``cursor`` to continue from. ``webwork-sso events list --since CURSOR`` is the same.

The events are recorded by the store (store/events.py) in the transaction that makes the
change, at the places that also write its audit record.
"""

from .feed import Event, EventFeed, EventHandler

__all__ = ["Event", "EventFeed", "EventHandler"]
