/**
 * The end of a TLS handshake is no stray response. RFC 8446 §4.6.1: a TLS 1.3 server sends its NewSessionTicket
 * messages after the handshake (nginx with OpenSSL: two, 287 bytes here); they arrive just after our Finished
 * leaves, at the end of the turn the handshake completed on, and wait in the kernel's receive queue until the next
 * poll reads them. A request made in that window on the fresh connection — the newest idle one, the top of the h1
 * pool's stack — met the stray check (unread bytes on an idle connection, stray-response.test.ts): the connection
 * was closed unused (OL_UNSOLICITED_RESPONSE) and its pool acknowledged every response at once from then on
 * (quickAck 'auto') — 5–7 of ~25 connections of an origin group against nginx (bench groups). A connection that
 * has carried no request cannot hold a stray: on TLS its unread bytes are the handshake's tail.
 *
 * Real nginx (TLS 1.3, tickets on). Each round warms one connection, waits on the next turn until nginx's tickets
 * are in our kernel (FIONREAD on its socket; dialled without TFO so the socket is published, client-sockets.ts),
 * and sends a request before the event loop reads them.
 */
import { spawn } from 'node:child_process';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { ErrorCode } from '../../src/errors.js';
import { socketFd, unreadBytes } from '../../src/net/tfo.js';
import { makeCerts } from '../helpers/certs.js';
import { dialledSockets } from '../helpers/client-sockets.js';
import { Nginx } from '../helpers/nginx.js';

const certs = makeCerts();
let nginx: Nginx;
beforeAll(async () => {
  nginx = await Nginx.start({ h2: false });
});
afterAll(async () => {
  await nginx?.close();
});

const block = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

describe('TLS session tickets on a fresh h1 connection', () => {
  it('are the handshake they end: a fresh connection whose tickets are not read yet is neither closed nor counted as a stray', {
    timeout: 20_000,
  }, async () => {
    const agent = new Agent({
      protocol: 'h1',
      tfo: false,
      tls: { ca: certs.ca, servername: 'localhost' },
      pool: { maxConnections: 8 },
    });
    const url = `https://127.0.0.1:${nginx.port}/index.html`;
    const from = nginx.log().length;
    const rounds = 4;
    let caught = 0;
    try {
      for (let i = 0; i < rounds; i++) {
        // A dial the last round's request started ends first (its fresh connection sat its turn out, and on a loaded
        // machine the turn can last long enough for the pool to dial for the queued request): warm() counts dials
        // under way, so one left pending here was the "new" connection and nothing new was dialled.
        await agent.warm(url, 0);
        const before = new Set(dialledSockets());
        await agent.warm(url, agent.pool(url).connections().length + 1);
        const fresh = dialledSockets().find((s) => !before.has(s) && s.remotePort === nginx.port) as net.Socket;
        expect(fresh).toBeDefined();
        await new Promise((r) => setImmediate(r));
        const fd = socketFd(fresh);
        for (let k = 0; k < 200 && (unreadBytes(fd) ?? 0) === 0; k++) block(1);
        if ((unreadBytes(fd) ?? 0) > 0) caught++;
        expect(await (await agent.request({ url })).text()).toBe('hello from nginx\n');
      }
      // The window was there (the tickets waited unread as the request was made) in most rounds.
      expect(caught).toBeGreaterThanOrEqual(rounds - 1);
      const lines = await nginx.logSince(from, rounds);
      expect(lines).toHaveLength(rounds);
      // A connection closed as unsolicited goes on its socket's close, a turn or more later.
      await new Promise((r) => setTimeout(r, 200));
      const s = agent.stats()[0];
      expect(s?.errors[ErrorCode.UNSOLICITED_RESPONSE] ?? 0).toBe(0);
      expect(s?.connectionsClosed).toBe(0);
      // The warmed connections sat their turn out and serve: later requests go out on them, no new dial.
      const opened = s?.connectionsOpened ?? 0;
      await Promise.all(Array.from({ length: opened }, async () => (await agent.request({ url })).text()));
      expect(agent.stats()[0]?.connectionsOpened).toBe(opened);
    } finally {
      await agent.close();
    }
  });

  it('the origin closing a fresh connection before its first request (close_notify unread): the request goes elsewhere and is answered', {
    timeout: 20_000,
  }, async () => {
    // A TLS origin (a process of its own: this one blocks below) that ends its first connection as soon as the
    // handshake is over, and serves every later one.
    const server = spawn(
      process.execPath,
      [
        '-e',
        `
      const tls = require('node:tls'); const fs = require('node:fs');
      let accepted = 0;
      const s = tls.createServer({ cert: fs.readFileSync(${JSON.stringify(certs.certPath)}), key: fs.readFileSync(${JSON.stringify(certs.keyPath)}), ALPNProtocols: ['http/1.1'] }, (sock) => {
        sock.on('error', () => {});
        if (accepted++ === 0) { sock.end(); return; }
        sock.on('data', () => { sock.write('HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok'); });
      });
      s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));
    `,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const port = await new Promise<number>((resolve) =>
      server.stdout?.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
    );
    const agent = new Agent({
      protocol: 'h1',
      tfo: false,
      tls: { ca: certs.ca, servername: 'localhost' },
      maxRetries: 0,
    });
    const url = `https://127.0.0.1:${port}/x`;
    try {
      const before = new Set(dialledSockets());
      await agent.warm(url, 1);
      const fresh = dialledSockets().find((x) => !before.has(x) && x.remotePort === port) as net.Socket;
      await new Promise((r) => setImmediate(r));
      const fd = socketFd(fresh);
      for (let k = 0; k < 200 && (unreadBytes(fd) ?? 0) === 0; k++) block(1);
      expect(unreadBytes(fd)).toBeGreaterThan(0);
      // No retries allowed: the request must not go out on the connection its origin already ended.
      expect(await (await agent.request({ url })).text()).toBe('ok');
      expect(agent.stats()[0]?.errors[ErrorCode.UNSOLICITED_RESPONSE] ?? 0).toBe(0);
    } finally {
      await agent.close();
      if (server.pid && server.exitCode === null) process.kill(server.pid, 'SIGKILL');
    }
  });
});
