/** The demo's per-origin table and its self-check (requests through every front to every origin). */
import { createHash, randomBytes } from 'node:crypto';
import { Agent } from '../agent/agent.js';
import type { ProtocolPolicy } from '../connect/connect.js';
import type { ServiceConfig } from './config.js';
import type { OriginSummary } from './metrics.js';

export function formatTable(rows: OriginSummary[]): string[] {
  const head = ['origin', 'protocol', 'requests', 'reuse', 'conns', 'opened', 'p50 ttfb', 'errors'];
  const body = rows.map((r) => [
    r.origin,
    r.protocol,
    String(r.requests),
    `${(r.reuseRate * 100).toFixed(1)}%`,
    String(r.open),
    String(r.opened),
    r.p50Ms === null ? '-' : `${r.p50Ms.toFixed(2)} ms`,
    String(r.errors),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const fmt = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 || i === 1 ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0))).join('  ');
  return [fmt(head), ...body.map(fmt)];
}

export interface SelftestResult {
  what: string;
  ok: boolean;
  detail?: string;
}

const PROTO_TEXT: Record<string, string> = { h1: 'HTTP/1.1', h2: 'HTTP/2', h3: 'HTTP/3' };

/** Send GETs and an upload through each front listener to each routed origin. */
export async function runSelftest(
  config: ServiceConfig,
  ports: { tls: number | null; http: number | null; h2c: number | null },
  ca: Buffer,
): Promise<SelftestResult[]> {
  const fronts: Array<{ name: string; base: string; protocol: ProtocolPolicy }> = [];
  if (ports.tls)
    fronts.push(
      { name: 'https/h1', base: `https://localhost:${ports.tls}`, protocol: 'h1' },
      { name: 'https/h2', base: `https://localhost:${ports.tls}`, protocol: 'h2' },
    );
  if (ports.http) fronts.push({ name: 'http/h1', base: `http://127.0.0.1:${ports.http}`, protocol: 'h1' });
  if (ports.h2c) fronts.push({ name: 'h2c', base: `http://127.0.0.1:${ports.h2c}`, protocol: 'h2' });
  const routes = config.routes.filter((r) => r.path !== '/');
  const results: SelftestResult[] = [];
  const agent = new Agent({ tls: { ca }, maxRetries: 0 });
  const upload = randomBytes(256 * 1024);
  const uploadSha = createHash('sha256').update(upload).digest('hex');
  try {
    await Promise.all(
      fronts.flatMap((f) =>
        routes.map(async (r) => {
          const origin = config.origins.get(r.origin);
          const want = origin ? PROTO_TEXT[origin.protocol] : undefined;
          const what = `${f.name} -> ${r.origin} (${r.path})`;
          try {
            for (let i = 0; i < 3; i++) {
              const res = await agent.request({ url: `${f.base}${r.path}/`, protocol: f.protocol });
              const text = await res.text();
              if (res.status !== 200) throw new Error(`status ${res.status}: ${text.slice(0, 120)}`);
              if (want && !text.includes(`hello from the ${want} demo origin`))
                throw new Error(
                  `unexpected body ${JSON.stringify(text.slice(0, 80))} (request ${i + 1}, headers ${JSON.stringify(res.headers)})`,
                );
              if (!res.header('via')?.includes('originlink')) throw new Error('no Via from the connector');
            }
            const up = await agent.request({
              url: `${f.base}${r.path}/echo`,
              method: 'POST',
              body: chunks(upload),
              protocol: f.protocol,
            });
            const back = await up.bytes();
            const sha = createHash('sha256').update(back).digest('hex');
            if (up.status !== 200 || sha !== uploadSha)
              throw new Error(`echo: status ${up.status}, ${back.length} bytes back of ${upload.length}`);
            results.push({ what, ok: true });
          } catch (e) {
            results.push({ what, ok: false, detail: (e as Error).message });
          }
        }),
      ),
    );
  } finally {
    agent.destroy();
  }
  return results.sort((a, b) => a.what.localeCompare(b.what));
}

async function* chunks(b: Buffer): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += 16_384) yield b.subarray(i, i + 16_384);
}
