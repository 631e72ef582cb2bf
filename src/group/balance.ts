/**
 * The balancers: which endpoint of a list takes the next request. Pure but for Math.random and the counters
 * they read (loads, EWMAs) and write (round robin's running weights). No allocation: a pick is a few loads.
 */
import type { Balance } from './options.js';
import type { Endpoint } from './endpoint.js';

/**
 * A list of endpoints to pick from, with its total weight (and whether every weight is the same: a draw is then one
 * index).
 */
export interface Candidates {
  list: readonly Endpoint[];
  total: number;
  equal: boolean;
}

/**
 * Time constant of the EWMA's decay, ms (an estimate left alone this long falls to 1/e of itself): Finagle's and
 * Linkerd's decay time.
 */
export const EWMA_DECAY_MS = 10_000;

/**
 * Least weight of a sample below the estimate. By time alone (1 − e^(−dt/τ)) an answer 1.4 ms after the last one
 * weighs 1/7000: at 700 answers a second a single slow one (a pause of the origin, of this process) held an
 * endpoint's estimate up for seconds, and an endpoint 100× slower than the others cost no more than a fast one
 * with three requests in flight (bench groups: 1.3 % of requests to an endpoint 100 ms slower, its p99 100 ms). At
 * least 1/16 each, a peak fades within some 50 answers, however close together they come.
 */
export const EWMA_MIN_WEIGHT = 1 / 16;

/** One endpoint drawn with probability weight / total. */
function draw(c: Candidates): Endpoint {
  const list = c.list;
  if (c.equal) return list[Math.floor(Math.random() * list.length)] as Endpoint;
  let x = Math.random() * c.total;
  for (const e of list) {
    x -= e.weight;
    if (x < 0) return e;
  }
  return list[list.length - 1] as Endpoint;
}

/**
 * Peak-EWMA now: the estimate decays towards nothing while no sample comes (so an endpoint that was slow is
 * tried again once in a while and its estimate renewed); an endpoint never measured costs what the cheapest
 * measured one does, so it is tried soon.
 */
export function ewmaNow(e: Endpoint, now: number): number {
  const s = e.state;
  if (s.ewmaMs < 0) return -1;
  const idle = now - s.ewmaAt;
  return idle <= 0 ? s.ewmaMs : s.ewmaMs * Math.exp(-idle / EWMA_DECAY_MS);
}

/** Cost of sending one more request to `e`: its load per weight, times its latency for `ewma`. */
function cost(e: Endpoint, balance: Balance, now: number, floorMs: number): number {
  const perWeight = (e.load + 1) / e.weight;
  if (balance !== 'ewma') return perWeight;
  const l = ewmaNow(e, now);
  return (l < 0 ? floorMs : Math.max(l, 0.001)) * perWeight;
}

/** The cheapest measured latency among `list` (what an unmeasured endpoint is taken to cost), 1 ms when none is. */
function latencyFloor(list: readonly Endpoint[], now: number): number {
  let min = Infinity;
  for (const e of list) {
    const l = ewmaNow(e, now);
    if (l >= 0 && l < min) min = l;
  }
  return min === Infinity ? 1 : min;
}

/** Two distinct endpoints drawn by weight; the cheaper wins (power of two choices). */
function twoChoices(c: Candidates, balance: Balance, now: number): Endpoint {
  const list = c.list;
  if (list.length === 1) return list[0] as Endpoint;
  const a = draw(c);
  let b = draw(c);
  for (let i = 0; i < 3 && b === a; i++) b = draw(c);
  if (b === a) b = list[(list.indexOf(a) + 1) % list.length] as Endpoint;
  const floor = balance === 'ewma' ? latencyFloor(list, now) : 0;
  return cost(b, balance, now, floor) < cost(a, balance, now, floor) ? b : a;
}

/**
 * Smooth weighted round robin (nginx's): every candidate gains its weight, the richest is picked and pays the total.
 */
function roundRobin(c: Candidates): Endpoint {
  let best: Endpoint | null = null;
  for (const e of c.list) {
    e.current += e.weight;
    if (best === null || e.current > best.current) best = e;
  }
  (best as Endpoint).current -= c.total;
  return best as Endpoint;
}

/** The pick of `balance` among `c` (failover is the group's: it follows the list from a rotating start). */
export function pick(c: Candidates, balance: Balance, now: number): Endpoint {
  if (balance === 'round-robin') return roundRobin(c);
  return twoChoices(c, balance, now);
}

/** Candidates over `list` (its total weight and whether the weights are all the same). */
export function candidates(list: readonly Endpoint[]): Candidates {
  let total = 0;
  let equal = true;
  for (const e of list) {
    total += e.weight;
    if (e.weight !== (list[0] as Endpoint).weight) equal = false;
  }
  return { list, total, equal };
}
