/**
 * What an origin group is given (Agent `origins[KEY].endpoints` and the service's `origins.NAME`), its
 * defaults, and the one check of it: a bad value is OL_INVALID_CONFIG naming the field (docs/config.md).
 */
import { configError, unknownOption } from '../pool/options.js';

export const BALANCES = ['p2c', 'ewma', 'round-robin', 'failover'] as const;
export type Balance = (typeof BALANCES)[number];

export interface EndpointOptions {
  /** `scheme://host[:port]`, no path. */
  url: string;
  /** Share of requests relative to the others, 1 … 1000. Default 1. */
  weight?: number;
}

export interface HealthOptions {
  /** Request target of the check (GET). Default `/`. */
  path?: string;
  /** From one check's start to the next, ms (a check still running delays the next). Default 2000. */
  intervalMs?: number;
  /** A check without a head within this fails, ms. Default 1000. */
  timeoutMs?: number;
  /** Passes in a row that make an unhealthy endpoint healthy. Default 2. */
  rise?: number;
  /** Failures in a row that make a healthy endpoint unhealthy. Default 3. */
  fall?: number;
  /** Statuses that pass: a number, `"lo-hi"`, or a list of them. Default `"200-399"`. */
  expectStatus?: number | string | Array<number | string>;
}

export interface OutlierOptions {
  /** Failures in a row (connect errors, resets, timeouts, 502/503/504) that eject an endpoint. Default 5. */
  consecutiveFailures?: number;
  /** The first ejection's length, ms; the n-th lasts n times it. Default 30000. */
  baseEjectionMs?: number;
  /** Cap on an ejection's length, ms. Default 300000. */
  maxEjectionMs?: number;
  /** Most of the group ejected at once, percent (at least one endpoint may always be). 0: none. Default 10. */
  maxEjectionPercent?: number;
}

export interface RetryBudgetOptions {
  /** Retries and hedges per first attempt over the last second. Default 0.2. */
  ratio?: number;
  /** Retries and hedges allowed per second whatever the traffic. Default 10. */
  minPerSecond?: number;
}

export interface HedgeOptions {
  /** Send the second attempt this long after the first, ms. */
  afterMs?: number;
  /** Or: after this percentile of the group's recent response-head latency (50 … 99.9). */
  percentile?: number;
  /** With `percentile`: never sooner than this, ms. Default 1. */
  minMs?: number;
}

export interface CollapseOptions {
  /** Request fields whose values are part of the key, besides method, authority and target. Default none. */
  key?: string[];
  /** Requests that may wait on one in flight; more send their own. Default 256. */
  maxWaiters?: number;
  /**
   * More request fields that say who is asking (an operator's own credential headers): a request carrying one is
   * never collapsed, like one carrying a field of PRIVATE_FIELDS. Default none.
   */
  private?: string[];
}

export interface GroupOptions {
  endpoints: EndpointOptions[];
  /** Default `p2c`. */
  balance?: Balance;
  health?: HealthOptions;
  outlier?: OutlierOptions;
  retryBudget?: RetryBudgetOptions;
  hedge?: HedgeOptions;
  collapse?: CollapseOptions | boolean;
  /** What logs and metrics call the group. Default its key. */
  name?: string;
}

export const GROUP_KEYS = [
  'endpoints',
  'balance',
  'health',
  'outlier',
  'retryBudget',
  'hedge',
  'collapse',
  'name',
] as const satisfies ReadonlyArray<keyof GroupOptions>;

export interface ResolvedHealth {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  expect: ReadonlyArray<readonly [number, number]>;
}
export interface ResolvedOutlier {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
}
export interface ResolvedBudget {
  ratio: number;
  minPerSecond: number;
}
export type ResolvedHedge =
  | { afterMs: number; percentile: null; minMs: number }
  | { afterMs: null; percentile: number; minMs: number };
export interface ResolvedCollapse {
  key: readonly string[];
  maxWaiters: number;
  /** PRIVATE_FIELDS and the group's own `private` names. */
  private: ReadonlySet<string>;
}

export interface ResolvedGroup {
  name: string;
  endpoints: ReadonlyArray<{ url: string; weight: number }>;
  balance: Balance;
  health: ResolvedHealth | null;
  outlier: ResolvedOutlier | null;
  retryBudget: ResolvedBudget | null;
  hedge: ResolvedHedge | null;
  collapse: ResolvedCollapse | null;
}

export const DEFAULT_HEALTH: Readonly<Omit<ResolvedHealth, 'expect'>> = Object.freeze({
  path: '/',
  intervalMs: 2000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
});
export const DEFAULT_OUTLIER: Readonly<ResolvedOutlier> = Object.freeze({
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 10,
});
export const DEFAULT_BUDGET: Readonly<ResolvedBudget> = Object.freeze({ ratio: 0.2, minPerSecond: 10 });
export const DEFAULT_MAX_WAITERS = 256;
/** setTimeout fires at once past 2^31 − 1 ms. */
const MAX_MS = 2 ** 31 - 1;

