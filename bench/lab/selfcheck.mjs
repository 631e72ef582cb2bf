// Self-check of a lab link: a paced UDP echo run (about one second) measures
// the RTT against the configured delays and the round-trip loss against a
// binomial band around the configured loss.

const UDP_IP_HEADERS = 28;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/**
 * Kernel-to-kernel RTT with ping (ICMP echo) alongside the UDP run: it
 * excludes the ~0.3-0.5 ms that two node processes add to a UDP echo.
 * Resolves null when ping is not installed.
 */
async function pingRtt(lab, count, intervalMs, waitMs) {
  const argv = [
    'ping',
    '-n',
    '-c',
    String(count),
    '-i',
    String(intervalMs / 1000),
    '-W',
    String(Math.max(1, Math.ceil(waitMs / 1000))),
    lab.server.addr,
  ];
  const r = await lab.exec('client', argv, { allowFail: true, timeoutMs: 20_000 }).catch(() => null);
  if (!r || r.code === null || /not found|No such file/.test(r.stderr)) return null;
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { n: times.length, sent: count, median: median(times), min: Math.min(...times), max: Math.max(...times) };
}

function dirDelta(after, before) {
  const out = {};
  for (const k of ['received', 'forwarded', 'lost', 'queueDropped', 'overflowDropped', 'writeErrors']) {
    out[k] = (after[k] ?? 0) - (before[k] ?? 0);
  }
  out.lossPct = out.received ? (100 * out.lost) / out.received : 0;
  return out;
}

/** Expected round-trip survival probability of one echo probe. */
export function echoSurvival(c) {
  return (1 - c.lossPct / 100) * (1 - c.reverseLossPct / 100) * (1 - Math.round(c.nftLossPct * 10) / 1000);
}

/** [low, high] count of lost probes out of n, `sigmas` binomial standard deviations around the mean. */
export function binomialBand(n, pLoss, sigmas) {
  const mean = n * pLoss;
  const sd = Math.sqrt(n * pLoss * (1 - pLoss));
  return [Math.max(0, mean - sigmas * sd), Math.min(n, mean + sigmas * sd)];
}

export async function selfCheck(lab, opts = {}) {
  const c = lab.config;
  const tolerancePct = opts.tolerancePct ?? 5;
  const sigmas = opts.sigmas ?? 3;
  const size = opts.size ?? 64;
  const wireBits = (size + UDP_IP_HEADERS) * 8;
  const rates = [c.rateMbit, c.reverseRateMbit].filter((r) => r > 0);
  // Offered load stays under 40 % of the slowest rate, so no queue builds up.
  let pps = 1000;
  if (rates.length) pps = Math.max(10, Math.min(pps, Math.floor((0.4 * Math.min(...rates) * 1e6) / wireBits)));
  const count = opts.count ?? Math.max(50, Math.round((pps * (opts.durationMs ?? 1000)) / 1000));
  const burst = Math.min(5, Math.max(1, Math.floor(pps / 100)));
  const intervalMs = (1000 * burst) / pps;
  const serialMs = (rate) => (rate > 0 ? wireBits / (rate * 1e3) : 0);
  const expectedRttMs = c.delayMs + c.reverseDelayMs + serialMs(c.rateMbit) + serialMs(c.reverseRateMbit);
  const waitMs = Math.max(200, 1.5 * expectedRttMs + 4 * c.jitterMs + 100);
  const port = 7;
  const started = performance.now();

  const echo = await lab.startProbe('server', { mode: 'udp-echo', host: lab.server.addr, port, maxMs: 30_000 });
  let ping;
  let icmp;
  let before;
  let after;
  try {
    const udp = () =>
      lab.probe(
        'client',
        {
          mode: 'udp-ping',
          host: lab.server.addr,
          port,
          count,
          burst,
          intervalMs,
          size,
          waitMs,
          maxMs: 30_000,
        },
        { timeoutMs: 40_000 },
      );
    if (c.jitterMs > 0 && !c.reorder) {
      // Without reordering, a packet never leaves before the one ahead of it,
      // which lengthens delays when packets are closer than the jitter span.
      // Pings spaced wider than that span alone see the configured jitter.
      const span = 2 * c.jitterMs * (c.jitterDist === 'normal' ? 3 : 1);
      const gap = Math.max(10, span + 2);
      icmp = await pingRtt(lab, Math.max(20, Math.min(100, Math.round(600 / gap))), gap, waitMs);
      before = await lab.counters();
      ping = await udp();
    } else {
      before = await lab.counters();
      [ping, icmp] = await Promise.all([
        udp(),
        pingRtt(lab, 100, Math.max(10, (count * intervalMs) / burst / 100), waitMs),
      ]);
    }
    after = await lab.counters();
  } finally {
    await echo.stop();
  }
  if (ping?.error) throw new Error(`self-check probe failed: ${ping.error}`);

  const rtt = ping.leadRttMs ?? ping.rttMs;
  const rttSource = icmp?.n ? 'icmp' : 'udp';
  const rttMs = rttSource === 'icmp' ? icmp.median : (rtt?.median ?? NaN);
  const deviationMs = rttMs - expectedRttMs;
  const withinPct = expectedRttMs > 0 ? (100 * Math.abs(deviationMs)) / expectedRttMs : NaN;
  // Below 10 ms of configured RTT the host's own latency dominates: allow
  // 0.5 ms. With jitter, the median of n samples itself wanders by about
  // 1.25 sigma / sqrt(n): allow `sigmas` of that too.
  const oneWaySd = c.jitterDist === 'normal' ? c.jitterMs : c.jitterMs / Math.sqrt(3);
  const n = rttSource === 'icmp' ? icmp.n : (rtt?.n ?? 1);
  const medianSe = (1.2533 * Math.SQRT2 * oneWaySd) / Math.sqrt(Math.max(1, n));
  const rttToleranceMs = Math.max((tolerancePct / 100) * expectedRttMs, 0.5, sigmas * medianSe);
  const rttOk = Math.abs(deviationMs) <= rttToleranceMs;

  const expectedLoss = 1 - echoSurvival(c);
  const lossBand = binomialBand(ping.sent, expectedLoss, sigmas);
  const lossOk = ping.lost >= Math.floor(lossBand[0]) && ping.lost <= Math.ceil(lossBand[1]);
  const up = dirDelta(after.clientToServer, before.clientToServer);
  const down = dirDelta(after.serverToClient, before.serverToClient);
  const queueOk = up.queueDropped + up.overflowDropped + down.queueDropped + down.overflowDropped === 0;

  return {
    ok: rttOk && lossOk && queueOk,
    rttMs,
    expectedRttMs,
    withinPct,
    tolerancePct,
    rttToleranceMs,
    rttSource,
    rtt,
    icmpRtt: icmp,
    udpRttMs: rtt?.median ?? NaN,
    lossPct: ping.sent ? (100 * ping.lost) / ping.sent : 0,
    expectedLossPct: 100 * expectedLoss,
    lossBand,
    sent: ping.sent,
    received: ping.received,
    lost: ping.lost,
    link: { clientToServer: up, serverToClient: down },
    nftDropped: after.nftDropped !== undefined ? after.nftDropped - (before.nftDropped ?? 0) : undefined,
    checks: { rtt: rttOk, loss: lossOk, queue: queueOk },
    durationMs: performance.now() - started,
  };
}
