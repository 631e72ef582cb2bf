/**
 * `stores:` in the service config: every field parsed and validated (a bad
 * value names the field), and an Upstream opening the named stores (one
 * shared instance, closed with the last Upstream) against a real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../../src/service/config.js';
import { Upstream } from '../../src/service/upstream.js';
import { Metrics } from '../../src/service/metrics.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';

let redis: RedisPeer;
let dir: string;
const ORIGIN =
  'origins: { a: { url: "https://127.0.0.1:9443" } }\nroutes: [ { origin: a } ]\nlisteners: [ { kind: http, port: 0 } ]\n';

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'ol-fleet-cfg-'));
  writeFileSync(join(dir, 'key'), randomBytes(32).toString('hex'));
  writeFileSync(join(dir, 'short'), 'abcd');
}, 20_000);

afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('stores: in the service config', () => {
  it('parses every field with its defaults', () => {
    const c = parseConfig(
      `stores: { sessions: "${redis.url}", origins: "${redis.url}", prefix: "edge1:", encryptionKeyFile: key, maxEntries: 50 }\n${ORIGIN}`,
      'x.yaml',
      dir,
    );
    expect(c.stores).toMatchObject({
      sessions: redis.url,
      origins: redis.url,
      prefix: 'edge1:',
      maxEntries: 50,
      encryptionKeyFile: join(dir, 'key'),
      tls: { ca: null, verify: true },
    });
    expect(c.stores!.encryptionKey!.length).toBe(32);
    expect(c.origins.get('a')!.stores).toBe(c.stores);
    const d = parseConfig(`stores: { sessions: /var/lib/ol/sessions.json }\n${ORIGIN}`, 'x.yaml', dir);
    expect(d.stores).toMatchObject({
      sessions: '/var/lib/ol/sessions.json',
      origins: null,
      prefix: 'originlink:',
      maxEntries: 1024,
      encryptionKey: null,
    });
    expect(parseConfig(ORIGIN, 'x.yaml', dir).stores).toBeNull();
  });

  it('names the field of a bad value', () => {
    const bad = (s: string): string => {
      try {
        parseConfig(`stores: ${s}\n${ORIGIN}`, 'x.yaml', dir);
        return 'parsed';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad('{ sessions: "redis://h:1/x" }')).toMatch(/stores\.sessions: .*database must be a number/);
    expect(bad('{ origins: "redis://h:1/0?nope=1" }')).toMatch(/stores\.origins: unknown Redis URL parameter/);
    expect(bad('{ encryptionKeyFile: short }')).toMatch(/stores\.encryptionKeyFile: .*32 bytes/);
    expect(bad('{ encryptionKeyFile: missing }')).toMatch(/stores\.encryptionKeyFile: cannot read/);
    expect(bad('{ colour: blue }')).toMatch(/stores/);
  });

  it('upstreams share one opened set of stores, closed with the last of them', async () => {
    const c = parseConfig(
      `stores: { sessions: "${redis.url}", origins: "${redis.url}", encryptionKeyFile: key }\n${ORIGIN}`,
      'x.yaml',
      dir,
    );
    const oc = c.origins.get('a')!;
    const closed: string[] = [];
    const u1 = new Upstream(oc, new MemorySessionStore(), () => closed.push('u1'));
    const u2 = new Upstream(oc, new MemorySessionStore(), () => closed.push('u2'));
    const s = u1.agent.sessionStore as RedisSessionStore;
    expect(s).toBeInstanceOf(RedisSessionStore);
    expect(u2.agent.sessionStore).toBe(s);
    await s.link.ready(2000);
    expect(s.link.up).toBe(true);
    u1.destroy();
    expect(s.link.up).toBe(true);
    u2.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(s.link.up).toBe(false);
    expect(closed).toEqual(['u1', 'u2']);
  });

  it('/metrics tells the fleet store: up, then down with one outage while Redis is killed, up again after', {
    timeout: 20_000,
  }, async () => {
    const c = parseConfig(`stores: { sessions: "${redis.url}", origins: "${redis.url}" }\n${ORIGIN}`, 'x.yaml', dir);
    const u = new Upstream(c.origins.get('a')!, new MemorySessionStore(), () => {});
    const metrics = new Metrics(() => [u]);
    const warn = process.emitWarning;
    process.emitWarning = (() => {}) as typeof process.emitWarning; // the one outage warning is expected
    const value = async (name: string): Promise<number | null> => {
      const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${name}{`));
      if (!line) return null;
      expect(line).toContain(`url="${redis.url.replace(/\?.*$/, '')}"`);
      expect(line).toContain('stores="sessions+origins"');
      return Number(line.split(' ').pop());
    };
    const until = async (name: string, want: number): Promise<void> => {
      for (let i = 0; i < 100 && (await value(name)) !== want; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await value(name)).toBe(want);
    };
    try {
      await (u.agent.sessionStore as RedisSessionStore).link.ready(2000);
      expect(await value('originlink_store_up')).toBe(1);
      expect(await value('originlink_store_outages_total')).toBe(0);
      await redis.kill();
      await until('originlink_store_up', 0);
      expect(await value('originlink_store_outages_total')).toBe(1);
      await redis.restart();
      await until('originlink_store_up', 1);
      expect(await value('originlink_store_outages_total')).toBe(1);
    } finally {
      process.emitWarning = warn;
      metrics.close();
      u.destroy();
    }
  });
});
