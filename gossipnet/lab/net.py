"""Where the lab's nodes run: all on loopback, or each in a network namespace of its own.

Two backends give the lab the same few operations: the address a node listens
on, the command prefix that starts it there, cutting and restoring a node's
cable, and a teardown that removes everything the backend made.

- :class:`Loopback`: every node on 127.0.0.1, each on its own port (port 0
  the first time, the port it got when it starts again).  Needs nothing; a
  cable cannot be cut.
- :class:`Namespaces`: every node in its own Linux network namespace with its
  own address in 10.213.0.0/16, on one veth pair whose other end is a port of
  a bridge in the run's own "hub" namespace.  The host's namespace is never
  touched: each veth pair is created inside the hub with its far end placed
  straight into the node's namespace.  Cutting a node's cable sets its port on
  the hub down: the node keeps its address and its open connections, and
  nothing reaches it or leaves it, as when a cable is pulled at the switch.

Every name a run makes carries a prefix unique to the run (``gl``, the pid
and a counter, in base 36), so that its leftovers can be found and nothing of
another run is touched.  This module starts no node and signals none; it
removes only namespaces and links it made itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence

# The private range every namespace address comes from.  Inside namespaces the
# run creates, so it cannot clash with anything on the host.
SUBNET = ipaddress.ip_network("10.213.0.0/16")
# Ports in the namespaces: every node has an address of its own, so all
# seeds can share one port and all peers another.
SEED_PORT, PEER_PORT = 8080, 9000
# Seconds one `ip` command may take before the lab gives up on it.
IP_TIMEOUT = 10.0
# Linux limit on an interface name (IFNAMSIZ - 1).
MAX_IFNAME = 15

_runs = itertools.count()


class LabNetError(Exception):
    """Setting up or tearing down the network failed.  The message is one line."""


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def unique_prefix() -> str:
    """``gl`` + this process's pid + a two-character counter: unique per run, short enough for
    interface names (``gl`` + at most 5 + 2 characters, then the node's name)."""
    return f"gl{_base36(os.getpid())}{_base36(next(_runs) % 1296):0>2}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run one ``ip`` (iproute2) command; raise LabNetError with its own message when it fails."""
    try:
        # Its own session: a Ctrl-C at the terminal is for the lab, which then tears down with `ip`.
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabNetError(f"ip {' '.join(args)}: {exc}") from None
    if check and done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise LabNetError(f"ip {' '.join(args)}: {reason}")
    return done


def namespaces_unavailable() -> str | None:
    """Why this machine cannot run the namespace backend (one line), or None if it can."""
    if os.geteuid() != 0:
        return "network namespaces need root: run the lab as root, or use --loopback"
    if shutil.which("ip") is None:
        return "network namespaces need the ip command (iproute2), which is not installed; or use --loopback"
    probe = f"{unique_prefix()}-probe"
    try:
        ip("netns", "add", probe)
    except LabNetError as exc:
        return f"cannot create a network namespace ({exc}); use --loopback"
    reason = None
    try:
        # What the lab builds, in miniature and inside the probe namespace: a
        # bridge and a veth pair (a kernel without them fails here, not mid-run).
        ip("-n", probe, "link", "add", "pbr", "type", "bridge")
        ip("-n", probe, "link", "add", "pv0", "type", "veth", "peer", "name", "pv1")
    except LabNetError as exc:
        reason = f"cannot create a bridge or veth pair in a namespace ({exc}); use --loopback"
    try:
        ip("netns", "del", probe)
    except LabNetError as exc:
        reason = f"cannot remove a network namespace ({exc})"
    return reason


class Loopback:
    """Every node on 127.0.0.1, told apart by port."""

    name = "loopback"
    can_cut = False

    def setup(self) -> None:
        pass

    def place(self, node: str, role: str) -> tuple[str, int, list[str]]:
        """(IP, port, command prefix) for a node's first start: a free port the system picks."""
        return "127.0.0.1", 0, []

    def cut(self, node: str) -> None:
        raise LabNetError("a cable cut needs the namespace backend (every node on loopback shares one interface)")

    restore = cut

    def teardown(self) -> list[str]:
        return []

    def leftovers(self) -> list[str]:
        return []


class Namespaces:
    """One network namespace per node, joined by a bridge in a hub namespace of the run's own."""

    name = "namespaces"
    can_cut = True

    def __init__(self) -> None:
        self.prefix = unique_prefix()
        self.hub = f"{self.prefix}-hub"
        self.bridge = f"{self.prefix}br"
        self.created: list[str] = []  # namespaces, in the order made (the hub first)
        self.hosts: dict[str, str] = {}  # node -> its IP
        self._addresses = (str(host) for host in SUBNET.hosts() if not str(host).endswith((".0", ".255")))

    def namespace(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def port_name(self, node: str) -> str:
        """The node's end of the cable on the hub: a port of the bridge."""
        name = f"{self.prefix}{node}"
        if len(name) > MAX_IFNAME:
            raise LabNetError(f"interface name {name} is longer than {MAX_IFNAME} characters")
        return name

    def setup(self) -> None:
        self._add_namespace(self.hub)
        ip("-n", self.hub, "link", "add", self.bridge, "type", "bridge")
        ip("-n", self.hub, "link", "set", self.bridge, "up")

    def _add_namespace(self, name: str) -> None:
        self.created.append(name)  # first, so that a failure half-way is still torn down
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")

    def place(self, node: str, role: str) -> tuple[str, int, list[str]]:
        """(IP, port, command prefix) of a node; its namespace and cable are made the first time."""
        if node not in self.hosts:
            host = next(self._addresses)
            namespace = self.namespace(node)
            self._add_namespace(namespace)
            port = self.port_name(node)
            # Made inside the hub, the far end straight in the node's namespace: the host never sees either.
            ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            ip("-n", self.hub, "link", "set", port, "master", self.bridge, "up")
            ip("-n", namespace, "addr", "add", f"{host}/{SUBNET.prefixlen}", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            self.hosts[node] = host
        port_number = SEED_PORT if role == "seed" else PEER_PORT
        return self.hosts[node], port_number, ["ip", "netns", "exec", self.namespace(node)]

    def cut(self, node: str) -> None:
        ip("-n", self.hub, "link", "set", self.port_name(node), "down")

    def restore(self, node: str) -> None:
        ip("-n", self.hub, "link", "set", self.port_name(node), "up")

    def teardown(self) -> list[str]:
        """Remove every namespace made (their links go with them); the problems met, if any.

        The lab stops its nodes first; a process still inside a namespace of
        this run (only this run puts processes there) is killed by PID, since
        a namespace with a process in it outlives ``ip netns del``.  Safe to
        call twice: the second call finds nothing to remove.
        """
        problems = []
        while self.created:
            namespace = self.created.pop()  # nodes first, the hub last
            try:
                pids = ip("netns", "pids", namespace, check=False).stdout.split()
                for pid in pids:
                    _kill(int(pid))
                ip("netns", "del", namespace)
            except LabNetError as exc:
                if "No such file" not in str(exc):
                    problems.append(str(exc))
        return problems

    def leftovers(self) -> list[str]:
        """Namespaces and host links of this run that still exist (none after teardown)."""
        names = re.compile(rf"^{re.escape(self.prefix)}(-hub|-[sp]\d+|br|[sp]\d+)$")
        found = [line.split()[0] for line in ip("netns", "list").stdout.splitlines()
                 if line.strip() and names.match(line.split()[0])]
        for line in ip("-o", "link", "show").stdout.splitlines():
            parts = line.split(":", 2)
            if len(parts) > 1 and names.match(parts[1].strip().split("@")[0]):
                found.append(f"link {parts[1].strip()}")
        return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def make_backend(name: str) -> Loopback | Namespaces:
    return Namespaces() if name == Namespaces.name else Loopback()


BACKENDS: Sequence[str] = (Loopback.name, Namespaces.name)
