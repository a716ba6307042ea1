"""Long-running services of the bot (database, web, AI, moderation, ...)."""
