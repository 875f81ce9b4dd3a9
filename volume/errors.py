"""The one error type for bad input: raised before any work starts, naming the key."""


class ConfigError(ValueError):
    """An invalid configuration value. The message names the key and what is allowed."""
