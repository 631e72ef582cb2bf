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
