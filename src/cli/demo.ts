/**
 * `originlink demo` (= `npm start`): local origins over h1, h2 and h3, the
 * connector in front of them with config/demo.yaml, the URLs to try, and a
 * live per-origin table. Ctrl-C stops everything cleanly.
 */
import dgram from 'node:dgram';
import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Agent } from '../agent/agent.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { ConfigError, loadConfigFile, type ServiceConfig } from '../service/config.js';
import { startDemoOrigins, type DemoOrigin } from '../service/demo-origins.js';
import { Service } from '../service/service.js';
import { formatTable, runSelftest } from '../service/demo-report.js';

export const DEMO_USAGE = `usage: originlink demo [options]   (npm start)
  --duration S      stop after S seconds (default: run until Ctrl-C)
  --selftest        send requests through the connector to every origin; exit 0 only if all succeed
  --no-traffic      do not generate background requests (the table then counts only yours)
  --random-ports    use free ports instead of the defaults (8443, 8080, 8081, 9464, 9441-9443); a busy default
                    is replaced by a free port anyway, and the demo says which
  --keep-log        keep the request log file after the demo stops (default: removed)
  --config FILE     another demo config (default config/demo.yaml)`;

const PKG_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const PORTS = [
  ['DEMO_FRONT_TLS_PORT', 8443, 'tcp'],
  ['DEMO_FRONT_HTTP_PORT', 8080, 'tcp'],
  ['DEMO_FRONT_H2C_PORT', 8081, 'tcp'],
  ['DEMO_ADMIN_PORT', 9464, 'tcp'],
  ['DEMO_ORIGIN_H1_PORT', 9441, 'tcp'],
  ['DEMO_ORIGIN_H2_PORT', 9442, 'tcp'],
  ['DEMO_ORIGIN_H3_PORT', 9443, 'udp'],
] as const;

