"""Least privilege on the broker: what each principal may do there, in one table, read by the
test harness (deploy/local/harness.py), by the deploy files' ACL job and service, and by the
tests that hold those files to it (tests/deploy/test_manifests.py), so they cannot drift.

A role (a set of stages, `--stages`) runs as its own SASL user and consumer group (its app id:
Faust's group id is the app id, and so is the group the outbox's transactions commit offsets to;
roles need not share one, and under these ACLs they must not, see `deployment`). It may

    READ      its input topics, and its group;
    WRITE     its outputs (the next stage's topic, `failed`; ingest `instant`; the last stage,
              and ingest answering a re-published alert from the ledger, `ready` and `cap`),
              and its transactional ids, `<app id>.emit.<input topic>.<partition>`
              (agents/emitter.py: one per input partition), as one prefix per input topic;
    CREATE    Faust's leader topic, `<app id>-__assignor-__leader`, which Faust declares and
              reads at start (READ too);
    DESCRIBE  the metadata of every topic of the pipeline (a worker declares its topics at
              start, and the status page reads their ends to show the group's lag).

The status page (agents/status.py) follows `ready`, `failed` and the stage topics read-only,
without a group: every role READs those too (`follow`), or, with `status_page=False`, none does
and its page stays empty. That READ cannot move another role's offsets: committing an offset
needs READ on the group too, and each role has only its own. The last stage reads `ready`
anyway, to tell whether a completion went out before a crash (agents/emitter.py).

The clients: `alertanim send` WRITEs `alerts`, `alertanim watch` READs `ready` and `failed`, and
the autoscaler (KEDA) DESCRIBEs the roles' groups and input topics for their lag.

    python -m alertanim.agents.acls table              # the table, for the settings in the env
    python -m alertanim.agents.acls script             # the kafka-acls.sh lines that make it
    python -m alertanim.agents.acls apply              # make it, as ALERTANIM_* says (an admin)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from alertanim.pipeline import graph

from .topology import FIRST, INGEST, all_topics, parse_stages, source_topic

# The roles deploy/ runs, each on its own processes: name → stages.
ROLES: dict[str, tuple[str, ...]] = {
    "ingest": (INGEST, "subject"),
    "generate": ("generate", "score"),
    "sample": ("mask", "sample"),
    "animate": ("select", "animate"),
}
PRODUCER, WATCHER, SCALER = "producer", "watcher", "scaler"


class Binding(NamedTuple):
    """One ACL: ALLOW `principal`'s `operation` on a resource, from any host."""

    principal: str  # "User:<name>"
    resource: str  # topic | group | transactional-id
    name: str
    pattern: str  # literal | prefixed
    operation: str  # Read | Write | Describe | Create


@dataclass(frozen=True)
class Grant:
    """What one principal may do. Topics and groups are literal names; transactional ids are
    prefixes."""

    name: str  # the role or client it is for
    principal: str  # its SASL user name
    stages: tuple[str, ...] = ()
    read: tuple[str, ...] = ()  # topics it consumes
    follow: tuple[str, ...] = ()  # topics the status page reads, read-only
    write: tuple[str, ...] = ()
    describe: tuple[str, ...] = ()  # topics whose metadata it reads
    create: tuple[str, ...] = ()  # topics it may create
    groups: tuple[str, ...] = ()  # consumer groups it READs (joins, commits in)
    describe_groups: tuple[str, ...] = ()  # consumer groups whose offsets it only reads
    transactional_prefixes: tuple[str, ...] = field(default=())

    @property
    def user(self) -> str:
        return f"User:{self.principal}"

    def bindings(self) -> list[Binding]:
        """Every ACL of this grant. DESCRIBE is implied by READ and WRITE, so it is only
        bound on what is neither read nor written."""
        u = self.user
        reads = _unique([*self.read, *self.follow])
        out = [Binding(u, "topic", t, "literal", "Read") for t in reads]
        out += [Binding(u, "topic", t, "literal", "Write") for t in self.write]
        out += [Binding(u, "topic", t, "literal", "Describe") for t in self.describe
                if t not in reads and t not in self.write]
        out += [Binding(u, "topic", t, "literal", "Create") for t in self.create]
        out += [Binding(u, "group", g, "literal", "Read") for g in self.groups]
        out += [Binding(u, "group", g, "literal", "Describe") for g in self.describe_groups
                if g not in self.groups]
        out += [Binding(u, "transactional-id", p, "prefixed", "Write")
                for p in self.transactional_prefixes]
        return out


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- what a set of stages reads and writes ------------------------------------------------------
def inputs(settings, stages: Iterable[str]) -> list[str]:
    return _unique(source_topic(settings, s) for s in stages)


