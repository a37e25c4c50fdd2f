"""System checks: the contract and every callable slot resolve, and settings are safe.

They run on `manage.py check` and on the start of every command and the web server, so a bad
path fails at start with a message naming the variable, the path and the problem.
"""

from django.conf import settings
from django.core.checks import Error, Tags, register

from coordinator_site.contract import SLOT_PARAMETERS, ContractError, get_contract, resolve_slot

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1", "0.0.0.0", "testserver"}  # noqa: S104


@register()
def check_contract_callables(app_configs=None, **kwargs):
    """Import CRUNCH_CONTRACT and every slot (contract default or env override) and check it."""
    try:
        get_contract.cache_clear()
        get_contract()
    except ContractError as exc:
        return [
            Error(str(exc), hint="Set CRUNCH_CONTRACT to 'module:attr' of a CrunchContract.", id="coordinator.E001")
        ]
    except Exception as exc:  # a contract module that raises on import
        return [
            Error(f"CRUNCH_CONTRACT={settings.CRUNCH_CONTRACT!r}: {type(exc).__name__}: {exc}", id="coordinator.E001")
        ]
    errors = []
    for slot in SLOT_PARAMETERS:
        try:
            resolve_slot(slot)
        except ContractError as exc:
            errors.append(Error(str(exc), hint=f"Fix or unset the {slot} variable.", id="coordinator.E002"))
        except Exception as exc:  # the target module raised on import
            errors.append(
                Error(f"{slot}: importing the callable raised {type(exc).__name__}: {exc}", id="coordinator.E002")
            )
    return errors


@register(Tags.security, deploy=False)
def check_production_safety(app_configs=None, **kwargs):
    """Refuse the combinations that expose a node: DEBUG on public hosts, the default key in production."""
    errors = []
    public_hosts = [h for h in settings.ALLOWED_HOSTS if h not in LOCAL_HOSTS]
    if settings.DEBUG and public_hosts:
        errors.append(
            Error(
                f"DEBUG=true with non-local ALLOWED_HOSTS {public_hosts}",
                hint="Set DEBUG=false for any host reachable from outside this machine.",
                id="coordinator.E010",
            )
        )
    if not settings.DEBUG and settings.SECRET_KEY in ("", settings.DEFAULT_SECRET_KEY):
        errors.append(
            Error(
                "the default SECRET_KEY is used with DEBUG=false",
                hint="Set SECRET_KEY to a long random value (python -c 'import secrets; print(secrets.token_urlsafe(50))').",
                id="coordinator.E011",
            )
        )
    return errors


# Checkpoint periods are aligned to Monday 1970-01-05 00:00 UTC, snapshot buckets to the epoch.
CHECKPOINT_ANCHOR_OFFSET_SECONDS = 4 * 86_400


@register()
def check_snapshot_period_nests_in_checkpoints(app_configs=None, **kwargs):
    """Every snapshot bucket must lie in exactly one checkpoint period, or a checkpoint could
    commit a snapshot that straddles its boundary (DESIGN.md §12)."""
    snapshot, interval = settings.SNAPSHOT_PERIOD_SECONDS, settings.CHECKPOINT_INTERVAL_SECONDS
    if snapshot <= 0 or interval <= 0:
        return [
            Error("SNAPSHOT_PERIOD_SECONDS and CHECKPOINT_INTERVAL_SECONDS must be positive", id="coordinator.E020")
        ]
    if interval % snapshot or CHECKPOINT_ANCHOR_OFFSET_SECONDS % snapshot:
        return [
            Error(
                f"SNAPSHOT_PERIOD_SECONDS={snapshot} does not divide CHECKPOINT_INTERVAL_SECONDS={interval} "
                f"(and the checkpoint anchor, {CHECKPOINT_ANCHOR_OFFSET_SECONDS} s after the epoch)",
                hint="Pick a snapshot period that divides both, e.g. 60, 300, 3600 or 86400.",
                id="coordinator.E020",
            )
        ]
    return []


SETTLEMENT_CHOICES = ("solana", "evm")  # the chains checkpoints.txhash can check a hash for


@register()
def check_settlement_chains(app_configs=None, **kwargs):
    """SETTLEMENT_CHAINS names chains whose transaction hashes confirm can check."""
    chains = list(settings.SETTLEMENT_CHAINS)
    unknown = [chain for chain in chains if chain not in SETTLEMENT_CHOICES]
    if unknown or not chains:
        return [
            Error(
                f"SETTLEMENT_CHAINS={','.join(chains)!r}: unknown {unknown or 'empty list'}",
                hint=f"Use one or more of {', '.join(SETTLEMENT_CHOICES)} (comma-separated).",
                id="coordinator.E012",
            )
        ]
    return []


@register()
def check_ground_truth_fetch(app_configs=None, **kwargs):
    """The resolver's gap-fetch bounds (docs/scoring.md "Gap fetch") are durations. However long the
    time box, a batch's fetches are cut off at half its lease (SCORE_LEASE_SECONDS) at run time."""
    errors = []
    for name in ("GROUND_TRUTH_FETCH_TIMEOUT_SECONDS", "GROUND_TRUTH_FETCH_INTERVAL_SECONDS"):
        if getattr(settings, name) < 0:
            errors.append(
                Error(
                    f"{name}={getattr(settings, name):g} must be >= 0",
                    hint="GROUND_TRUTH_FETCH_TIMEOUT_SECONDS=0 turns the resolver's provider fetch off.",
                    id="coordinator.E030",
                )
            )
    return errors


EVENT_TICKS_CHOICES = ("auto", "on", "off")  # docs/predict.md "Event ticks"


@register()
def check_event_ticks(app_configs=None, **kwargs):
    """EVENT_TICKS is auto, on or off (a typo must not silently change when models are ticked)."""
    if settings.EVENT_TICKS not in EVENT_TICKS_CHOICES:
        return [
            Error(
                f"EVENT_TICKS={settings.EVENT_TICKS!r}: expected one of {', '.join(EVENT_TICKS_CHOICES)}",
                hint="auto = on for the local gateway, off for the remote one.",
                id="coordinator.E031",
            )
        ]
    return []
