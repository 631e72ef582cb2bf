// Types for bench/lab/index.mjs (plain ESM, imported by bench scripts and tests).
import type { ChildProcess, StdioOptions } from 'node:child_process';

export type Side = 'client' | 'server';

export interface LabOptions {
  /** Namespace names start with this (default `ol`); lets a bench keep its namespaces apart from others. */
  namePrefix?: string;
  /** One-way delay client -> server, ms (also server -> client unless reverseDelayMs). */
  delayMs?: number;
  reverseDelayMs?: number;
  /** Jitter amplitude, ms: uniform in [-j, +j] or normal with sigma j. */
  jitterMs?: number;
  jitterDist?: 'uniform' | 'normal';
  /** Let jitter reorder packets (default false: each direction stays FIFO). */
  reorder?: boolean;
  /** Seeded random loss per direction, percent (reverseLossPct for server -> client). */
  lossPct?: number;
  reverseLossPct?: number;
  seed?: number;
  /** Serialising rate limit per direction, Mbit/s; 0 = unlimited. */
  rateMbit?: number;
  reverseRateMbit?: number;
  /** Tail-drop queue of the rate limiter, packets. */
  queuePackets?: number;
  /** net.ipv4.tcp_fastopen inside both namespaces. */
  tcpFastOpen?: number;
  /** Per-namespace default TCP congestion control; unset keeps the kernel default. */
  congestionControl?: 'cubic' | 'bbr' | 'reno';
  /** nft netdev ingress drop on the server device (client -> server, TCP/UDP), percent, 0.1 % steps. */
  nftLossPct?: number;
  txqueuelen?: number;
  mtu?: number;
  /** Also assign 2001:db8::1/64 and ::2/64 (IPv6 stays disabled otherwise). */
  ipv6?: boolean;
}

export type LabConfig = Required<Omit<LabOptions, 'congestionControl'>> & {
  congestionControl: LabOptions['congestionControl'];
};

export interface Endpoint {
  ns: string;
  addr: string;
  addr6: string | undefined;
  dev: string;
}

export interface DirectionCounters {
  received: number;
  forwarded: number;
  bytes: number;
  lost: number;
  queueDropped: number;
  overflowDropped: number;
  writeErrors: number;
  inFlight: number;
  maxQueue: number;
  /** Mean of (write time - due time), µs; negative means early on average. */
  lateUsMean: number;
  lateUsMax: number;
}

export interface LinkCounters {
  clientToServer: DirectionCounters;
  serverToClient: DirectionCounters;
  uptimeMs: number;
  /** Only with nftLossPct > 0. */
  nftDropped?: number;
}

export interface Summary {
  n: number;
  min: number;
  p10: number;
  median: number;
  p90: number;
  max: number;
  mean: number;
}

export interface SelfCheck {
  ok: boolean;
  rttMs: number;
  expectedRttMs: number;
  /** |measured - expected| RTT as a percentage of the expected RTT. */
  withinPct: number;
  tolerancePct: number;
  /** Allowed |measured - expected|: tolerancePct of the RTT, at least 0.5 ms, widened under jitter. */
  rttToleranceMs: number;
  /** 'icmp' when ping (iputils-ping) ran alongside; else the UDP echo median is used. */
  rttSource: 'icmp' | 'udp';
  /** UDP echo RTT between two node processes (adds ~0.3-0.5 ms of host overhead). */
  rtt: Summary | null;
  udpRttMs: number;
  icmpRtt: { n: number; sent: number; median: number; min: number; max: number } | null;
  lossPct: number;
  expectedLossPct: number;
  lossBand: [number, number];
  sent: number;
  received: number;
  lost: number;
  link: Record<'clientToServer' | 'serverToClient', Record<string, number>>;
  nftDropped: number | undefined;
  checks: { rtt: boolean; loss: boolean; queue: boolean };
  durationMs: number;
}

export interface Facts {
  kernel: string;
  node: string;
  congestionControl: string;
  tcpFastOpen: number;
  perNamespace: Record<Side, { congestionControl: string; tcpFastOpen: number }>;
  availableCongestionControl: string[];
  emulatorPid: number;
  link: LabConfig;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve instead of rejecting on a non-zero exit. */
  allowFail?: boolean;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface SpawnOptions {
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface Started {
  child: ChildProcess;
  /** The first JSON line with event 'ready'. */
  ready: Record<string, unknown>;
  /** Every JSON line printed so far. */
  lines(): Record<string, unknown>[];
  /** Signals the process (SIGTERM, SIGKILL after graceMs) and returns its last JSON line. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Record<string, any> | undefined>;
  exited: Promise<unknown>;
}

/** A traffic probe of bench/lab/probe.mjs; see that file for the modes. */
export interface ProbeSpec {
  mode: 'udp-echo' | 'udp-sink' | 'udp-ping' | 'udp-blast' | 'tcp-server' | 'tcp-connect' | 'tcp-send';
  host?: string;
  port?: number;
  [key: string]: unknown;
}

export interface Lab {
  id: string;
  config: LabConfig;
  emulatorPid: number;
  client: Endpoint;
  server: Endpoint;
  /** Runs argv inside a namespace ('client' | 'server' | a namespace name) to completion. */
  exec(ns: Side | string, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts argv inside a namespace; the child is tracked and killed by pid on close(). */
  spawn(ns: Side | string, argv: string[], opts?: SpawnOptions): ChildProcess;
  /** Runs a node script in a namespace; json is its last stdout line that parses as a JSON object. */
  node(ns: Side | string, script: string, args?: string[], opts?: ExecOptions): Promise<ExecResult & { json: any }>;
  /** Starts a node script and waits for its {"event":"ready"} line. */
  startNode(ns: Side | string, script: string, args?: string[], opts?: SpawnOptions & { readyTimeoutMs?: number }): Promise<Started>;
  probe(ns: Side | string, spec: ProbeSpec, opts?: ExecOptions): Promise<any>;
  startProbe(ns: Side | string, spec: ProbeSpec, opts?: SpawnOptions & { readyTimeoutMs?: number }): Promise<Started>;
  /** Resolves once something listens on port in the namespace (polls `ss`); for peers that print no JSON. */
  waitForPort(ns: Side | string, port: number, opts?: { proto?: 'tcp' | 'udp'; timeoutMs?: number }): Promise<void>;
  /** Emulator counters (SIGUSR1), plus the nft drop counter when nft loss is on. */
  counters(): Promise<LinkCounters>;
  selfCheck(opts?: { tolerancePct?: number; sigmas?: number; count?: number; durationMs?: number; size?: number }): Promise<SelfCheck>;
  facts(): Promise<Facts>;
  /** `nstat -asz` inside a namespace (absolute counters). */
  nstat(ns: Side | string): Promise<Record<string, number>>;
  sysctl(ns: Side | string, key: string): Promise<string>;
  /** Kills tracked children and the emulator by pid, deletes the namespaces. Idempotent. */
  close(): Promise<{ counters: LinkCounters | null; emulatorPid: number; emulatorAlive: boolean }>;
}

export class LabError extends Error {
  code: string;
  detail?: unknown;
}

export const PROBE: string;
export function ensureLinkem(opts?: { force?: boolean }): string;
export function createLab(opts?: LabOptions): Promise<Lab>;
