"""The delivery loop: claims due deliveries from the backbone and POSTs them.

One loop per process claims as many deliveries as it has free slots (``concurrency``), and
each attempt runs as its own asyncio task under a hard time limit, so a slow receiver holds
one slot for at most ``timeout`` seconds and never delays a task or another delivery. The
loop sleeps until the next delivery falls due, a slot frees, this process creates a delivery,
or ``poll_interval`` passes (deliveries created by other processes).

An attempt: sign (a fresh ``webhook-timestamp``, the same ``webhook-id``), connect only to
addresses the guard allows, send, read at most ``MAX_RESPONSE_BYTES`` of the answer. A 2xx
is delivered; a network error, a timeout or any other status is tried again after the next
delay of the schedule (jittered, never sooner than ``Retry-After``), and failed once the
schedule is spent; a refused URL fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from skillwire.protocol import BackboneUnavailable

from .._config import WebhooksConfig
from .._metrics import Metrics
from ..backbone import Backbone, DeliveryRecord
from ._schedule import next_delay, parse_retry_after
from ._signing import Signer, derive_secret
from ._ssrf import UnsafeUrl, UrlGuard
from ._transport import make_client

__all__ = ["MAX_RESPONSE_BYTES", "WebhookDispatcher"]

log = logging.getLogger("skillwire.webhooks")

MAX_RESPONSE_BYTES = 1024
ATTEMPT_HEADER = "skillwire-attempt"


class _Outcome:
    __slots__ = ("delivered", "error", "refused", "retry_after")

    def __init__(
        self,
        *,
        delivered: bool = False,
        error: str | None = None,
        refused: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.delivered = delivered
        self.error = error
        self.refused = refused
        self.retry_after = retry_after


class WebhookDispatcher:
    def __init__(
        self,
        backbone: Backbone,
        config: WebhooksConfig,
        guard: UrlGuard,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._backbone = backbone
        self._config = config
        self._guard = guard
        self._metrics = metrics
        self._delays = list(config.retry_delays)
        # Long enough that a live process always reports before its claim lapses.
        self.lease = 2 * config.timeout + 10.0
        # A bad configured secret stops the server at start; an unset one is derived later.
        self._signer = Signer(config.secret, config.secrets) if config.secret else None
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.Task[None] | None = None
        self._attempts: dict[asyncio.Task[None], DeliveryRecord] = {}
        self._wake = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._attempts)

    async def start(self) -> None:
        self._backbone.add_delivery_listener(self._wake.set)
        self._loop = asyncio.create_task(self._run(), name="skillwire-webhooks")

    async def stop(self) -> None:
        """Stop claiming; interrupt attempts in flight and give them back, due now."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        interrupted = list(self._attempts.items())
        for job, _ in interrupted:
            job.cancel()
        for job, record in interrupted:
            with contextlib.suppress(asyncio.CancelledError):
                await job
            with contextlib.suppress(BackboneUnavailable):  # else its lease lapses
                await self._backbone.finish_attempt(
                    record.id,
                    record.attempts,
                    delivered=False,
                    error="interrupted: the server stopped during this attempt",
                    retry_at=time.time(),
                )
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the loop -------------------------------------------------------------------------
    async def _signer_ready(self) -> Signer:
        """The signer; without a configured secret, one derived from the backbone's shared
        secret (the same in every process of a deployment), announced at its first use."""
        if self._signer is None:
            secret = derive_secret(await self._backbone.id_secret())
            if self._signer is None:
                self._signer = Signer(secret, self._config.secrets)
                log.warning(
                    "webhooks.secret is not set: deliveries are signed with a secret derived "
                    "for this deployment, printed once on stdout; set SKILLWIRE_WEBHOOKS__SECRET"
                )
                print(f"Webhook secret: {secret}", flush=True)
        return self._signer

    def _client_ready(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(
                self._guard,
                timeout=self._config.timeout,
                connect_timeout=self._config.connect_timeout,
                max_connections=self._config.concurrency,
            )
        return self._client

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            self._wake.clear()
            free = self._config.concurrency - len(self._attempts)
            delay = self._config.poll_interval
            if free > 0:
                try:
                    claimed, next_due = await self._backbone.claim_deliveries(free, self.lease)
                except Exception as exc:
                    if isinstance(exc, BackboneUnavailable):
                        log.warning("cannot claim webhook deliveries: %s", exc.message)
                    else:
                        log.exception("claiming webhook deliveries failed")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                for record in claimed:
                    job = asyncio.create_task(self._attempt(record))
                    self._attempts[job] = record
                if next_due is not None and len(claimed) < free:
                    # (never 0 after an empty claim: no spinning on a clock skew)
                    delay = min(delay, max(next_due - time.time(), 0.0 if claimed else 0.01))
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    # -- one attempt ----------------------------------------------------------------------
    async def _attempt(self, record: DeliveryRecord) -> None:
        try:
            signer = await self._signer_ready()
            try:
                outcome = await self._send(record, signer)
            except BackboneUnavailable:
                raise
            except Exception as exc:
                # A bug or a receiver's answer we did not foresee: still an attempt, recorded
                # and scheduled like any failure, so the delivery ends failed one day instead
                # of being claimed again every lease, forever.
                log.exception("webhook delivery %s: the attempt failed unexpectedly", record.id)
                outcome = _Outcome(error=f"internal error: {type(exc).__name__}: {exc}"[:500])
            await self._report(record, outcome)
        except BackboneUnavailable as exc:
            # Not recorded: the claim lapses and the delivery is attempted again.
            log.warning("cannot record delivery %s: %s", record.id, exc.message)
        except Exception as exc:
            log.exception("webhook delivery %s failed unexpectedly", record.id)
            await self._give_up(record, f"internal error: {type(exc).__name__}: {exc}"[:500])
        finally:
            self._attempts.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._wake.set()

    async def _send(self, record: DeliveryRecord, signer: Signer) -> _Outcome:
        client = self._client_ready()
        timeout = self._config.timeout
        try:
            self._guard.parse(record.url)
            headers = signer.headers(record.url, record.id, int(time.time()), record.payload)
            headers["content-type"] = "application/json"
            headers[ATTEMPT_HEADER] = str(record.attempts)
            async with (
                asyncio.timeout(timeout),
                client.stream(
                    "POST", record.url, content=record.payload, headers=headers
                ) as response,
            ):
                snippet = await _read_capped(response)
        except UnsafeUrl as exc:
            return _Outcome(error=f"refused: {exc}", refused=True)
        except (TimeoutError, httpx.TimeoutException):
            return _Outcome(error=f"timed out after {timeout:g} s")
        except httpx.HTTPError as exc:
            return _Outcome(error=f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return _Outcome(delivered=True)
        text = snippet[:200].decode("utf-8", "replace").strip()
        return _Outcome(
            error=f"HTTP {response.status_code}" + (f": {text}" if text else ""),
            retry_after=parse_retry_after(response.headers.get("retry-after"), time.time()),
        )

    async def _report(self, record: DeliveryRecord, outcome: _Outcome) -> None:
        retry_at: float | None = None
        if outcome.delivered:
            result = "delivered"
        elif outcome.refused:
            result = "refused"
        else:
            delay = next_delay(
                self._delays, record.attempts - record.round_start, outcome.retry_after
            )
            retry_at = None if delay is None else time.time() + delay
            result = "failed" if retry_at is None else "retry"
        recorded = await self._backbone.finish_attempt(
            record.id,
            record.attempts,
            delivered=outcome.delivered,
            error=outcome.error,
            retry_at=retry_at,
        )
        if self._metrics is not None:
            self._metrics.webhook_attempts.labels(result).inc()
        if not recorded:
            log.warning("delivery %s attempt %d was taken over", record.id, record.attempts)
        elif result in ("failed", "refused"):
            log.warning(
                "webhook delivery %s to %s failed after %d attempts: %s",
                record.id,
                record.url,
                record.attempts,
                outcome.error,
            )

    async def _give_up(self, record: DeliveryRecord, error: str) -> None:
        """Record the attempt as the last one when reporting it failed: a delivery that
        cannot be reported is failed (listed, retried by hand), never claimed forever."""
        try:
            await self._backbone.finish_attempt(
                record.id, record.attempts, delivered=False, error=error, retry_at=None
            )
        except Exception:
            log.exception("cannot record webhook delivery %s as failed", record.id)


async def _read_capped(response: httpx.Response) -> bytes:
    """At most MAX_RESPONSE_BYTES of the body (raw: a receiver cannot make us inflate it)."""
    body = b""
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) >= MAX_RESPONSE_BYTES:
            break
    return body[:MAX_RESPONSE_BYTES]
