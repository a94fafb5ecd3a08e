"""Two sites across an emulated WAN: one network namespace per site, a link between them.

The kernel of the machine this was built on has no ``sch_netem`` (``CONFIG_NET_SCH_NETEM``
is not set and it cannot load modules), so the link is a userspace emulator instead of
``tc netem``: a TUN device in each site's namespace, joined by one process
(:mod:`bench.wan.link`) that carries every IP packet across with the configured delay,
jitter and loss, and drops everything while the link is cut. TCP in the namespaces sees a
real lossy, slow network: retransmissions, RTOs and all.
"""