/**
 * Fields whose values say who is asking: a request carrying one is never collapsed, so they cannot be part of the
 * key. Credentials by the standards (RFC 9110 §11.6.2 Authorization, §11.7.2 Proxy-Authorization; RFC 6265 Cookie)
 * and by common practice (API keys and tokens in headers of their own): one client's answer is never another's.
 */
export const PRIVATE_FIELDS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'x-api-key',
  'api-key',
  'apikey',
  'x-auth-token',
  'x-access-token',
  'x-amz-security-token',
  'x-goog-api-key',
  'x-csrf-token',
  'x-xsrf-token',
  'x-session-token',
  'x-user-token',
  'x-client-secret',
]);

/** The checked, completed definition of a group (`where`: the field path of its options, for errors). */
export function resolveGroupOptions(o: GroupOptions, where: string): ResolvedGroup {
  const at = (f: string): string => `${where}.${f}`;
  keysOf(o, GROUP_KEYS, where);
  if (!Array.isArray(o.endpoints) || o.endpoints.length === 0)
    throw configError(at('endpoints'), 'needs at least one endpoint');
  const seen = new Set<string>();
  const endpoints = o.endpoints.map((e, i) => {
    const f = `${at('endpoints')}[${i}]`;
    if (e === null || typeof e !== 'object') throw configError(f, 'must be a mapping { url, weight }');
    for (const k of Object.keys(e))
      if (k !== 'url' && k !== 'weight') throw unknownOption(`${f}.${k}`, ['url', 'weight']);
    const url = originOf(e.url, `${f}.url`);
    if (seen.has(url)) throw configError(`${f}.url`, `${url} is already an endpoint of this group`);
    seen.add(url);
    const weight = e.weight ?? 1;
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000)
      throw configError(`${f}.weight`, `must be an integer 1 … 1000, got ${JSON.stringify(e.weight)}`);
    return { url, weight };
  });
  const balance = o.balance ?? 'p2c';
  if (!BALANCES.includes(balance))
    throw configError(at('balance'), `must be one of ${BALANCES.join(', ')}, got ${JSON.stringify(o.balance)}`);
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name === ''))
    throw configError(at('name'), 'must be a non-empty string');
  return {
    name: o.name ?? where,
    endpoints,
    balance,
    health: o.health === undefined ? null : resolveHealth(o.health, at('health')),
    outlier: o.outlier === undefined ? null : resolveOutlier(o.outlier, at('outlier')),
    retryBudget: o.retryBudget === undefined ? null : resolveBudget(o.retryBudget, at('retryBudget')),
    hedge: o.hedge === undefined ? null : resolveHedge(o.hedge, at('hedge')),
    collapse:
      o.collapse === undefined || o.collapse === false
        ? null
        : resolveCollapse(o.collapse === true ? {} : o.collapse, at('collapse')),
  };
}

/** `scheme://host[:port]` of an endpoint URL, as `URL.origin` writes it. */
function originOf(s: unknown, field: string): string {
  if (typeof s !== 'string' || !URL.canParse(s))
    throw configError(field, `not a URL: ${JSON.stringify(typeof s === 'string' ? s.slice(0, 80) : s)}`);
  const u = new URL(s);
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw configError(field, `scheme must be http or https, got ${u.protocol}`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username || u.password)
    throw configError(field, 'must be scheme://host[:port] only (no path, query or credentials)');
  return u.origin;
}

function keysOf(o: object, allowed: readonly string[], where: string): void {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw configError(where, 'must be a mapping');
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw unknownOption(`${where}.${k}`, allowed);
}

function num(v: unknown, field: string, min: number, max: number, int: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw configError(field, `must be a number, got ${JSON.stringify(v)}`);
  if (int && !Number.isInteger(v)) throw configError(field, `must be an integer, got ${v}`);
  if (v < min || v > max) throw configError(field, `must be between ${min} and ${max}, got ${v}`);
  return v;
}

function resolveHealth(h: HealthOptions, where: string): ResolvedHealth {
  keysOf(h, ['path', 'intervalMs', 'timeoutMs', 'rise', 'fall', 'expectStatus'], where);
  const path = h.path ?? DEFAULT_HEALTH.path;
  if (typeof path !== 'string' || path.charCodeAt(0) !== 0x2f || /[\s\0]/.test(path))
    throw configError(`${where}.path`, `must be a request target starting with "/", got ${JSON.stringify(h.path)}`);
  const intervalMs =
    h.intervalMs === undefined ? DEFAULT_HEALTH.intervalMs : num(h.intervalMs, `${where}.intervalMs`, 10, MAX_MS, true);
  const timeoutMs =
    h.timeoutMs === undefined
      ? Math.min(DEFAULT_HEALTH.timeoutMs, intervalMs)
      : num(h.timeoutMs, `${where}.timeoutMs`, 1, MAX_MS, true);
  if (timeoutMs > intervalMs)
    throw configError(
      `${where}.timeoutMs`,
      `must be ≤ intervalMs (${intervalMs}): a check outliving its interval would pile up`,
    );
  const rise = h.rise === undefined ? DEFAULT_HEALTH.rise : num(h.rise, `${where}.rise`, 1, 100, true);
  const fall = h.fall === undefined ? DEFAULT_HEALTH.fall : num(h.fall, `${where}.fall`, 1, 100, true);
  const expect = statusRanges(h.expectStatus ?? '200-399', `${where}.expectStatus`);
  return { path, intervalMs, timeoutMs, rise, fall, expect };
}

