/**
 * The Agent's side of an origin group over connections of the test (no sockets): what a request takes from its
 * group — a turn of the balancer and a share of the retry budget — it takes when it is sent, so a request collapsed
 * onto another's takes neither.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { ErrorCode, NOT_SENT, OriginlinkError } from '../../src/errors.js';
import type { ConnRequest, ConnResponse } from '../../src/http/types.js';
import { FakeConnection } from '../helpers/fake-connection.js';

/** An h2-like connection answering at once, but `/fail…`: a stream above GOAWAY's last id (RFC 9113 §6.8: not processed, retry-safe; a refused stream would be requeued without a retry). */
class Conn extends FakeConnection {
  request(req: ConnRequest): Promise<ConnResponse> {
    if (req.path.startsWith('/fail'))
      return Promise.reject(
        new OriginlinkError(ErrorCode.GOAWAY, 'remote', 'above GOAWAY', { retrySafe: true, facts: NOT_SENT }),
      );
    return super.request(req);
  }
}

const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close();
});

describe('an origin group in the Agent', () => {
  it('collapsed requests spend no retry budget: 20 collapsed and 4 refused, budget 0.5 per first attempt, allow 2 retries of 4', async () => {
    const agent = new Agent({
      protocol: 'h2',
      maxRetries: 1,
      connect: async () => new Conn({ protocol: 'h2', auto: true }),
      origins: {
        'https://api.test': {
          endpoints: [{ url: 'https://a.test' }, { url: 'https://b.test' }],
          collapse: true,
          retryBudget: { ratio: 0.5, minPerSecond: 0 },
        },
      },
    });
    agents.push(agent);
    const shared = await Promise.all(Array.from({ length: 20 }, () => agent.request({ url: 'https://api.test/c' })));
    expect(shared.filter((r) => r.collapsed)).toHaveLength(19);
    await Promise.all(shared.map((r) => r.bytes()));
    // First attempts in the budget's second: 1 (the collapsed flight) + 4. Retries allowed: ⌊0.5 × 5⌋ = 2.
    const failed = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) => agent.request({ url: `https://api.test/fail?${i}` })),
    );
    expect(failed.every((r) => r.status === 'rejected')).toBe(true);
    const st = agent.groupStats()[0]!;
    expect(st.endpoints.reduce((a, e) => a + e.retriesRefused, 0)).toBe(2);
    expect(st.endpoints.reduce((a, e) => a + e.requests, 0)).toBe(1 + 4 + 2);
  });
});

describe('a named group as a target of its own (AgentOptions.groups)', () => {
  it('{ group, path } spreads over the endpoints; a URL-keyed group and a plain origin beside it keep working', async () => {
    const dialled: string[] = [];
    const agent = new Agent({
      protocol: 'h2',
      connect: async (url) => {
        dialled.push(url.origin);
        return new Conn({ protocol: 'h2', auto: true });
      },
      groups: { api: { endpoints: [{ url: 'https://a.test' }, { url: 'https://b.test' }], balance: 'round-robin' } },
      origins: { 'https://web.test': { endpoints: [{ url: 'https://c.test' }] } },
    });
    agents.push(agent);
    const answered = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const r = await agent.request({ group: 'api', path: '/x' });
        await r.bytes();
        return r.origin;
      }),
    );
    expect(new Set(answered)).toEqual(new Set(['https://a.test', 'https://b.test']));
    const web = await agent.request({ url: 'https://web.test/y' });
    await web.bytes();
    expect(web.origin).toBe('https://c.test');
    const plain = await agent.request({ url: 'https://plain.test/z' });
    await plain.bytes();
    expect(plain.origin).toBe('https://plain.test');
    expect(
      agent
        .groupStats()
        .map((g) => g.name)
        .sort(),
    ).toEqual(['api', 'https://web.test']);
    expect(agent.tunnelEndpoint('api', [])).toMatch(/^https:\/\/[ab]\.test$/);
  });

  it('a bad name, a group without endpoints and an unknown group are clear errors', async () => {
    expect(() => new Agent({ groups: { 'no spaces': { endpoints: [{ url: 'https://a.test' }] } } })).toThrow(
      /groups\["no spaces"\]: a group name is letters/,
    );
    expect(() => new Agent({ groups: { api: { balance: 'p2c' } } })).toThrow(
      /groups\["api"\]\.endpoints: a named group needs/,
    );
    const agent = new Agent({ groups: { api: { endpoints: [{ url: 'https://a.test' }] } } });
    agents.push(agent);
    await expect(agent.request({ group: 'web', path: '/' })).rejects.toMatchObject({
      code: 'OL_INVALID_ARGUMENT',
      details: { field: 'group' },
    });
    await expect(agent.request({ group: 'api', path: 'x' })).rejects.toMatchObject({ code: 'OL_INVALID_ARGUMENT' });
  });
});
