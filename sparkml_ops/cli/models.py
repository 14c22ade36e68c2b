"""The ``models`` command group: list, show, verify, alias, archive, history, export, import, report, gc."""

from __future__ import annotations

import argparse
import json
import sys

from sparkml_ops.cli.lifecycle import register_reproduce
from sparkml_ops.cli.output import print_json, print_table
from sparkml_ops.config import Settings
from sparkml_ops.entrypoint import provenance_from_environment
from sparkml_ops.identifiers import parse_ref
from sparkml_ops.registry import ModelVersion, export_version, import_version, open_registry

REF_HELP = "NAME:VERSION or NAME@ALIAS, e.g. fraud:3 or fraud@champion"


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``models`` and its sub-commands."""
    models = commands.add_parser("models", help="the model registry: versions, aliases, verify, export/import, gc")
    cmds = models.add_subparsers(title="models commands", dest="models_command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, handler, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help_, description=help_)
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler=handler)
        return p

    p = add("list", "list models, or the versions of one model", _list)
    p.add_argument("name", nargs="?", help="a model name: list its versions")
    p.add_argument("--all", action="store_true", help="include archived versions")
    add("show", "show the manifest of one version", _show).add_argument("ref", help=REF_HELP)
    add("verify", "re-check the size and sha256 of every file of one version (exit 5 if damaged)",
        _verify).add_argument("ref", help=REF_HELP)
    p = add("alias", "point an alias (champion, challenger, ...) at a version; recorded in the history", _alias)
    p.add_argument("name", help="model name")
    p.add_argument("alias", help="alias name, e.g. champion")
    p.add_argument("version", type=int, help="version number")
    p.add_argument("--reason", default="", help="why, recorded in the history")
    p = add("archive", "archive a version: kept and loadable by number, hidden from listings", _archive)
    p.add_argument("ref", help=REF_HELP)
    p.add_argument("--reason", default="", help="why, recorded in the history")
    add("history", "the append-only event log of a model (publish, alias moves, archive, import)",
        _history).add_argument("name", help="model name")
    p = add("export", "write one version (files, manifest, checksums) to a tar; FILE '-' is stdout",
            _export, json_flag=False)
    p.add_argument("ref", help=REF_HELP)
    p.add_argument("file", help="the tar to write, or - for stdout")
    p = add("import", "verify a tar from 'models export' and publish it as a new version; FILE '-' is stdin", _import)
    p.add_argument("file", help="the tar to read, or - for stdin")
    p.add_argument("--name", help="publish under this model name instead of the exported one")
    p = add("report", "regenerate the HTML model report of a version from its stored evaluation data (no retraining)",
            _report, json_flag=False)
    p.add_argument("ref", help=REF_HELP)
    p.add_argument("--out", help="the HTML file to write (default: report-<name>-<version>.html); - for stdout")
    register_reproduce(cmds)
    p = add("gc", "remove abandoned staging data of killed publishers", _gc)
    p.add_argument("--older-than-hours", type=float, default=None, metavar="H",
                   help="only data older than H hours (default: registry.staging_max_age_hours, 24)")


def _summary(mv: ModelVersion, aliases: dict[str, int]) -> dict:
    m = mv.manifest
    return {
        "ref": mv.ref, "version": mv.version, "flavor": mv.flavor, "created_at": mv.created_at,
        "created_by": (m.get("created_by") or {}).get("user"),
        "aliases": sorted(a for a, v in aliases.items() if v == mv.version),
        "archived": mv.archived, "description": m.get("description", ""),
    }


def _list(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    if args.name:
        aliases = reg.aliases(args.name)
        rows = [_summary(v, aliases) for v in reg.list_versions(args.name, include_archived=args.all)]
        if args.json:
            print_json(rows)
        else:
            print_table(["version", "flavor", "created_at", "created_by", "aliases", "archived", "description"],
                        [[r["version"], r["flavor"], r["created_at"], r["created_by"], ",".join(r["aliases"]),
                          "yes" if r["archived"] else "", r["description"]] for r in rows])
        return 0
    rows = []
    for name in reg.list_models():
        numbers = reg.version_numbers(name)
        rows.append({"name": name, "versions": len(numbers), "latest": max(numbers, default=None),
                     "aliases": reg.aliases(name)})
    if args.json:
        print_json(rows)
    else:
        print_table(["model", "versions", "latest", "aliases"],
                    [[r["name"], r["versions"], r["latest"],
                      ", ".join(f"{a}->{v}" for a, v in sorted(r["aliases"].items()))] for r in rows])
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    ref = parse_ref(args.ref)
    reg = open_registry(settings)
    mv = reg.resolve(ref)
    aliases = reg.aliases(mv.name)
    if args.json:
        print_json({**_summary(mv, aliases), "registry": reg.uri, "manifest": mv.manifest})
        return 0
    m = mv.manifest
    git = m.get("git") or {}
    sig = m.get("signature") or {}

    def cols(key: str) -> str:
        return ", ".join(f"{c['name']}:{c['type']}" for c in sig.get(key, []))

    rows = [
        ("ref", mv.ref), ("registry", reg.uri), ("flavor", mv.flavor),
        ("created_at", mv.created_at), ("created_by", "{user}@{host}".format(**m.get("created_by", {}))),
        ("git", f"{git.get('commit') or '-'}{' (dirty)' if git.get('dirty') else ''}"),
        ("build_id", m.get("build_id") or "-"),
        ("aliases", ", ".join(_summary(mv, aliases)["aliases"]) or "-"), ("archived", "yes" if mv.archived else "no"),
        ("inputs", cols("inputs") or "-"), ("outputs", cols("outputs") or "-"),
        ("params", json.dumps(m.get("params", {}), sort_keys=True)),
        ("metrics", json.dumps(m.get("metrics", {}), sort_keys=True)),
        ("lineage", json.dumps(m.get("lineage", {}), sort_keys=True)),
        ("tags", json.dumps(m.get("tags", {}), sort_keys=True)), ("description", m.get("description") or "-"),
    ]
    if m.get("imported_from"):
        src = m["imported_from"]
        rows.append(("imported_from", f"{src['registry']} {src['name']}:{src['version']}"))
    rows += [(f"file {f['path']}", f"{f['size']} bytes sha256 {f['sha256']}") for f in m["files"]]
    print_table(["field", "value"], rows)
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    ref = parse_ref(args.ref)
    reg = open_registry(settings)
    mv = reg.verify(ref)
    files = mv.manifest["files"]
    size = sum(f["size"] for f in files)
    if args.json:
        print_json({"ref": mv.ref, "ok": True, "files": len(files), "bytes": size})
    else:
        print(f"{mv.ref} ok: {len(files)} files, {size} bytes, every size and sha256 matches the manifest")
    return 0


def _alias(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    record = reg.set_alias(args.name, args.alias, args.version, provenance=provenance_from_environment(),
                           reason=args.reason)
    if args.json:
        print_json(record)
    else:
        print(f"{args.name}@{args.alias} -> {args.version} (was {record['from'] if record['from'] else 'unset'})")
    return 0


def _archive(args: argparse.Namespace, settings: Settings) -> int:
    ref = parse_ref(args.ref)
    mv = open_registry(settings).archive(ref, provenance=provenance_from_environment(), reason=args.reason)
    if args.json:
        print_json({"ref": mv.ref, "archived": True})
    else:
        print(f"{mv.ref} archived (kept; load it by number, list it with --all)")
    return 0


def _history(args: argparse.Namespace, settings: Settings) -> int:
    events = open_registry(settings).history(args.name)
    if args.json:
        print_json(events)
    else:
        print_table(["at", "event", "version", "alias", "from", "to", "user", "host", "reason"],
                    [[e.get("at"), e.get("event"), e.get("version"), e.get("alias"), e.get("from"), e.get("to"),
                      e.get("user"), e.get("host"), e.get("reason")] for e in events])
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    ref = parse_ref(args.ref)
    target = sys.stdout.buffer if args.file == "-" else args.file
    mv = export_version(open_registry(settings), ref, target, provenance=provenance_from_environment())
    if args.file == "-":
        sys.stdout.buffer.flush()
    else:
        print(f"{mv.ref} exported to {args.file}")
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    source = sys.stdin.buffer if args.file == "-" else args.file
    mv = import_version(open_registry(settings), source, provenance=provenance_from_environment(), name=args.name)
    src = mv.manifest["imported_from"]
    if args.json:
        print_json({"ref": mv.ref, "imported_from": src})
    else:
        print(f"imported {src['name']}:{src['version']} from {src['registry']} as {mv.ref}")
    return 0


def _gc(args: argparse.Namespace, settings: Settings) -> int:
    hours = settings.registry.staging_max_age_hours if args.older_than_hours is None else args.older_than_hours
    removed = open_registry(settings).gc(hours)
    if args.json:
        print_json({"older_than_hours": hours, "removed": removed})
    else:
        print(f"removed {len(removed)} abandoned staging entries older than {hours} h")
        for path in removed:
            print(f"  {path}")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.cli.monitoring import write_html
    from sparkml_ops.monitoring import model_report

    ref = parse_ref(args.ref)
    report = model_report(settings, ref)
    name = report.title.split()[-1].replace(":", "-")
    where = write_html(report.html, args.out or f"report-{name}.html")
    if where != "stdout":
        print(f"{report.title} written to {where}")
    return 0
