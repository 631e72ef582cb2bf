/**
 * A throw inside the forwarder is a bug of ours: the server answers 500 (the handler's promise rejects, or it
 * throws), and the bug is logged exactly once whichever path the request took — the head's checks, a buffered
 * body, or the origin's answer (service/forward.ts `bug`). The Upstream here is a stand-in whose answer throws
 * when it is read: there is no other way to make our own code throw on purpose.
 */
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { forward, type ForwardHooks, type Generation } from '../../src/service/forward.js';
import { parseConfig } from '../../src/service/config.js';
import { Router } from '../../src/service/router.js';
import type { Upstream } from '../../src/service/upstream.js';
import type { ServerRequest } from '../../src/server/request.js';

const config = parseConfig(
  'listeners: [{ name: front, kind: http, host: 127.0.0.1, port: 1 }]\norigins:\n  o: { url: "http://127.0.0.1:2" }\nroutes: [{ path: /, origin: o }]\n',
  't.yaml',
  '/',
);

function setup(request: () => Promise<unknown>): { gen: Generation; hooks: ForwardHooks; errors: unknown[] } {
  const errors: unknown[] = [];
  const upstream = {
    name: 'o',
    config: config.origins.get('o'),
    inflight: 0,
    done() {},
    request,
  } as unknown as Upstream;
  const gen: Generation = { config, router: new Router(config.routes), upstreams: new Map([['o', upstream]]) };
  const hooks = {
    log: { error: (o: { err: unknown }) => errors.push(o.err) },
    requestLog: { write() {} },
    metrics: { frontRequest() {}, front: { rejected: { inc() {} } }, inflight: 0 },
    draining: () => false,
    altSvc: () => null,
  } as unknown as ForwardHooks;
  return { gen, hooks, errors };
}

function request(body: Buffer | null): ServerRequest {
  return {
    method: body ? 'POST' : 'GET',
    path: '/x',
    authority: 'a.test',
    scheme: 'http',
    headers: [['host', 'a.test']],
    body: Readable.from(body ? [body] : []),
    streamId: 1,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
    version: '1.1',
    connection: {},
    bodyLength: body ? body.length : 0,
    protocol: null,
    signal: new AbortController().signal,
    onAbort() {},
  } as unknown as ServerRequest;
}

/** An answer whose reading throws: the forwarder's own step after the origin answered fails. */
const brokenAnswer = (): Promise<unknown> =>
  Promise.resolve(
    new Proxy(
      {},
      {
        get(_t, k) {
          if (k === 'then') return undefined; // not a thenable: the promise resolves with it
          throw new Error('bug after the answer');
        },
      },
    ),
  );

describe('a bug in the forwarder', () => {
  it('in the head checks: thrown to the server, logged once', () => {
    const { gen, hooks, errors } = setup(brokenAnswer);
    const broken = {
      ...gen,
      router: {
        match: () => {
          throw new Error('bug in routing');
        },
      },
    } as unknown as Generation;
    expect(() => forward(broken, { listener: 'front', secure: false }, hooks, request(null))).toThrow('bug in routing');
    expect(errors).toHaveLength(1);
  });

  it('after the origin answered: the promise rejects, logged once', async () => {
    const { gen, hooks, errors } = setup(brokenAnswer);
    await expect(forward(gen, { listener: 'front', secure: false }, hooks, request(null))).rejects.toThrow(
      'bug after the answer',
    );
    expect(errors).toHaveLength(1);
  });

  it('after the origin answered a buffered upload (a second path that also catches): logged once', async () => {
    const { gen, hooks, errors } = setup(brokenAnswer);
    await expect(
      forward(gen, { listener: 'front', secure: false }, hooks, request(Buffer.from('hello'))),
    ).rejects.toThrow('bug after the answer');
    expect(errors).toHaveLength(1);
  });

  it('thrown by the upstream call of a buffered upload (no step of its own caught it): logged once', async () => {
    const { gen, hooks, errors } = setup(() => {
      throw new Error('bug in the call');
    });
    await expect(
      forward(gen, { listener: 'front', secure: false }, hooks, request(Buffer.from('hello'))),
    ).rejects.toThrow('bug in the call');
    expect(errors).toHaveLength(1);
  });
});
