"""The environment's Kerberos login on an edge node (``deploy.kerberos``): checked once, then per command.

An edge node of a secure cluster has the MIT client (``kinit``, ``klist``), its realm in
``/etc/krb5.conf`` and the environment's keytab as one of its own files. :func:`check_login` proves,
before anything is uploaded, published or switched, that the keytab is there and readable, holds the
principal, and that the KDC hands out a ticket; each failure is one message naming the host, the
principal and the keytab. :func:`run` then runs a command with a fresh ticket in a private cache of
that command alone (a ``mktemp -d`` directory removed when it ends), never the SSH user's own cache.

Only the keytab's path ever appears in commands, messages and records, never its contents.
"""

from __future__ import annotations

import re

from sparkml_ops.config import DeployKerberos
from sparkml_ops.errors import AuthenticationError, EnvironmentCheckError, KdcUnreachableError
from sparkml_ops.io.ssh import RemoteHost, RunResult, quote

# Exit status and stderr mark of a command whose login failed before it ran.
LOGIN_FAILED = 97
MARK = "sparkml-ops-kinit:"
_MISSING, _UNREADABLE = "sparkml-ops-keytab-missing", "sparkml-ops-keytab-unreadable"
_KLIST_LINE = re.compile(r"^\s*\d+\s+(\S+@\S+)\s*$", re.MULTILINE)


def login_prelude(krb: DeployKerberos) -> str:
    """Shell lines that log in from the keytab into a private cache, exported as KRB5CCNAME for what follows.

    The cache's directory is removed when the shell exits (also on SIGHUP/SIGTERM: a dropped session).
    """
    keytab, principal = quote([krb.keytab]), quote([krb.principal])
    return (
        'krb5_dir=$(mktemp -d "${TMPDIR:-/tmp}/sparkml-ops-krb5.XXXXXXXX") '
        f'|| {{ echo "{MARK} cannot create a private ticket cache in ${{TMPDIR:-/tmp}}" >&2; exit {LOGIN_FAILED}; }}; '
        "trap 'rm -rf \"$krb5_dir\"' EXIT; trap 'exit 129' HUP INT TERM; "
        'export KRB5CCNAME="FILE:$krb5_dir/ccache"; '
        f'if ! krb5_out=$(kinit -k -t {keytab} {principal} 2>&1); then '
        f'printf "{MARK} %s\\n" "$krb5_out" >&2; exit {LOGIN_FAILED}; fi; '
    )


def run(host: RemoteHost, krb: DeployKerberos | None, command: str, *, check: bool = True,
        stdin: str | None = None) -> RunResult:
    """Run ``command`` on ``host`` logged in as ``krb`` (a fresh ticket in a private cache); as is without ``krb``.

    Raises:
        AuthenticationError, KdcUnreachableError, EnvironmentCheckError: the login failed (see :func:`login_error`).
        RemoteError: the command failed (with ``check``), or the host could not run it.
    """
    if krb is None:
        return host.run(command, check=check, stdin=stdin)
    res = host.run(login_prelude(krb) + command, check=False, stdin=stdin)
    if res.exited == LOGIN_FAILED and MARK in res.stderr:
        said = res.stderr.split(MARK, 1)[1].strip().splitlines()
        raise login_error(host.name, krb, " ".join(line.strip() for line in said[:3]))
    if check and res.exited != 0:
        raise host.failure(command, res)  # the command as the caller wrote it, without the login lines
    return res


def check_login(host: RemoteHost, krb: DeployKerberos) -> str:
    """Prove on ``host`` that the keytab is readable, holds the principal, and that the KDC gives it a ticket.

    Returns:
        A line for the deploy log: who logged in on which host, from which keytab.

    Raises:
        AuthenticationError: the keytab is missing, unreadable or lacks the principal; the KDC refused the login.
        KdcUnreachableError: ``host`` cannot reach the KDC.
        EnvironmentCheckError: ``host`` has no MIT Kerberos client (klist, kinit).
    """
    held = keytab_principals(host, krb)
    if krb.principal not in held:
        raise AuthenticationError(
            f"{host.name}: Kerberos principal {krb.principal} is not in keytab {krb.keytab}; "
            f"it holds: {', '.join(held) or 'nothing'}.",
            hint="Set deploy.kerberos.principal to one of those, or install the keytab made for that principal.",
        )
    run(host, krb, "true")
    return f"{host.name}: Kerberos login of {krb.principal} from keytab {krb.keytab} works"


def keytab_principals(host: RemoteHost, krb: DeployKerberos) -> list[str]:
    """The principals the keytab on ``host`` holds (``klist -k``), in file order without repeats.

    Raises:
        AuthenticationError: the keytab does not exist, is not a readable file, or is not a keytab.
        EnvironmentCheckError: ``klist`` is not installed on ``host``.
    """
    keytab = quote([krb.keytab])
    res = host.run(f"if [ ! -e {keytab} ]; then echo {_MISSING}; elif [ ! -f {keytab} ] || [ ! -r {keytab} ]; "
                   f"then echo {_UNREADABLE}; else klist -k {keytab}; fi", check=False)
    if res.stdout.startswith(_MISSING):
        raise AuthenticationError(
            f"{host.name}: Kerberos keytab {krb.keytab} of {krb.principal} does not exist there.",
            hint=f"Install the environment's keytab at that path on {host.name}, readable by the SSH user only "
                 "(chmod 400), or fix deploy.kerberos.keytab.",
        )
    if res.exited == 127:
        raise _no_client(host.name, "klist")
    if res.stdout.startswith(_UNREADABLE) or res.exited != 0:
        why = res.stderr.strip().splitlines()[-1:] or ["not a readable file"]
        raise AuthenticationError(
            f"{host.name}: Kerberos keytab {krb.keytab} of {krb.principal} cannot be read: {why[0]}.",
            hint=f"Point deploy.kerberos.keytab at the keytab file itself, readable by the SSH user of {host.name} "
                 "(chmod 400, owned by that user).",
        )
    return list(dict.fromkeys(_KLIST_LINE.findall(res.stdout)))


def login_error(host: str, krb: DeployKerberos, said: str) -> AuthenticationError | EnvironmentCheckError:
    """The error for a ``kinit`` on ``host`` that printed ``said``: one message naming host, principal and keytab."""
    who = f"{krb.principal} from keytab {krb.keytab}"
    if "Cannot contact any KDC" in said or "Cannot find KDC" in said or "Cannot resolve network address" in said:
        return KdcUnreachableError(
            f"{host}: the Kerberos KDC cannot be reached to log in {who}: {said}.",
            hint=f"Check the realm's KDC in /etc/krb5.conf on {host} and that {host} can reach it; retrying later is safe.",
        )
    if "not found" in said and "kinit" in said and "database" not in said:
        return _no_client(host, "kinit")
    if "Clock skew" in said:
        return AuthenticationError(f"{host}: Kerberos refused the login of {who}: the clocks of {host} and the KDC differ "
                                   f"too much ({said}).", hint=f"Synchronise the clock of {host} (NTP/chrony) and retry.")
    return AuthenticationError(
        f"{host}: Kerberos login of {who} failed: {said}.",
        hint="The keytab may be stale (its key version changed) or the principal disabled or unknown to the KDC: "
             "ask your Kerberos administrator for a fresh keytab.",
    )


def _no_client(host: str, tool: str) -> EnvironmentCheckError:
    return EnvironmentCheckError(f"{host}: {tool} is not installed; deploy.kerberos needs the MIT Kerberos client there.",
                                 hint="Install it on the edge node (Debian/Ubuntu: krb5-user; RHEL: krb5-workstation).")
