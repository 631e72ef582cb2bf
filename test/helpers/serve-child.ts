/**
 * Shared pieces of the tests that run `originlink serve` as a child process:
 * a config with one h1 origin `app` behind one catch-all route, and a GET on
 * a connection of its own (unless an agent is given).
 */
import http from 'node:http';

export interface OneOriginConfig {
  /** Flow-style YAML mappings, one listener each. */
  listeners: string[];
  /** YAML for `admin:` (`false`, or a flow mapping). */
  admin: string;
  graceMs: number;
  /** Port of the h1 origin on 127.0.0.1. */
  origin: number;
  /** Appended as is (more routes, more sections). */
  extra?: string;
}

export function oneOriginConfig(o: OneOriginConfig): string {
  return `
listeners:
${o.listeners.map((l) => `  - ${l}`).join('\n')}
admin: ${o.admin}
shutdown: { graceMs: ${o.graceMs} }
origins:
  app: { url: "http://127.0.0.1:${o.origin}", protocol: h1 }
routes:
  - { path: /, origin: app }
${o.extra ?? ''}`;
}

export function get(port: number, path: string, agent?: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: agent ?? false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      })
      .on('error', (e: NodeJS.ErrnoException) =>
        reject(Object.assign(new Error(`GET :${port}${path}: ${e.message}`), { code: e.code })),
      );
  });
}