def outputs(settings, stages: Iterable[str]) -> list[str]:
    """Every topic the stages send to (agents/processing.py)."""
    out: list[str] = []
    for stage in stages:
        if stage == INGEST:  # the first stage with the alert's instant event; or a finished
            # alert's stored result, and its CAP answer
            out += [settings.stage_topic(FIRST), settings.topic_instant, settings.topic_ready,
                    settings.topic_cap]
        elif graph.NEXT[stage] is None:  # the completion, and its CAP answer
            out += [settings.topic_ready, settings.topic_cap]
        else:
            out.append(settings.stage_topic(graph.NEXT[stage]))
    return _unique([*out, settings.topic_failed])


def followed(settings) -> list[str]:
    """What the status page reads (agents/status.py `_follow_once`)."""
    return [settings.topic_ready, settings.topic_failed,
            *(settings.stage_topic(s) for s in graph.NAMES)]


def leader_topic(app_id: str) -> str:
    """The topic Faust's leader assignor declares and reads (faust/assignor/leader_assignor)."""
    return f"{app_id}-__assignor-__leader"


def transactional_prefix(app_id: str, topic: str) -> str:
    """Every transactional id the outbox uses for `topic`'s partitions (agents/emitter.py
    `Emitter.transactional_id`: `<app id>.emit.<topic>.<partition>`)."""
    return f"{app_id}.emit.{topic}."


def role_grant(settings, stages: str | Iterable[str], principal: str, name: str | None = None,
               status_page: bool = True) -> Grant:
    """The grant of a worker that runs `stages` with `settings` (its app id is its group)."""
    stages = parse_stages(stages) if isinstance(stages, str) else tuple(stages)
    app_id = settings.app_id
    reads = inputs(settings, stages)
    needs_ready = graph.NAMES[-1] in stages  # is the completion already out? (emitter.py)
    read = _unique([*reads, leader_topic(app_id),
                    *([settings.topic_ready] if needs_ready else [])])
    return Grant(
        name=name or ",".join(stages), principal=principal, stages=stages, read=tuple(read),
        follow=tuple(t for t in followed(settings) if t not in read) if status_page else (),
        write=tuple(outputs(settings, stages)),
        describe=tuple(all_topics(settings)),
        create=(leader_topic(app_id),),
        groups=(app_id,),
        transactional_prefixes=tuple(transactional_prefix(app_id, t) for t in reads))


def producer_grant(settings, principal: str) -> Grant:
    """`alertanim send`: an idempotent producer to `alerts`."""
    return Grant(name=PRODUCER, principal=principal, write=(settings.topic_alerts,))


def watcher_grant(settings, principal: str) -> Grant:
    """`alertanim watch [--failed]`: reads `ready` and `failed`, without a group."""
    return Grant(name=WATCHER, principal=principal,
                 read=(settings.topic_ready, settings.topic_failed))


def scaler_grant(settings, roles: Iterable[Grant], principal: str) -> Grant:
    """The autoscaler: the lag of each role's group on its inputs, read-only."""
    roles = list(roles)
    return Grant(name=SCALER, principal=principal,
                 describe=tuple(_unique(t for g in roles for t in inputs(settings, g.stages))),
                 describe_groups=tuple(_unique(grp for g in roles for grp in g.groups)))


