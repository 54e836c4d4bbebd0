"""``hakuna`` subcommands, one module per area; each module has ``register(subparsers)``."""


class UsageError(Exception):
    """A command-line mistake the user can fix; printed without a traceback."""
