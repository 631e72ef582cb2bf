/**
 * docs/fleet.md across instances: three `serve` processes (each started from its own config, as on three machines)
 * name each other in `fleet.members`, their member listeners TLS with mutual certificates from one fleet CA. In front
 * of a real nginx origin that counts its own connections: with `route: owner` the origin sees the connections of one
 * member whichever front a request comes to; `direct` one per instance. The member port refuses a client without a
 * member's certificate (curl with none, and with one of another CA); an owner SIGKILLed under concurrent GETs fails
 * none of them (its origins move to the next member in rendezvous order, or direct).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { makeCerts, makeLeaf } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { get } from '../helpers/serve-child.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { startRedis } from '../helpers/redis.js';

const certs = makeCerts();
const member = makeLeaf(certs, 'fleet-member', ['127.0.0.1', '127.0.0.2', '127.0.0.3'], 'serverAuth,clientAuth');
const stranger = makeCerts({ fresh: true });
const strangerLeaf = makeLeaf(stranger, 'fleet-stranger', ['127.0.0.1'], 'serverAuth,clientAuth');

interface Instance {
  proc: ChildProcess;
  front: number;
  admin: number;
  memberPort: number;
  out: string;
}

function curl(args: string[]): Promise<{ code: number; err: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '5', ...args], { timeout: 10_000 }, (e, _out, err) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, err }),
    );
  });
}

describe('fleet across instances: three serve processes, mutual TLS between members', () => {
  let dir: string;
  let nginx: Nginx;
  let instances: Instance[] = [];

  /** An instance's config: its front, admin, fleet members (a YAML value) and member listener on `ip`. */
  const configOf = (o: {
    front: number;
    admin: number;
    route: string;
    members: string;
    ip: string;
    memberPort: number;
    extra?: string;
    weight?: number;
  }): string => `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: ${o.front} }
admin: { host: 127.0.0.1, port: ${o.admin} }
shutdown: { graceMs: 1000 }
${o.extra ?? ''}
fleet:
  route: ${o.route}
  members: ${o.members}
  member: { host: ${o.ip}, port: ${o.memberPort},${o.weight ? ` weight: ${o.weight},` : ''} tls: { cert: ${member.certPath}, key: ${member.keyPath}, ca: ${certs.caPath} } }
origins:
  app: { url: "https://localhost:${nginx.port}", protocol: h1, tls: { ca: ${certs.caPath} } }
routes:
  - { path: /, origin: app }
`;

  /** `serve` from `file` as a child (its output kept); killed by PID at the end. */
  const spawnServe = (file: string, front: number, admin: number, memberPort: number): Instance => {
    const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const inst: Instance = { proc, front, admin, memberPort, out: '' };
    proc.stdout?.on('data', (d) => {
      inst.out += String(d);
    });
    proc.stderr?.on('data', (d) => {
      inst.out += String(d);
    });
    instances.push(inst);
    return inst;
  };

  const start = async (route: 'owner' | 'direct', weights: number[] = []): Promise<Instance[]> => {
    const ports = await Promise.all(Array.from({ length: 9 }, () => freePort()));
    const memberPorts = ports.slice(6, 9);
    const members = memberPorts.map((p) => `"127.0.0.1:${p}"`).join(', ');
    const out: Instance[] = [];
    for (let i = 0; i < 3; i++) {
      const [front, admin, memberPort] = [ports[i * 2] as number, ports[i * 2 + 1] as number, memberPorts[i] as number];
      const file = join(dir, `${route}-${i}.yaml`);
      const weight = weights[i];
      writeFileSync(
        file,
        configOf({
          front,
          admin,
          route,
          members: `[${members}]`,
          ip: '127.0.0.1',
          memberPort,
          ...(weight ? { weight } : {}),
        }),
      );
      const inst = spawnServe(file, front, admin, memberPort);
      out.push(inst);
    }
    for (const x of out) await up(x);
    await linked(out);
    return out;
  };

  /**
   * Every instance's links to the others up and a heartbeat answered on each (its round trip measured, the peer's
   * weight heard). A link starts up before its first heartbeat: waiting for `up` alone let a fast start (the code
   * caches) reach the checks of a round trip and of weights before the first answers came.
   */
  const linked = async (xs: Instance[]): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      const views = await Promise.all(xs.map((x) => get(x.admin, '/stats').then((r) => JSON.parse(r.body)['(fleet)'])));
      const heard = (l: { up: boolean; rttMs: number | null }): boolean => l.up && l.rttMs !== null;
      if (
        views.every((v) => Object.values(v.links as Record<string, { up: boolean; rttMs: number | null }>).every(heard))
      )
        return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`links not up: ${await diagnose(xs, [])}`);
  };

  const stopAll = async (xs: Instance[]): Promise<void> => {
    for (const x of xs) if (x.proc.exitCode === null && x.proc.signalCode === null) x.proc.kill('SIGKILL');
    instances = instances.filter((x) => !xs.includes(x));
  };

  /** `n` sequential GETs, the i-th to the front of instance i mod 3 (or only `to`). */
  const gets = async (xs: Instance[], n: number, tag: string): Promise<Array<number | string>> => {
    const res: Array<number | string> = [];
    for (let i = 0; i < n; i++) {
      const x = xs[i % xs.length] as Instance;
      res.push(
        await get(x.front, `/small.txt?${tag}${i}`).then(
          (r) => r.status,
          (e: NodeJS.ErrnoException) => e.code ?? 'error',
        ),
      );
    }
    return res;
  };

  /**
   * Its front, member and admin ports open (the admin listener last: after the member listener and the fleet's first
   * table); its output in the error when one does not.
   */
  const up = async (x: Instance): Promise<void> => {
    try {
      for (const p of [x.front, x.memberPort, x.admin]) await waitForPort(p, '127.0.0.1', 20_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}; its output: ${x.out.slice(-2000)}`);
    }
  };

  /** What each member's fleet did, and the origin's lines: said when a one-connection check fails. */
  const diagnose = async (xs: Instance[], lines: unknown[]): Promise<string> =>
    JSON.stringify({
      lines,
      fleets: await Promise.all(
        xs.map((x) =>
          get(x.admin, '/stats').then(
            (r) => JSON.parse(r.body)['(fleet)'],
            () => null,
          ),
        ),
      ),
      logs: xs.map((x) =>
        x.out
          .split('\n')
          .filter((l) => l.includes('"level":4') || l.includes('"level":5'))
          .slice(-5),
      ),
    });

  type FleetView = {
    self: string;
    origins: Record<string, { owner: string | null }>;
    links: Record<string, { up: boolean; rttMs: number | null; reason: string | null; beats: number; pings: number }>;
  };
  const fleetOf = async (x: Instance): Promise<FleetView> => JSON.parse((await get(x.admin, '/stats')).body)['(fleet)'];

  /** Ms until `ok` holds for the fleet view of every one of `xs` (polled every 20 ms, `tries` times), else it throws. */
  const msUntil = async (xs: Instance[], ok: (v: FleetView) => boolean, what: string, tries = 100): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < tries; i++) {
      const vs = await Promise.all(xs.map(fleetOf));
      if (vs.every(ok)) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${what}: ${JSON.stringify(await Promise.all(xs.map(fleetOf)))}`);
  };

  beforeAll(async () => {
    buildIfStale();
    dir = mkdtempSync(join(tmpdir(), 'ol-fleet-inst-'));
    nginx = await Nginx.start({ h2: false });
  }, 60_000);
  afterAll(async () => {
    await stopAll([...instances]);
    await nginx?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('owner: 30 GETs over three fronts reach the origin over one connection; every member names the same owner', async () => {
    const xs = await start('owner');
    try {
      const mark = nginx.log().length;
      expect(await gets(xs, 30, 'o')).toEqual(Array(30).fill(200));
      const lines = (await nginx.logSince(mark, 30, 3000)).filter((l) => l.uri.startsWith('/small.txt?o'));
      expect(lines).toHaveLength(30);
      expect(new Set(lines.map((l) => l.connection)).size, await diagnose(xs, lines)).toBe(1);
      const views = await Promise.all(xs.map(fleetOf));
      const owners = new Set(views.map((v) => v.origins['app']?.owner));
      expect(owners.size).toBe(1);
      expect(xs.map((x) => `127.0.0.1:${x.memberPort}`)).toContain([...owners][0]);
    } finally {
      await stopAll(xs);
    }
  }, 60_000);

  it('direct: one connection per instance (the comparison)', async () => {
    const xs = await start('direct');
    try {
      const mark = nginx.log().length;
      expect(await gets(xs, 30, 'd')).toEqual(Array(30).fill(200));
      const lines = (await nginx.logSince(mark, 30, 3000)).filter((l) => l.uri.startsWith('/small.txt?d'));
      expect(new Set(lines.map((l) => l.connection)).size).toBe(3);
    } finally {
      await stopAll(xs);
    }
  }, 60_000);

  it('the member port is no open proxy: no certificate, or one of another CA, is refused in the handshake', async () => {
    const xs = await start('owner');
    try {
      const url = `https://127.0.0.1:${xs[0]?.memberPort}/small.txt`;
      const none = await curl(['--http2', '--cacert', certs.caPath, '-H', 'originlink-fleet-origin: app', url]);
      expect(none.code, none.err).not.toBe(0);
      const other = await curl([
        '--http2',
        '--cacert',
        certs.caPath,
        '--cert',
        strangerLeaf.certPath,
        '--key',
        strangerLeaf.keyPath,
        '-H',
        'originlink-fleet-origin: app',
        url,
      ]);
      expect(other.code, other.err).not.toBe(0);
      // A member's certificate gets in (the origin's config digest is the sender's proof of the same config: 421).
      const ok = await curl([
        '--http2',
        '--cacert',
        certs.caPath,
        '--cert',
        member.certPath,
        '--key',
        member.keyPath,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-H',
        'originlink-fleet-origin: app',
        url,
      ]);
      expect(ok.code, ok.err).toBe(0);
    } finally {
      await stopAll(xs);
    }
  }, 60_000);

  it('the owner SIGKILLed under concurrent GETs: none fails, the others own its origin within 1 s', async () => {
    const xs = await start('owner');
    try {
      expect(await gets(xs, 6, 'w')).toEqual(Array(6).fill(200));
      const owner = (await fleetOf(xs[0] as Instance)).origins['app']?.owner;
      const victim = xs.find((x) => `127.0.0.1:${x.memberPort}` === owner) as Instance;
      const rest = xs.filter((x) => x !== victim);
      // Four loops of GETs through the two other fronts (forwarded to the owner), from 200 ms before the kill until
      // 600 ms after it.
      let endAt = Infinity;
      let killedAt = Infinity;
      const loop = async (k: number): Promise<Array<{ at: number; status: number | string }>> => {
        const out: Array<{ at: number; status: number | string }> = [];
        for (let i = 0; i < 2000 && performance.now() < endAt; i++) {
          const at = performance.now();
          const [r] = await gets([rest[(i + k) % 2] as Instance], 1, `k${k}-${i}-`);
          out.push({ at, status: r as number | string });
        }
        return out;
      };
      const loops = Promise.all(Array.from({ length: 4 }, (_, k) => loop(k)));
      await new Promise((r) => setTimeout(r, 200));
      victim.proc.kill('SIGKILL');
      killedAt = performance.now();
      endAt = killedAt + 600;
      const moved = await msUntil(rest, (v) => v.origins['app']?.owner !== owner, 'the owner not moved');
      expect(moved).toBeLessThan(1000);
      const all = (await loops).flat();
      expect(all.filter((r) => r.at < killedAt).length).toBeGreaterThan(10);
      expect(all.filter((r) => r.at > killedAt).length).toBeGreaterThan(10);
      expect(all.filter((r) => r.status !== 200)).toEqual([]);
    } finally {
      await stopAll(xs);
    }
  }, 60_000);

  it("heartbeats: a member that dies or hangs with nothing sent to it is out of the others' hash within ~1 s, back when it answers", async () => {
    const xs = await start('owner');
    try {
      expect(await gets(xs, 3, 'h')).toEqual(Array(3).fill(200));
      const owner = (await fleetOf(xs[0] as Instance)).origins['app']?.owner as string;
      const victim = xs.find((x) => `127.0.0.1:${x.memberPort}` === owner) as Instance;
      const rest = xs.filter((x) => x !== victim);
      // Up, with a heartbeat's round trip measured, and on /metrics per member and peer.
      for (const x of rest) {
        const v = await fleetOf(x);
        expect(v.links[owner]?.up).toBe(true);
        const m = (await get(x.admin, '/metrics')).body;
        const self = `127.0.0.1:${x.memberPort}`;
        expect(m).toContain(`originlink_fleet_link_up{member="${self}",peer="${owner}"} 1`);
        expect(m).toMatch(
          new RegExp(
            `originlink_fleet_link_rtt_seconds\\{member="${self}",peer="${owner.replace(/\./g, '\\.')}"\\} 0\\.\\d+`,
          ),
        );
        expect(m).toContain(
          `originlink_fleet_origin_route{member="${self}",origin="app",owner="${owner}",route="owner"} 1`,
        );
      }
      // An idle link's heartbeats are PINGs once a request heartbeat has proven it (the member's weight, its answer to
      // our proof; one every 5 s): over a second idle, about three PINGs and no request.
      const first = rest[0] as Instance;
      const before = (await fleetOf(first)).links[owner];
      await new Promise((r) => setTimeout(r, 1000));
      const after = (await fleetOf(first)).links[owner];
      expect((after?.pings ?? 0) - (before?.pings ?? 0)).toBeGreaterThanOrEqual(2);
      expect((after?.beats ?? 0) - (before?.beats ?? 0)).toBeLessThanOrEqual(1);
      /** Every other member has the victim down and another owner for app (no request sent meanwhile). */
      const untilOut = (): Promise<number> =>
        msUntil(rest, (v) => v.links[owner]?.up === false && v.origins['app']?.owner !== owner, 'still in');
      const untilBack = (): Promise<number> =>
        msUntil(rest, (v) => v.links[owner]?.up === true && v.origins['app']?.owner === owner, 'not back', 200);
      // Hung (SIGSTOP): its heartbeats (PINGs) go unanswered; out within the heartbeat's idle time + tick + timeout
      // (1.1 s).
      victim.proc.kill('SIGSTOP');
      const hung = await untilOut();
      expect(hung).toBeLessThan(1100); // 0.77–0.85 s measured alone
      expect(await gets(rest, 4, 'hs')).toEqual(Array(4).fill(200));
      victim.proc.kill('SIGCONT');
      expect(await untilBack()).toBeLessThan(1500);
      // Killed: its link is refused at the next heartbeat.
      victim.proc.kill('SIGKILL');
      const dead = await untilOut();
      expect(dead).toBeLessThan(1000); // 0.39–0.41 s measured alone
      expect(await gets(rest, 4, 'hk')).toEqual(Array(4).fill(200));
      const v = await fleetOf(rest[0] as Instance);
      expect(v.links[owner]?.reason).toBeTruthy();
    } finally {
      await stopAll(xs);
    }
  }, 60_000);

  it('weights: fleet.member.weight reaches the others in its heartbeat answers, and a reload changes it', async () => {
    const xs = await start('owner', [3]);
    try {
      const heavy = `127.0.0.1:${(xs[0] as Instance).memberPort}`;
      type View = { members: Array<{ name: string; weight: number }> };
      const weightAt = async (x: Instance): Promise<number | undefined> =>
        (JSON.parse((await get(x.admin, '/stats')).body)['(fleet)'] as View).members.find((m) => m.name === heavy)
          ?.weight;
      for (const x of xs) expect(await weightAt(x)).toBe(3);
      // A reload to weight 1: the others hear it within a heartbeat refresh (5 s), links busy or not.
      const file = join(dir, 'owner-0.yaml');
      writeFileSync(file, readFileSync(file, 'utf8').replace(' weight: 3,', ' weight: 1,'));
      (xs[0] as Instance).proc.kill('SIGHUP');
      const t0 = performance.now();
      const rest = xs.slice(1);
      for (let i = 0; i < 200; i++) {
        if ((await Promise.all(rest.map(weightAt))).every((w) => w === 1)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await Promise.all(rest.map(weightAt))).toEqual([1, 1]);
      expect(performance.now() - t0).toBeLessThan(7000);
    } finally {
      await stopAll(xs);
    }
  }, 60_000);

  it('members by DNS: every address of a name is a member (dnsmasq), re-resolved by its TTL as addresses go', async () => {
    const dns: Dnsmasq = await startDnsmasq({ 'fleet.test': ['127.0.0.1', '127.0.0.2', '127.0.0.3'] }, 1);
    const memberPort = await freePort();
    const xs: Instance[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const [front, admin] = [await freePort(), await freePort()];
        const ip = `127.0.0.${i + 1}`;
        const file = join(dir, `dns-${i}.yaml`);
        const extra = `dns: { servers: ["${dns.server}"], minTtlMs: 500 }`;
        writeFileSync(
          file,
          configOf({ front, admin, route: 'owner', members: '{ dns: fleet.test }', ip, memberPort, extra }),
        );
        const inst = spawnServe(file, front, admin, memberPort);
        xs.push(inst);
      }
      for (const x of xs) await up(x);
      const names = async (x: Instance): Promise<string[]> =>
        (JSON.parse((await get(x.admin, '/stats')).body)['(fleet)'].members as Array<{ name: string }>).map(
          (m) => m.name,
        );
      expect(await names(xs[0] as Instance)).toEqual(
        ['127.0.0.1', '127.0.0.2', '127.0.0.3'].map((ip) => `${ip}:${memberPort}`),
      );
      await linked(xs);
      const mark = nginx.log().length;
      expect(await gets(xs, 30, 'n')).toEqual(Array(30).fill(200));
      const lines = (await nginx.logSince(mark, 30, 3000)).filter((l) => l.uri.startsWith('/small.txt?n'));
      expect(new Set(lines.map((l) => l.connection)).size, await diagnose(xs, lines)).toBe(1);
      // The third address leaves DNS: the first two see it go within the TTL, and keep serving.
      await dns.setRecords({ 'fleet.test': ['127.0.0.1', '127.0.0.2'] });
      const t0 = Date.now();
      for (let i = 0; i < 100 && (await names(xs[0] as Instance)).length !== 2; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(await names(xs[0] as Instance)).toEqual([`127.0.0.1:${memberPort}`, `127.0.0.2:${memberPort}`]);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(await gets(xs.slice(0, 2), 10, 'm')).toEqual(Array(10).fill(200));
    } finally {
      await stopAll(xs);
      await dns.close();
    }
  }, 60_000);

  it('members in Redis: each registers with a heartbeat; one SIGKILLed leaves every table within its TTL', async () => {
    const redis = await startRedis();
    const memberPorts = [await freePort(), await freePort(), await freePort()];
    const xs: Instance[] = [];
    try {
      const prefix = `fm${Date.now()}:`;
      for (let i = 0; i < 3; i++) {
        const [front, admin] = [await freePort(), await freePort()];
        const file = join(dir, `redis-${i}.yaml`);
        const extra = `stores: { origins: "${redis.url}", prefix: "${prefix}" }`;
        const memberPort = memberPorts[i] as number;
        writeFileSync(
          file,
          configOf({ front, admin, route: 'owner', members: 'redis', ip: '127.0.0.1', memberPort, extra }),
        );
        xs.push(spawnServe(file, front, admin, memberPort));
      }
      for (const x of xs) await up(x);
      const names = async (x: Instance): Promise<string[]> =>
        (JSON.parse((await get(x.admin, '/stats')).body)['(fleet)'].members as Array<{ name: string }>).map(
          (m) => m.name,
        );
      const all = memberPorts.map((p) => `127.0.0.1:${p}`).sort();
      // Each sees the others at its next beat (1 s); every member must, before they agree on owners.
      const seeAll = async (): Promise<boolean> => (await Promise.all(xs.map(names))).every((n) => n.length === 3);
      for (let i = 0; i < 50 && !(await seeAll()); i++) await new Promise((r) => setTimeout(r, 100));
      for (const x of xs) expect(await names(x)).toEqual(all);
      await linked(xs);
      const mark = nginx.log().length;
      expect(await gets(xs, 30, 'r')).toEqual(Array(30).fill(200));
      const lines = (await nginx.logSince(mark, 30, 3000)).filter((l) => l.uri.startsWith('/small.txt?r'));
      expect(new Set(lines.map((l) => l.connection)).size, await diagnose(xs, lines)).toBe(1);
      (xs[2] as Instance).proc.kill('SIGKILL');
      const t0 = Date.now();
      for (let i = 0; i < 100 && (await names(xs[0] as Instance)).length !== 2; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect((await names(xs[0] as Instance)).length).toBe(2);
      expect(Date.now() - t0).toBeLessThan(5000); // the 3 s registration, and a beat
      expect(await gets(xs.slice(0, 2), 10, 's')).toEqual(Array(10).fill(200));
      // Entries in the list that are not host:port (written by anything with the Redis): each member leaves them out
      // and serves on. One of them crashed every member that read it ('x:99999': new URL threw), a fleet in a loop.
      for (const junk of ['x:99999', '', 'bad host:xx'])
        execFileSync('redis-cli', ['-p', String(redis.port), 'zadd', `${prefix}fleet:members`, '99999999999999', junk]);
      await new Promise((r) => setTimeout(r, 2500)); // two beats
      for (const x of xs.slice(0, 2)) expect(x.proc.exitCode).toBeNull();
      expect((await names(xs[0] as Instance)).length).toBe(2);
      expect(await gets(xs.slice(0, 2), 10, 'j')).toEqual(Array(10).fill(200));
    } finally {
      await stopAll(xs);
      await redis.stop();
    }
  }, 60_000);
});
