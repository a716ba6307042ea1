"""In-process state: the guild cache, the TTL + LRU utility, permissions.

- :class:`Cache` (``vsb.cache.state``): guilds, channels, roles, members and
  recent messages, kept from gateway events through the router.
- :class:`TTLCache` (``vsb.cache.ttl``): a small time-bounded LRU map for AI
  results and REST lookups (the in-process tier that replaces Redis).
- ``vsb.cache.permissions``: Discord's permission arithmetic and hierarchy.
"""

from vsb.cache.state import CACHE_PRIORITY, Cache, CachedGuild, FetchMember
from vsb.cache.ttl import TTLCache, TTLCacheStats

__all__ = [
    "CACHE_PRIORITY",
    "Cache",
    "CachedGuild",
    "FetchMember",
    "TTLCache",
    "TTLCacheStats",
]
