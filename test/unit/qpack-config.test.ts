import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';

/** A service config whose one origin has `quic.qpack` set to `qpack` (a YAML flow mapping). */
const config = (qpack: string): string => `listeners:
  - { name: front, kind: http, host: 127.0.0.1, port: 1 }
admin: false
origins:
  app: { url: "https://127.0.0.1:1", quic: { qpack: ${qpack} } }
routes:
  - { path: /, origin: app }
`;

describe('quic.qpack.minReferenceSaving in the service config', () => {
  it('is read as an integer 0–65536 beside the table limits', () => {
    const c = parseConfig(config('{ maxTableCapacity: 1024, minReferenceSaving: 0 }'), 'c.yaml', '/');
    expect(c.origins.get('app')?.qpack).toEqual({ maxTableCapacity: 1024, minReferenceSaving: 0 });
  });

  it('out of range or not an integer: a config error naming the field', () => {
    for (const bad of ['{ minReferenceSaving: -1 }', '{ minReferenceSaving: 70000 }', '{ minReferenceSaving: 2.5 }'])
      expect(() => parseConfig(config(bad), 'c.yaml', '/'), bad).toThrow(/minReferenceSaving/);
  });
});
