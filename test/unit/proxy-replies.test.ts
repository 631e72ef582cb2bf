/** The tunnel set-up readers (src/net/proxy-replies.ts): what a proxy answers, byte by byte. */
import { describe, expect, it } from 'vitest';
import { ProxyReplyError, readConnectReply, readSocks5Reply } from '../../src/net/proxy-replies.js';
import { redact } from '../../src/util/redact.js';
import { parseRedisUrl } from '../../src/store/redis-link.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('readConnectReply (RFC 9110 §9.3.6)', () => {
  it('a 200 head: its status and length; the bytes after it are the tunnel’s', () => {
    const head = 'HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n';
    expect(readConnectReply(b(`${head}\x16\x03\x01`), 1024)).toEqual({ value: 200, length: head.length });
  });
  it('needs more until the head ends, at every split', () => {
    const head = 'HTTP/1.0 200 OK\r\n\r\n';
    for (let i = 0; i < head.length; i++) expect(readConnectReply(b(head.slice(0, i)), 1024)).toBeNull();
  });
  it('reads an interim 1xx response (RFC 9110 §15.2) as a head of its own, for the caller to drop; 101 is refused', () => {
    const interim = 'HTTP/1.1 100 Continue\r\n\r\n';
    const all = `${interim}HTTP/1.1 407 Auth\r\nProxy-Authenticate: Basic\r\n\r\n`;
    expect(readConnectReply(b(all), 1024)).toEqual({ value: 100, length: interim.length });
    expect(readConnectReply(b(all.slice(interim.length)), 1024)).toEqual({
      value: 407,
      length: all.length - interim.length,
    });
    expect(() => readConnectReply(b('HTTP/1.1 101 Switching\r\n\r\n'), 1024)).toThrow(ProxyReplyError);
  });
  it('refuses what is not a status line, and a head without end past the limit', () => {
    for (const bad of [
      'HTTP/2 200\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'HTTP/1.1 2000 OK\r\n\r\n',
      'SSH-2.0-x\r\n\r\n',
      'HTTP/1.1 099 x\r\n\r\n',
    ]) {
      expect(() => readConnectReply(b(bad), 1024), bad).toThrow(ProxyReplyError);
    }
    expect(() => readConnectReply(b(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(2000)}`), 1024)).toThrow(/within 1024 bytes/);
  });
  it('a status line with no reason phrase is fine', () => {
    expect(readConnectReply(b('HTTP/1.1 200\r\n\r\n'), 1024)?.value).toBe(200);
  });
});

describe('readSocks5Reply (RFC 1928 §6)', () => {
  it('IPv4, IPv6 and name bound addresses: the whole reply is consumed', () => {
    expect(readSocks5Reply(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90, 0xaa]))).toEqual({
      value: 0,
      length: 10,
    });
    expect(readSocks5Reply(Buffer.from([5, 0, 0, 4, ...new Array(16).fill(0), 0, 80]))).toEqual({
      value: 0,
      length: 22,
    });
    expect(readSocks5Reply(Buffer.from([5, 0, 0, 3, 1, 0x61, 0, 80]))).toEqual({ value: 0, length: 8 });
    expect(readSocks5Reply(Buffer.from([5, 0, 0, 3, 1, 0x61, 0]))).toBeNull();
  });
  it('a failure code is returned at once; a bad version or address type is refused', () => {
    expect(readSocks5Reply(Buffer.from([5, 5, 0, 1]))).toEqual({ value: 5, length: 4 });
    expect(() => readSocks5Reply(Buffer.from([4, 0, 0, 1]))).toThrow(ProxyReplyError);
    expect(() => readSocks5Reply(Buffer.from([5, 0, 0, 2]))).toThrow(/address type 2/);
  });
});

describe('redact: credentials never reach a message', () => {
  it.each([
    ['http://user:pass@proxy:8080', 'http://***@proxy:8080'],
    ['http://TOKEN-abcdef123456@proxy.example:99999', 'http://***@proxy.example:99999'], // a user alone can be a token
    ['redis://default:s3cr/et@redis.example:6379/0', 'redis://***@redis.example:6379/0'], // a / in the password
    ['http://a:b@c@host:1', 'http://***@host:1'], // an @ in it
    ['user:pass@host', '***@host'], // no scheme
    ['https://origin.example:443', 'https://origin.example:443'],
  ])('%s → %s', (url, want) => {
    expect(redact(url)).toBe(want);
  });

  it('config and Redis URL errors carry none', () => {
    expect(() => parseRedisUrl('redis://default:s3cr/et@redis.example:99999999/0')).toThrow(/\*\*\*@/);
    try {
      parseRedisUrl('redis://default:s3cr/et@redis.example:99999999/0');
    } catch (e) {
      expect((e as Error).message).not.toContain('s3cr');
    }
  });
});
