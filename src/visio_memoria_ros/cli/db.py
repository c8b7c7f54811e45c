"""``db``: list and manage the persons in the memory (list, rename, merge, forget,
forget-non-faces, reembed, migrate; ``db export`` is in ``db_export``).

``db list`` -> ``{"schema": "visio-memoria.db-list/1", "db": str, "persons": [{"person_id",
"name", "created", "never_remember", "num_embeddings", "num_visits", "first_seen",
"last_seen"}], "embedders": {id: dim}, "unknown_faces": int, "unknown_clusters": int}``.

``db migrate --json`` -> ``{"schema": "visio-memoria.db-migrate/1", "from": str, "to": str
(the URL, never a password), "ok": bool, "source"/"written"/"verified": {table: rows}}``
(tables persons, embedders, embeddings, unknowns, visits, negative_links, and crops).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from . import db_export
from .common import CliError, add_command, print_json, progress, warn, when
from .context import node_params, open_memory


def cmd_db_list(args: argparse.Namespace) -> int:
    """Persons in the memory."""
    store = open_memory(args, read_only=True)
    with store:
        persons = store.list_persons()
        stats = store.stats()
        embedders = store.embedders()
    if args.json:
        print_json({
            "schema": "visio-memoria.db-list/1", "db": store.where,
            "persons": [{"person_id": p.person_id, "name": p.name, "created": when(p.created),
                         "never_remember": p.never_remember,
                         "num_embeddings": p.num_embeddings, "num_visits": p.num_visits,
                         "first_seen": when(p.first_seen), "last_seen": when(p.last_seen)}
                        for p in persons],
            "embedders": embedders, "unknown_faces": stats.num_unknowns,
            "unknown_clusters": stats.num_clusters,
        })
        return 0
    print(f"{store.where}: {len(persons)} person{'s' if len(persons) != 1 else ''}, "
          f"{stats.num_unknowns} unknown faces in {stats.num_clusters} clusters")
    if persons:
        print(f"{'id':>5}  {'name':<24} {'faces':>5} {'visits':>6}  last seen")
    for p in persons:
        last = (datetime.fromtimestamp(p.last_seen).strftime("%Y-%m-%d %H:%M")
                if p.last_seen else "never")
        flag = "  [never remember]" if p.never_remember else ""
        print(f"{p.person_id:>5}  {p.name:<24} {p.num_embeddings:>5} {p.num_visits:>6}  "
              f"{last}{flag}")
    return 0


def cmd_db_rename(args: argparse.Namespace) -> int:
    """Rename a person."""
    with open_memory(args, read_only=False) as store:
        old = store.get_person(args.id).name
        rec = store.rename_person(args.id, args.name)
    print(f"renamed person {rec.person_id} from {old} to {rec.name}")
    return 0


def cmd_db_merge(args: argparse.Namespace) -> int:
    """Merge person SRC into DST."""
    with open_memory(args, read_only=False) as store:
        src, dst = store.get_person(args.src), store.get_person(args.dst)
        moved = store.merge_persons(args.src, args.dst)
    print(f"merged person {src.person_id} ({src.name}) into person {dst.person_id} "
          f"({dst.name}): {moved} faces moved")
    return 0


def cmd_db_forget(args: argparse.Namespace) -> int:
    """Delete every trace of a person."""
    with open_memory(args, read_only=False) as store:
        person = store.get_person(args.id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise CliError(f"refusing to forget person {person.person_id} ({person.name}) "
                               "without confirmation: add --yes")
            answer = input(f"Forget person {person.person_id} ({person.name}): "
                           f"{person.num_embeddings} faces, {person.num_visits} visits? "
                           "Type 'yes' to confirm: ")
            if answer.strip().lower() != "yes":
                raise CliError("not confirmed; nothing was deleted")
        store.forget_person(person.person_id)
    print(f"forgot person {person.person_id} ({person.name}): {person.num_embeddings} faces "
          f"and {person.num_visits} visits deleted")
    return 0


def cmd_db_forget_non_faces(args: argparse.Namespace) -> int:
    """Delete the 'not a face' examples (faces like them may be remembered again)."""
    with open_memory(args, read_only=False) as store:
        n = store.forget_non_faces(args.embedder or None)
    print(f"forgot {n} 'not a face' example{'' if n == 1 else 's'}")
    return 0


def cmd_db_reembed(args: argparse.Namespace) -> int:
    """Re-embed the stored crops with the configured (or given) face embedder."""
    from ..embedding import build_face_embedder
    from ..embedding.factory import tolerant_embed_fn

    params = node_params(args, "embedding_node")
    kind = args.embedder or str(params["face_embedder"])
    with open_memory(args, read_only=False) as store:
        try:
            embedder = build_face_embedder(kind, **params)
        except ImportError as exc:
            raise CliError(f"the {kind} embedder is not installed ({exc})") from exc
        except FileNotFoundError as exc:
            raise CliError(f"{exc} (see models/README.md)") from exc
        todo = sum(1 for p in store.list_persons() for e in store.list_embeddings(p.person_id)
                   if e.embedder != embedder.id)
        todo += sum(1 for u in store.list_unknowns() if u.embedder != embedder.id)
        bar = progress(args, total=todo, desc=f"re-embedding with {embedder.id}", unit="face")

        embed_fn = tolerant_embed_fn(embedder, on_batch=bar.update)

        try:
            report = store.reembed(embed_fn, embedder.id, batch_size=args.batch_size)
        finally:
            bar.close()
    total = report.num_embeddings + report.num_unknowns
    if total == 0 and not report.num_without_crop and not report.num_failed:
        print(f"nothing to re-embed: every stored face already carries {embedder.id}")
    else:
        print(f"re-embedded {report.num_embeddings} faces of persons and {report.num_unknowns} "
              f"unknown faces with {embedder.id}; {report.num_without_crop} without a stored "
              f"crop kept their old vectors; {report.num_failed} failed")
    ident = node_params(args, "identity_node").get("embedder")
    if ident != embedder.id:
        warn(f"identity_node embedder is {ident!r}: set it to {embedder.id!r} so the robot "
             "matches against the new vectors")
    return 1 if report.num_failed else 0


# ------------------------------------------------------------------------------ db migrate
# Copying a robot's SQLite memory into a fleet PostgreSQL memory; the work is
# memory.transfer.copy_memory, this is only its command line.
def cmd_db_migrate(args: argparse.Namespace) -> int:
    """Copy an SQLite memory into a PostgreSQL memory: ids kept, counts verified, re-runnable."""
    from ..memory import PostgresStore, SQLiteStore, StoreOptions, StoreUnavailable, load_key
    from ..memory import parse_location as parse
    from ..memory.transfer import copy_memory

    params = node_params(args, "memory_node")
    source, target = parse(args.source), parse(args.to)
    if source.path is None:
        raise CliError(f"--from must be an SQLite memory (a file path), got {source.shown}")
    if not source.path.is_file():
        raise CliError(f"no memory store at {source.path}")
    if target.engine != "postgresql":
        raise CliError(f"--to must be a postgresql:// URL, got {target.shown}")
    key = load_key(str(params.get("encryption_key_file", "") or ""),
                   str(params.get("encryption_key_env", "") or ""))
    password_file = args.password_file or str(params.get("db_password_file", "") or "")
    try:
        src = SQLiteStore(source.path, StoreOptions(read_only=True), key=key)
    except StoreUnavailable as exc:
        if exc.reason != "version":
            raise
        src = SQLiteStore(source.path, key=key)  # an older file: migrate its schema first
    with src, PostgresStore(target.url, key=key, password_file=password_file) as dst:
        total = sum(src.stats().__dict__[k] for k in ("num_persons", "num_embeddings",
                                                        "num_unknowns", "num_visits"))
        bar = progress(args, total=total, desc="copying", unit="row")
        try:
            report = copy_memory(src, dst, progress=lambda _table, n: bar.update(n))
        finally:
            bar.close()
    if args.json:
        print_json({"schema": "visio-memoria.db-migrate/1", "from": str(source.path),
                    "to": target.shown, "ok": report.ok, "source": report.source,
                    "written": report.written, "verified": report.verified})
    else:
        print(f"{'table':<16} {'source':>8} {'written':>8} {'in target':>10}")
        for table, n in report.source.items():
            print(f"{table:<16} {n:>8} {report.written.get(table, 0):>8} "
                  f"{report.verified.get(table, 0):>10}")
        print(f"copied {source.path} into {target.shown}: "
              + ("every row verified" if report.ok else "VERIFICATION FAILED"))
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    """Add the ``db`` actions to the ``db`` parser ``sub``."""
    add_command(sub, "list", cmd_db_list, "persons with face and visit counts")
    p = add_command(sub, "rename", cmd_db_rename, "rename person ID", json_flag=False)
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("name", metavar="NAME")
    p = add_command(sub, "merge", cmd_db_merge,
                    "move everything of person SRC to DST and delete SRC", json_flag=False)
    p.add_argument("src", type=int, metavar="SRC")
    p.add_argument("dst", type=int, metavar="DST")
    p = add_command(sub, "forget", cmd_db_forget, "delete every trace of person ID (faces, crops, "
                    "visits)", json_flag=False)
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = add_command(sub, "forget-non-faces", cmd_db_forget_non_faces, "delete the embeddings of "
                    "crops rejected as 'not a face' (faces like them may be remembered again)",
                    json_flag=False)
    p.add_argument("--embedder", default="", metavar="ID",
                   help="only the examples of this embedder id (default: all)")

    db_export.register(sub)
    p = add_command(sub, "reembed", cmd_db_reembed, "re-embed the stored crops with the configured "
                    "face embedder (after changing it)", json_flag=False)
    p.add_argument("--embedder", choices=("dlib", "dinov3", "onnx"), metavar="KIND",
                   help="face embedder kind (dlib, dinov3, onnx); default: embedding_node "
                        "face_embedder")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="crops per transaction (default 32)")
    p = add_command(sub, "migrate", cmd_db_migrate, "copy an SQLite memory into a PostgreSQL "
                    "memory (persons, faces, crops, visits, unknowns; ids kept, counts verified, "
                    "safe to re-run)")
    p.add_argument("--from", dest="source", required=True, metavar="PATH",
                   help="the SQLite memory file")
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user@host:port/dbname (password: PGPASSWORD, ~/.pgpass "
                        "or --password-file)")
    p.add_argument("--password-file", default="", metavar="FILE",
                   help="file holding the PostgreSQL password (default: memory_node "
                        "db_password_file)")
