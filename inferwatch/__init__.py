"""The composition root: what ``inferwatch`` starts, and in which order.

Nothing imports this package; it imports everything it wires. ``inferwatch.config`` assembles
the whole configuration file from the sections each package owns, ``inferwatch.stores`` opens
the one database and its stores, ``inferwatch.service`` starts and stops the collector, the alert
engine and the web app, and ``inferwatch.cli`` is the ``inferwatch`` command.
"""
