"""Queries, one module per area, over :class:`vsb.services.database.Database`.

``users``, ``cases``, ``review``, ``audit``, ``settings``, ``sessions``,
``oauth`` and ``command_sync`` hold async functions taking the database
first and returning msgspec Structs; ``migrate`` applies the schema and
``embedded`` runs a private PostgreSQL when no URL is configured.
"""
