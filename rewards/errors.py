"""Errors of the rewards core."""


class RewardsError(Exception):
    """Base of every error the core raises on purpose."""


class RulesError(RewardsError):
    """The rules file cannot be used; the message names the file and the field."""