function tryPort(port: number, kind: 'tcp' | 'udp'): Promise<number | null> {
  return new Promise((resolve) => {
    if (kind === 'udp') {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(null));
      u.bind(port, '127.0.0.1', () => {
        const p = u.address().port;
        u.close(() => resolve(p));
      });
      return;
    }
    const s = net.createServer();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * The demo's ports: the environment's (DEMO_*_PORT), else the default when it is free, else (or with `random`) a
 * free one. `moved` says which defaults were busy and where they went.
 */
export async function pickPorts(
  base: NodeJS.ProcessEnv,
  random: boolean,
  probe: (port: number, kind: 'tcp' | 'udp') => Promise<number | null>,
): Promise<{ env: NodeJS.ProcessEnv; moved: string[] }> {
  const env: NodeJS.ProcessEnv = { ...base };
  const moved: string[] = [];
  // A port the kernel handed out for port 0 is free again once the probe closes it: it may hand it out again for the
  // next, and two listeners on one port are a config error (exit 78). So a port is taken once — the caller's too —
  // with a bounded retry.
  const taken = new Set(PORTS.filter(([name]) => env[name]).map(([name]) => Number(env[name])));
  for (const [name, def, kind] of PORTS) {
    if (env[name]) continue;
    const free = random ? null : await probe(def, kind);
    let p = free;
    for (let tries = 0; p === null || (free === null && taken.has(p)); tries++) {
      if (tries === 20) throw new Error(`no free ${kind} port for ${name} after ${tries} tries`);
      p = await probe(0, kind);
    }
    taken.add(p);
    if (free === null && !random) moved.push(`${def} → ${p}`);
    env[name] = String(p);
  }
  return { env, moved };
}

export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      selftest: { type: 'boolean', default: false },
      'no-traffic': { type: 'boolean', default: false },
      'random-ports': { type: 'boolean', default: false },
      'keep-log': { type: 'boolean', default: false },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${DEMO_USAGE}\n`);
    return 0;
  }
  const duration = values.duration === undefined ? null : Number(values.duration);
  if (duration !== null && !(duration > 0))
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `--duration must be a positive number of seconds\n${DEMO_USAGE}`,
    );
  const out = (s: string): void => {
    process.stdout.write(`${s}\n`);
  };
  const t0 = Date.now();

  const { env, moved } = await pickPorts(process.env, values['random-ports'], tryPort);
  // A busy default port is replaced, and said so: the URLs below are the ones to use (it moved silently before).
  if (moved.length > 0)
    out(
      `default ports busy, moved: ${moved.join(', ')} (DEMO_FRONT_TLS_PORT=… and the other DEMO_*_PORT variables choose them)`,
    );
  const certDir = join(PKG_ROOT, 'config', 'demo-certs');
  const cert = readFileSync(join(certDir, 'leaf.pem'));
  const key = readFileSync(join(certDir, 'leaf.key'));
  const configFile = values.config ?? join(PKG_ROOT, 'config', 'demo.yaml');
  let config: ServiceConfig;
  try {
    config = loadConfigFile(configFile, env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`originlink demo: config error: ${e.message}\n`);
      return 78;
    }
    throw e;
  }

  const ports = {
    h1: Number(env['DEMO_ORIGIN_H1_PORT']),
    h2: Number(env['DEMO_ORIGIN_H2_PORT']),
    h3: Number(env['DEMO_ORIGIN_H3_PORT']),
  };
  let origins: DemoOrigin[];
  try {
    origins = await startDemoOrigins({ cert, key, ports });
  } catch (e) {
    out(`HTTP/3 origin unavailable (${(e as Error).message}); running the demo with h1 and h2 only`);
    origins = await startDemoOrigins({ cert, key, ports, h3: false });
    dropH3(config);
  }
  const logFile = join(tmpdir(), `originlink-demo-${process.pid}.log`);
  const logDestination = pino.destination({ dest: logFile, sync: false, mkdir: true });
  // The destination opens its file asynchronously: the request log's line below names a file that is there.
  await new Promise((resolve, reject) => {
    logDestination.once('ready', resolve);
    logDestination.once('error', reject);
  });
  const svc = await Service.start(config, { logDestination });
  const addr = svc.addresses();
  const tlsPort = portOf(config, addr, 'https');
  const httpPort = portOf(config, addr, 'http');
  const h2cPort = portOf(config, addr, 'h2c');
  const ca = join(certDir, 'ca.pem');
  // Ctrl-C is ours from before the first line a user (or a test) acts on: it was taken only after the table's setup,
  // and a SIGINT sent on seeing the request log's line killed the process there (exit by signal, the log left
  // behind; a clean-clone CI met it).
  let onStop: (() => void) | null = null;
  let stopAsked = false;
  const askStop = (): void => {
    stopAsked = true;
    onStop?.();
  };
  process.once('SIGINT', askStop);
  process.once('SIGTERM', askStop);
  out(
    `originlink demo: origins ${origins.map((o) => `${o.name}=127.0.0.1:${o.port}${o.name === 'h3' ? '/udp' : ''}`).join(' ')}; connector up in ${Date.now() - t0} ms`,
  );
  out('try:');
  for (const prefix of config.routes.map((r) => r.path).filter((p) => p !== '/')) {
    if (tlsPort) out(`  curl --cacert ${ca} https://localhost:${tlsPort}${prefix}/`);
  }
  if (httpPort)
    out(`  curl http://127.0.0.1:${httpPort}/h1/bytes/100000 -o /dev/null -w '%{http_code} %{size_download}\\n'`);
  if (h2cPort) out(`  curl --http2-prior-knowledge http://127.0.0.1:${h2cPort}/h3/`);
  if (svc.adminPort) out(`  curl http://127.0.0.1:${svc.adminPort}/metrics   (also /healthz, /stats)`);
  out(
    `request log (JSON lines): ${logFile} (${values['keep-log'] ? 'kept' : 'removed'} when the demo stops${values['keep-log'] ? '' : '; --keep-log keeps it'})`,
  );

  const stopAll = async (): Promise<void> => {
    await svc.shutdown(1000);
    await Promise.all(origins.map((o) => o.close().catch(() => {})));
    // Nothing left behind in the temporary directory unless asked (it grew there with every run before).
    if (!values['keep-log']) rmSync(logFile, { force: true });
  };

  if (values.selftest) {
    // A selftest runs to its end; Ctrl-C stops it as it always did.
    process.off('SIGINT', askStop);
    process.off('SIGTERM', askStop);
    const results = await runSelftest(config, { tls: tlsPort, http: httpPort, h2c: h2cPort }, readFileSync(ca));
    for (const r of results) out(`selftest ${r.ok ? 'ok  ' : 'FAIL'} ${r.what}${r.detail ? `: ${r.detail}` : ''}`);
    for (const line of formatTable(svc.summary())) out(line);
    await stopAll();
    const ok = results.length > 0 && results.every((r) => r.ok);
    out(`selftest: ${results.filter((r) => r.ok).length}/${results.length} passed`);
    return ok ? 0 : 1;
  }

  const traffic = values['no-traffic'] || !tlsPort ? null : startTraffic(config, tlsPort, readFileSync(ca));
  const tty = process.stdout.isTTY === true;
  let drawn = 0;
  const draw = (): void => {
    const lines = formatTable(svc.summary());
    if (tty) {
      if (drawn) process.stdout.write(`\x1b[${drawn}A`);
      for (const l of lines) process.stdout.write(`\x1b[2K${l}\n`);
      drawn = lines.length;
    } else {
      for (const l of lines) out(l);
    }
  };
  const ticker = setInterval(draw, tty ? 1000 : 5000);
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    let deadline: NodeJS.Timeout | null = null;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(ticker);
      if (deadline) clearTimeout(deadline); // Ctrl-C before --duration ran out: nothing may hold the process
      traffic?.stop();
      if (!tty) draw();
      out('stopping...');
      stopAll().then(
        () => {
          out('stopped');
          resolveExit(0);
        },
        () => resolveExit(1),
      );
    };
    onStop = stop;
    if (stopAsked) stop();
    else if (duration !== null) deadline = setTimeout(stop, duration * 1000);
  });
}

function portOf(config: ServiceConfig, addr: Record<string, number>, kind: string): number | null {
  const l = config.listeners.find((x) => x.kind === kind);
  return l ? (addr[l.name] ?? null) : null;
}

function dropH3(config: ServiceConfig): void {
  for (const [name, o] of config.origins) {
    if (o.protocol !== 'h3') continue;
    config.origins.delete(name);
    config.routes = config.routes.filter((r) => r.origin !== name);
  }
}

/** A gentle background load through the TLS front (h2), so the table moves. */
function startTraffic(config: ServiceConfig, port: number, ca: Buffer): { stop(): void } {
  const agent = new Agent({ protocol: 'h2', tls: { ca } });
  const paths = config.routes.map((r) => r.path).filter((p) => p !== '/');
  let i = 0;
  const timer = setInterval(() => {
    const p = paths[i++ % paths.length];
    agent.request({ url: `https://localhost:${port}${p}/` }).then(
      (r) => r.dump(),
      () => {},
    );
  }, 150);
  return {
    stop: () => {
      clearInterval(timer);
      agent.destroy();
    },
  };
}