def deployment(settings, roles: Mapping[str, Iterable[str]] = ROLES,
               principals: Mapping[str, str] | None = None,
               app_ids: Mapping[str, str] | None = None, status_page: bool = True,
               clients: bool = True, scaler: bool = False) -> list[Grant]:
    """The table of a deployment: one grant per role (by default the user and the app id are
    both `<APP_ID>-<role>`, as deploy/ names them), then the producer, the watcher and, with
    `scaler`, the autoscaler. Two roles sharing a group are refused: with the status page's READ
    on the stage topics, either could commit offsets for the other's inputs."""
    principals = dict(principals or {})
    app_ids = dict(app_ids or {})
    grants = []
    for role, stages in roles.items():
        app_id = app_ids.get(role, f"{settings.app_id}-{role}")
        own = settings.model_copy(update={"app_id": app_id})
        grants.append(role_grant(own, tuple(stages), principals.get(role, app_id), role,
                                 status_page))
    groups = [g.groups[0] for g in grants]
    if len(set(groups)) != len(groups):
        raise ValueError(f"roles share a consumer group ({', '.join(groups)}): give each "
                         "role its own app id")
    if clients:
        grants += [producer_grant(settings, principals.get(PRODUCER,
                                                           f"{settings.app_id}-{PRODUCER}")),
                   watcher_grant(settings, principals.get(WATCHER,
                                                          f"{settings.app_id}-{WATCHER}"))]
    if scaler:
        grants.append(scaler_grant(settings, grants[:len(roles)],
                                   principals.get(SCALER, f"{settings.app_id}-{SCALER}")))
    return grants


def bindings(grants: Iterable[Grant]) -> list[Binding]:
    return [b for g in grants for b in g.bindings()]


# -- kafka-acls.sh (kafka.admin.AclCommand) ----------------------------------------------------
def acl_command_args(grant: Grant) -> list[list[str]]:
    """The arguments of `kafka-acls.sh --add` (kafka.admin.AclCommand) that make `grant`,
    without the connection options: one invocation per operation and pattern type (each gives
    its operation on every resource it names)."""
    by: dict[tuple[str, str], list[Binding]] = {}
    for b in grant.bindings():
        by.setdefault((b.operation, b.pattern), []).append(b)
    commands = []
    for (operation, pattern), bs in by.items():
        args = ["--add", "--allow-principal", grant.user, "--operation", operation]
        if pattern != "literal":
            args += ["--resource-pattern-type", pattern]
        for b in bs:
            args += [f"--{b.resource}", b.name]
        commands.append(args)
    return commands


def script(grants: Iterable[Grant], command: str = "kafka-acls.sh",
           connection: str = '--bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG"',
           width: int = 96) -> str:
    """The shell lines that make `grants` with kafka-acls.sh, each command's options wrapped
    at `width` with backslashes (safe to run again: an ACL that is there already is left as it
    is). `commands(script(...))` reads them back."""
    lines = []
    for grant in grants:
        lines.append(f"# {grant.name}: {grant.user}")
        for args in acl_command_args(grant):
            pairs = [shlex.join(args[i:i + 2]) for i in range(1, len(args), 2)]
            line = f"{command} {connection} {args[0]}"
            for pair in pairs:
                if len(line) + 1 + len(pair) + 2 > width:
                    lines.append(line + " \\")
                    line = "  " + pair
                else:
                    line += " " + pair
            lines.append(line)
    return "\n".join(lines) + "\n"


