"""The one exception root of sparkml-ops and the exit codes schedulers rely on.

Library code raises these; only entry points (``sparkml_ops.cli``, ``jobs/``,
``deploy/``) turn them into process exit codes, via :func:`exit_code_for`.
"""

from __future__ import annotations

# Exit codes are a public contract (README "Exit codes"): schedulers branch on them.
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_NOT_FOUND = 4
EXIT_INTEGRITY = 5
EXIT_REMOTE = 6
EXIT_REFUSED = 7
EXIT_CONFLICT = 8
EXIT_AUTH = 9  # Kerberos: no, expired or refused credentials
EXIT_MISSING_RUN = 10  # `monitor check` only: no successful score run for the date (an alert was sent)
EXIT_INPUTS_CHANGED = 11
EXIT_NOT_REPRODUCED = 12
EXIT_INTERRUPTED = 130


class SparkMLOpsError(Exception):
    """Root of every error raised on purpose by sparkml-ops.

    Attributes:
        exit_code: the process exit code an entry point should return.
        hint: optional one-line advice on how to fix the problem, appended to the message.
    """

    exit_code = EXIT_UNEXPECTED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class ConfigError(SparkMLOpsError):
    """Configuration or command-line input is invalid."""

    exit_code = EXIT_USAGE


class UsageError(ConfigError):
    """A command was called with arguments that do not make sense together."""


class FeatureSpecError(ConfigError):
    """A feature spec file is invalid; the message names the file and the feature."""


class EnvironmentCheckError(SparkMLOpsError):
    """The machine lacks something sparkml-ops needs (Java, a tool, a directory)."""

    exit_code = EXIT_USAGE


class DataValidationError(SparkMLOpsError, ValueError):
    """Input data does not have the expected schema, partitions or values."""

    exit_code = EXIT_DATA


class NotFoundError(SparkMLOpsError, LookupError):
    """A named thing (model, version, alias, table, partition, build) does not exist."""

    exit_code = EXIT_NOT_FOUND


class ModelNotFoundError(NotFoundError):
    """A model, version or alias is not in the registry."""


class IntegrityError(SparkMLOpsError):
    """Stored bytes do not match their recorded checksums, or a manifest is unreadable."""

    exit_code = EXIT_INTEGRITY


class RemoteError(SparkMLOpsError):
    """A remote system (NameNode, DataNode, metastore, YARN, SSH host) is unreachable or failed."""

    exit_code = EXIT_REMOTE


class HostKeyError(RemoteError):
    """An SSH host key is unknown or changed; the connection was refused."""


class RefusedError(SparkMLOpsError):
    """An operation was refused by a gate (soak time, approvals, thresholds, dirty tree)."""

    exit_code = EXIT_REFUSED


class ConflictError(SparkMLOpsError):
    """A concurrent writer or an existing object prevents the operation; retrying may succeed."""

    exit_code = EXIT_CONFLICT


class InputsChangedError(SparkMLOpsError):
    """What a model version was trained from changed since (spec, config, source partitions): not reproduced."""

    exit_code = EXIT_INPUTS_CHANGED


class NotReproducedError(SparkMLOpsError):
    """A retrained model differs from the registered version beyond the tolerance."""

    exit_code = EXIT_NOT_REPRODUCED


class PathExistsError(ConflictError):
    """A storage path that must not exist yet already does (a concurrent writer won a rename)."""


class PermissionDeniedError(SparkMLOpsError):
    """The storage refused access (HDFS permissions, authentication); fix the user, keytab or ACLs."""

    exit_code = EXIT_USAGE


class AuthenticationError(SparkMLOpsError):
    """Kerberos refused us or we have no usable credentials (no/expired ticket, bad keytab, clock skew)."""

    exit_code = EXIT_AUTH


class KdcUnreachableError(AuthenticationError):
    """The Kerberos KDC does not answer; retrying later is safe."""

    exit_code = EXIT_REMOTE


def exit_code_for(exc: BaseException) -> int:
    """Map an exception to the documented process exit code."""
    if isinstance(exc, SparkMLOpsError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_UNEXPECTED
