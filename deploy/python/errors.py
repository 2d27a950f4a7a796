"""One exception type for every user-facing deploy error, so the CLI can print it in one line."""


class DeployError(Exception):
    """Bad model directory, unreadable image, unsupported option: the message names the value."""