def commands(text: str, command: str = "kafka-acls.sh") -> list[list[str]]:
    """The arguments of every `command` in a shell script (continued lines joined, comments
    left out), after the connection options: what `acl_command_args` gives, to compare."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0].endswith(command):
            found.append(words[words.index("--add"):])
    return found


# -- the same through the Kafka protocol (CreateAcls), for a job that has no Kafka tools ---------
_RESOURCE = {"topic": 2, "group": 3, "transactional-id": 5}  # org.apache.kafka ResourceType
_PATTERN = {"literal": 3, "prefixed": 4}  # PatternType
_OPERATION = {"Read": 3, "Write": 4, "Create": 5, "Describe": 8}  # AclOperation
_ALLOW = 3  # AclPermissionType.ALLOW


# aiokafka has no public call for ACLs (0.14): CreateAcls and DescribeAcls go through its admin
# client's private `_send_request`. This is the one place the project touches aiokafka's
# internals; `private_admin_api` checks them before any use and fails loudly when a release has
# moved them, and tests/agents/test_acls_private.py pins them to the installed version.
TESTED_AIOKAFKA = ("0.12", "0.13", "0.14")


def private_admin_api():
    """aiokafka's CreateAclsRequest and DescribeAclsRequest, after checking that the admin
    client still has the private `_send_request` this module sends them with."""
    import aiokafka
    from aiokafka.admin import AIOKafkaAdminClient

    try:
        from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest
    except ImportError as exc:
        raise RuntimeError(f"aiokafka {aiokafka.__version__} has no CreateAcls/DescribeAcls "
                           f"requests where alertanim.agents.acls expects them: {exc}") from None
    if not callable(getattr(AIOKafkaAdminClient, "_send_request", None)):
        raise RuntimeError(f"aiokafka {aiokafka.__version__}'s admin client has no "
                           "_send_request: alertanim.agents.acls cannot send ACL requests; "
                           f"it was tested with aiokafka {', '.join(TESTED_AIOKAFKA)}")
    return CreateAclsRequest, DescribeAclsRequest


async def apply(settings, grants: Iterable[Grant]) -> int:
    """Create every ACL of `grants` on the broker `settings` names, as its (admin) principal;
    how many there are. aiokafka's admin client has no create_acls (0.14): this sends the
    CreateAcls request of aiokafka's protocol, one ACL each. An ACL that is there already is
    left as it is."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code

    CreateAclsRequest, _ = private_admin_api()
    wanted = bindings(grants)
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        for b in wanted:
            response = await admin._send_request(CreateAclsRequest(  # noqa: SLF001
                _RESOURCE[b.resource], b.name, _PATTERN[b.pattern], b.principal, "*",
                _OPERATION[b.operation], _ALLOW))
            [(code, message)] = response.creation_responses
            if code:
                raise for_code(code)(f"cannot create the ACL {b}: {message}")
    finally:
        await admin.close()
    return len(wanted)


async def listed(settings, principal: str | None = None) -> set[Binding]:
    """The ALLOW ACLs on the broker (of `principal`, or everyone's), as Bindings."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code

    _, DescribeAclsRequest = private_admin_api()
    resources = {v: k for k, v in _RESOURCE.items()}
    patterns = {v: k for k, v in _PATTERN.items()}
    operations = {v: k for k, v in _OPERATION.items()}
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        # any resource type and pattern (1: ANY), any name, host, operation and permission
        response = await admin._send_request(  # noqa: SLF001 - no public call in aiokafka
            DescribeAclsRequest(1, None, 1, principal, None, 1, 1))
    finally:
        await admin.close()
    if response.error_code:
        raise for_code(response.error_code)(response.error_message)
    found = set()
    for rtype, name, ptype, acls in response.resources:
        for who, _host, operation, permission in acls:
            if permission == _ALLOW and rtype in resources:
                found.add(Binding(who, resources[rtype], name, patterns.get(ptype, str(ptype)),
                                  operations.get(operation, str(operation))))
    return found


# -- the command line ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from .settings import Settings

    parser = argparse.ArgumentParser(prog="python -m alertanim.agents.acls",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["table", "script", "apply"])
    parser.add_argument("--scaler", action="store_true", help="with the autoscaler's grant")
    parser.add_argument("--no-status-page", action="store_true",
                        help="roles without the status page's reads")
    args = parser.parse_args(argv)
    settings = Settings()
    grants = deployment(settings, status_page=not args.no_status_page, scaler=args.scaler)
    if args.what == "table":
        for g in grants:
            print(f"{g.name} ({g.user}, stages {','.join(g.stages) or '-'})")
            for label, items in (("READ", g.read), ("READ (status page)", g.follow),
                                 ("WRITE", g.write), ("CREATE", g.create),
                                 ("group READ", g.groups), ("group DESCRIBE", g.describe_groups),
                                 ("transactional id WRITE (prefixed)",
                                  g.transactional_prefixes)):
                if items:
                    print(f"  {label}: {', '.join(items)}")
        return 0
    if args.what == "script":
        sys.stdout.write(script(grants))
        return 0
    count = asyncio.run(apply(settings, grants))
    print(f"{count} ACLs for {len(grants)} principals", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
