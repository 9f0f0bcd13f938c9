"""Chaos: agents killed with SIGKILL at random moments lose no batch and deliver none twice."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from batchformat import BatchName, SigningKey, verify_batch_file
from servicekit.testing import free_port, wait_until
from tests.transfer_agent.conftest import AgentProcess, Site, no_leftovers

KILLS = int(os.environ.get("CHAOS_KILLS", "24"))
GOOD = 70
BAD = 12


def make_batches(
    site: Site, staging: Path, stranger: SigningKey, rng: random.Random
) -> tuple[list[str], list[str]]:
    """Good batches of mixed sizes (1 KB to ~17 MB) and bad ones of every kind, in staging."""
    good, bad = [], []
    for i in range(GOOD + BAD):
        # A few large batches keep agents busy long enough for kills to land mid-copy.
        records, pad = rng.choice([(2, 10), (20, 100), (300, 200), (20_000, 150)])
        if i % 12 == 0:
            records, pad = 100_000, 120
        if i < GOOD:
            good.append(site.batch(records, folder=staging, pad=pad).name)
            continue
        damage = i % 3
        path = site.batch(records, folder=staging, pad=pad, key=stranger if damage == 0 else None)
        data = path.read_bytes()
        if damage == 1:
            middle = len(data) // 2
            path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :])
        elif damage == 2:
            path.write_bytes(data[: rng.randrange(1, len(data) - 1)])
        bad.append(path.name)
    return good, bad


def feed(staging: Path, source: Path, names: list[str], rng: random.Random) -> None:
    """Publish staged batches into the source one by one, as a producer would."""
    for name in names:
        os.rename(staging / name, source / name)
        time.sleep(rng.uniform(0, 0.4))


def configured(site: Site) -> Site:
    """The same route served on a port of its own (each agent needs one)."""
    own = replace(site, port=free_port())
    own.write_config()
    return own


def wait_for_claim(agent: AgentProcess, timeout: float) -> None:
    """Return when the agent holds a claimed batch, or after `timeout` seconds."""
    started = agent.events("agent_started")
    if not started:
        return
    claim_folder = Path(started[0]["claim_folders"][0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(claim_folder.glob("*.jsonl")):
            return
        time.sleep(0.002)


def test_sigkill_at_random_moments_loses_nothing_and_delivers_nothing_twice(
    site: Site, agents: list[AgentProcess], stranger_key: SigningKey
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", str(random.randrange(1 << 30))))
    print(f"chaos seed {seed} (rerun with CHAOS_SEED={seed})")
    rng = random.Random(seed)
    staging = site.root / "staging"
    staging.mkdir()
    started = time.monotonic()
    good, bad = make_batches(site, staging, stranger_key, rng)
    print(f"batches made in {time.monotonic() - started:.1f} s")
    order = good + bad
    rng.shuffle(order)
    feeder = threading.Thread(target=feed, args=(staging, site.source, order, rng))
    feeder.start()

    # Two agents run at a time. Each round starts a new one and kills the older with SIGKILL,
    # so the newcomer's start-up (about a second of imports) overlaps the victim's work. The
    # victim dies at a random moment (odd rounds) or as soon as it holds a claim (even).
    running: list[AgentProcess] = []
    for round_number in range(KILLS + 1):
        newcomer = AgentProcess(configured(site), f"agent-{round_number}").start(wait=False)
        agents.append(newcomer)
        running.append(newcomer)
        if len(running) < 2:
            continue
        victim = running.pop(0)
        wait_until(partial(victim.events, "agent_started"), what="the victim to start")
        if round_number % 2:
            time.sleep(rng.uniform(0, 0.6))
        else:
            wait_for_claim(victim, timeout=1.0)
            time.sleep(rng.uniform(0, 0.02))
        victim.kill()
    running[0].kill()
    feeder.join()
    print(f"kill rounds done at {time.monotonic() - started:.1f} s")

    final = AgentProcess(configured(site), "final").start()
    agents.append(final)
    wait_until(
        lambda: len(site.delivered()) == len(good) and len(site.quarantined()) == len(bad),
        timeout_s=60,
        what="every batch to be delivered or quarantined",
    )
    assert final.stop() == 0
    print(f"all settled at {time.monotonic() - started:.1f} s")

    assert site.delivered() == sorted(good)
    for name in good:
        assert verify_batch_file(site.destination / name, site.trusted).record_count > 0
    assert site.quarantined() == sorted(bad)
    assert sorted(p.name for p in (site.source / "sent").iterdir()) == sorted(good)
    assert no_leftovers(site) == []
    assert not list((site.source / ".in-flight").iterdir())
    delivered_events = [
        event["batch_id"] for agent in agents for event in agent.events("batch_delivered")
    ]
    assert len(delivered_events) == len(set(delivered_events)), "a batch was copied twice"
    good_ids = {str(BatchName.parse(name).batch_id) for name in good}  # type: ignore[union-attr]
    assert set(delivered_events) <= good_ids
    adopted = sum(e["count"] for agent in agents for e in agent.events("claims_adopted"))
    already = sum(len(agent.events("batch_already_delivered")) for agent in agents)
    print(
        f"{len(delivered_events)} copies logged, {adopted} claims adopted from killed agents, "
        f"{already} found already delivered after a kill"
    )
    # The kills must have hit agents in the middle of their work, or this test proves nothing.
    assert adopted > 0