function statusRanges(v: HealthOptions['expectStatus'], field: string): Array<readonly [number, number]> {
  const one = (x: unknown): readonly [number, number] => {
    if (typeof x === 'number' && Number.isInteger(x) && x >= 100 && x <= 599) return [x, x];
    const m = typeof x === 'string' ? /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(x) : null;
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2] ?? m[1]) : NaN;
    if (!(lo >= 100 && hi <= 599 && lo <= hi))
      throw configError(
        field,
        `must be a status (200), a range ("200-399") or a list of them, got ${JSON.stringify(x)}`,
      );
    return [lo, hi];
  };
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw configError(field, 'names no status');
  return list.map(one);
}

function resolveOutlier(o: OutlierOptions, where: string): ResolvedOutlier {
  keysOf(o, ['consecutiveFailures', 'baseEjectionMs', 'maxEjectionMs', 'maxEjectionPercent'], where);
  const d = DEFAULT_OUTLIER;
  const out = {
    consecutiveFailures:
      o.consecutiveFailures === undefined
        ? d.consecutiveFailures
        : num(o.consecutiveFailures, `${where}.consecutiveFailures`, 1, 1000, true),
    baseEjectionMs:
      o.baseEjectionMs === undefined
        ? d.baseEjectionMs
        : num(o.baseEjectionMs, `${where}.baseEjectionMs`, 1, MAX_MS, true),
    maxEjectionMs:
      o.maxEjectionMs === undefined ? d.maxEjectionMs : num(o.maxEjectionMs, `${where}.maxEjectionMs`, 1, MAX_MS, true),
    maxEjectionPercent:
      o.maxEjectionPercent === undefined
        ? d.maxEjectionPercent
        : num(o.maxEjectionPercent, `${where}.maxEjectionPercent`, 0, 100, false),
  };
  if (out.maxEjectionMs < out.baseEjectionMs) {
    if (o.maxEjectionMs !== undefined)
      throw configError(`${where}.maxEjectionMs`, `must be ≥ baseEjectionMs (${out.baseEjectionMs})`);
    out.maxEjectionMs = out.baseEjectionMs;
  }
  return out;
}

function resolveBudget(b: RetryBudgetOptions, where: string): ResolvedBudget {
  keysOf(b, ['ratio', 'minPerSecond'], where);
  return {
    ratio: b.ratio === undefined ? DEFAULT_BUDGET.ratio : num(b.ratio, `${where}.ratio`, 0, 10, false),
    minPerSecond:
      b.minPerSecond === undefined
        ? DEFAULT_BUDGET.minPerSecond
        : num(b.minPerSecond, `${where}.minPerSecond`, 0, 1_000_000, false),
  };
}

function resolveHedge(h: HedgeOptions, where: string): ResolvedHedge {
  keysOf(h, ['afterMs', 'percentile', 'minMs'], where);
  if ((h.afterMs === undefined) === (h.percentile === undefined))
    throw configError(where, 'give exactly one of afterMs or percentile');
  const minMs = h.minMs === undefined ? 1 : num(h.minMs, `${where}.minMs`, 0, MAX_MS, false);
  if (h.afterMs !== undefined)
    return { afterMs: num(h.afterMs, `${where}.afterMs`, 0, MAX_MS, false), percentile: null, minMs };
  return { afterMs: null, percentile: num(h.percentile, `${where}.percentile`, 50, 99.9, false), minMs };
}

function resolveCollapse(c: CollapseOptions, where: string): ResolvedCollapse {
  keysOf(c, ['key', 'maxWaiters', 'private'], where);
  const names = (list: unknown, field: string): string[] => {
    if (list === undefined) return [];
    if (!Array.isArray(list)) throw configError(`${where}.${field}`, 'must be a list of field names');
    return list.map((f: unknown, i) => {
      if (typeof f !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(f))
        throw configError(`${where}.${field}[${i}]`, `must be a field name, got ${JSON.stringify(f)}`);
      return f.toLowerCase();
    });
  };
  const priv = new Set([...PRIVATE_FIELDS, ...names(c.private, 'private')]);
  const key = names(c.key, 'key');
  key.forEach((name, i) => {
    if (priv.has(name))
      throw configError(
        `${where}.key[${i}]`,
        `${name}: a request carrying it is never collapsed (one client's answer is not another's)`,
      );
  });
  return {
    key,
    maxWaiters:
      c.maxWaiters === undefined ? DEFAULT_MAX_WAITERS : num(c.maxWaiters, `${where}.maxWaiters`, 1, 100_000, true),
    private: priv,
  };
}
